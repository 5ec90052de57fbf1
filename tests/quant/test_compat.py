"""The litert-torch conv-bn pattern shim: version guard, failure without it, success with it."""

import pytest

from edgerec.train import _compat


@pytest.mark.parametrize(
    "litert, torch_version, expected",
    [
        ("0.10.0", "2.14.1", True),
        ("0.10.3", "2.9.0+cpu", True),
        ("0.10.0", "2.8.0", False),  # older torch still exports plain functions
        ("0.11.0", "2.14.1", False),  # fixed upstream: leave it alone
        ("1.0.0", "2.14.1", False),
    ],
)
def test_version_guard(litert, torch_version, expected):
    assert _compat.litert_needs_conv_bn_fix(litert, torch_version) is expected


def test_version_tuple():
    assert _compat.version_tuple("2.14.1+cpu") == (2, 14, 1)
    assert _compat.version_tuple("0.11.0rc1") == (0, 11, 0)
    assert _compat.version_tuple("2.10.0.dev20250101") == (2, 10, 0)


def _litert_conv_bn_prepare():
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).train()
    example = (torch.randn(2, 3, 8, 8),)
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
    return prepare_qat_pt2e(torch.export.export(model, example).module(), quantizer)


def test_shim_fixes_litert_conv_bn(monkeypatch):
    pytest.importorskip("litert_torch")
    from litert_torch.quantize import pt2e_quantizer_utils as utils
    from torchao.quantization.pt2e.utils import _get_aten_graph_module_for_pattern as original

    # Start from the unpatched function whatever an earlier test did; monkeypatch restores it afterwards.
    monkeypatch.setattr(utils, "_get_aten_graph_module_for_pattern", original)
    if _compat.litert_needs_conv_bn_fix():
        with pytest.raises(ValueError, match="nn.Module"):
            _litert_conv_bn_prepare()
        assert _compat.apply_litert_conv_bn_fix() is True
    else:
        assert _compat.apply_litert_conv_bn_fix() is False
        _compat.apply_litert_conv_bn_fix(force=True)  # harmless where not needed
    gm = _litert_conv_bn_prepare()
    fake_quants = [n for n in gm.graph.nodes if n.op == "call_module" and "activation_post_process" in n.target]
    assert len(fake_quants) >= 3  # input, weight, output of the conv-bn-relu
    # Idempotent: a second application does not wrap the wrapper.
    patched = utils._get_aten_graph_module_for_pattern
    _compat.apply_litert_conv_bn_fix(force=True)
    assert utils._get_aten_graph_module_for_pattern is patched


def test_shim_not_applied_at_import():
    import subprocess
    import sys

    code = (
        "import edgerec.train.qat, edgerec.train._compat;"
        "from litert_torch.quantize import pt2e_quantizer_utils as u;"
        "print(getattr(u._get_aten_graph_module_for_pattern, '__edgerec_shim__', False))"
    )
    pytest.importorskip("litert_torch")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
