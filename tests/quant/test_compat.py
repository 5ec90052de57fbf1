"""The litert-torch shims: conv-bn pattern fix and NHWC layout rule for constant pads (version guards, the
failure without them, the result with them)."""

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


def _fresh_interpreter_prints(code: str) -> str:
    """The last line ``code`` prints in a new interpreter (nothing imported or patched by this test run)."""
    import subprocess
    import sys

    pytest.importorskip("litert_torch")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_shim_not_applied_at_import():
    code = (
        "import edgerec.train.qat, edgerec.train._compat;"
        "from litert_torch.quantize import pt2e_quantizer_utils as u;"
        "print(getattr(u._get_aten_graph_module_for_pattern, '__edgerec_shim__', False))"
    )
    assert _fresh_interpreter_prints(code) == "False"


@pytest.mark.parametrize("litert, expected", [("0.10.0", True), ("0.10.3", True), ("0.11.0", False), ("1.2.0", False)])
def test_pad_layout_version_guard(litert, expected):
    assert _compat.litert_needs_pad_layout_rule(litert) is expected


def _pad_net():
    import torch

    class PadConv(torch.nn.Module):  # TensorFlow SAME before a strided conv: zero pad right and bottom
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.b = torch.nn.Conv2d(8, 4, 3, stride=2)

        def forward(self, x):
            return self.b(torch.nn.functional.pad(torch.relu(self.a(x)), (0, 1, 0, 1)))

    torch.manual_seed(0)
    return PadConv().eval()


def _layout_transposes(model, x) -> int:
    """Layout transposes litert-torch's NHWC pass leaves in ``model``'s graph."""
    import torch
    from litert_torch._convert.fx_passes import OptimizeLayoutTransposesPass
    from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import utils

    ep = torch.export.export(model, (x,)).run_decompositions()
    ep = OptimizeLayoutTransposesPass()(ep).exported_program
    return sum(n.target in (utils.tensor_to_nchw, utils.tensor_to_nhwc) for n in ep.graph.nodes)


def test_pad_layout_rule_keeps_pads_nhwc(monkeypatch):
    """Without the rule litert-torch 0.10 runs a zero pad in NCHW with a transpose on each side (in an int8
    graph nothing removes them later: 10 TRANSPOSE ops in EfficientNet-Lite0); with it the pad stays NHWC
    and the converted model computes the same."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    import numpy as np
    import torch
    from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_check, layout_rewrite

    op = torch.ops.aten.constant_pad_nd.default
    for registry in (layout_rewrite.rewriters, layout_check.nhwcable_node_checkers,
                     layout_check.layout_sensitive_inputs_getters):
        monkeypatch.delitem(registry, op, raising=False)  # whatever an earlier test registered
    torch.set_num_threads(1)
    model, x = _pad_net(), torch.randn(1, 3, 16, 16)
    if _compat.litert_needs_pad_layout_rule():
        assert _layout_transposes(model, x) == 4  # input, output, and one on each side of the pad
        assert _compat.apply_litert_pad_layout_rule() is True
    else:
        _compat.apply_litert_pad_layout_rule(force=True)
    assert _layout_transposes(model, x) == 2  # the input's and the output's only
    _compat.apply_litert_pad_layout_rule(force=True)  # idempotent
    assert layout_rewrite.rewriters[op] is _compat._pad_rewriter

    import litert_torch
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=litert_torch.convert(model, (x,)).model_content())
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x.numpy())
    it.invoke()
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(it.get_tensor(it.get_output_details()[0]["index"]), expected, atol=1e-5)


def test_pad_layout_rule_not_applied_at_import():
    code = (
        "import torch, edgerec.train.qat, edgerec.train._compat, edgerec.export.tflite_format;"
        "from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_rewrite as r;"
        "print(torch.ops.aten.constant_pad_nd.default in r.rewriters)"
    )
    assert _fresh_interpreter_prints(code) == "False"
