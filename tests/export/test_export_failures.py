"""A converter that fails and an artifact that misses its bound: recorded, others kept, clear error."""

import json

import pytest

from edgerec.errors import ExportError


@pytest.mark.slow
def test_failed_converter_and_failed_bound_are_recorded(tmp_path, monkeypatch, capsys):
    import torch

    from _fixtures.export import export_run, make_digits_run

    def unsupported(*args, **kwargs):  # what the exporter does with an op it has no ONNX translation for
        raise RuntimeError("Unsupported FX nodes: {'aten.weird_op.default'}")

    monkeypatch.setattr(torch.onnx, "export", unsupported)

    run = make_digits_run(tmp_path, per_class=10, steps=5)
    out = tmp_path / "bundle"
    with pytest.raises(ExportError, match="no artifact could be produced") as err:
        export_run(run, out, formats=("onnx", "openvino"), precisions=("fp32",), check_images=3,
                   min_agreement=1.01, archive=False)
    assert str(out) in str(err.value)
    m = json.loads((out / "edgerec.json").read_text())  # the bundle is written, every reason in it
    arts = {(a["format"], a["precision"]): a for a in m["artifacts"]}
    assert arts["onnx", "fp32"]["status"] == "failed" and "aten.weird_op" in arts["onnx", "fp32"]["error"]
    ov = arts["openvino", "fp32"]
    assert ov["status"] == "failed" and "agrees with PyTorch" in ov["error"] and ov["verification"]["passed"] is False
    assert not list(tmp_path.glob(".bundle.tmp-*"))  # no temporary folder left behind
    assert "openvino" not in capsys.readouterr().out, "the library returns data; the table is the CLI's"
    assert err.value.bundle.manifest.artifacts and err.value.bundle.dir == out

    # the CLI prints the per-artifact table of what was written, then the error
    from edgerec.cli import main as cli

    code = cli(["export", str(run), "--out", str(tmp_path / "cli"), "--formats", "onnx,openvino", "--precision", "fp32",
                "--min-agreement", "1.01", "--no-archive", "--calib", "16", "--max-eval", "50"])
    shown = capsys.readouterr()
    assert code == 2 and "no artifact could be produced" in shown.err
    assert "aten.weird_op" in shown.out and "openvino" in shown.out


def test_misspelled_format_option_is_an_error_before_anything_loads(tmp_path):
    from edgerec.errors import ConfigError
    from edgerec.export import export

    # the run does not even exist: the option is checked first
    with pytest.raises(ConfigError, match=r"unknown onnx export option 'int8_activation'; did you mean 'int8_activations'"):
        export(tmp_path / "no-run", formats="onnx", options={"onnx": {"int8_activation": "int8"}})
    with pytest.raises(ConfigError, match=r"unknown tflite export option 'opset' \(it takes none\)"):
        export(tmp_path / "no-run", formats="tflite", options={"tflite": {"opset": 17}})
    with pytest.raises(ConfigError, match="unknown export format 'onx'"):
        export(tmp_path / "no-run", options={"onx": {}})
