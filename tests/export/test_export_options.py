"""Export options: a different input size, and OpenVINO IRs with the pre-processing folded in."""

import numpy as np
import pytest


@pytest.mark.slow
def test_img_size_and_embedded_preprocess(tmp_path):
    import openvino as ov

    from _fixtures.export import export_run, make_digits_run

    run = make_digits_run(tmp_path, per_class=10, steps=5)
    b = export_run(run, tmp_path / "b", formats="openvino", precisions="fp32", img_size=40, embed_preprocess=True,
                   check_images=2, archive=False)
    m = b.manifest
    assert (m.input.height, m.input.width) == (40, 40)
    plain, pp = m.artifact("openvino", "fp32"), [a for a in m.ok_artifacts() if a.embedded_preprocess][0]
    assert pp.key == "openvino-fp32-pp" and pp.layout == "NHWC" and pp.input_dtype == "uint8"
    assert pp.normalization_in_model and pp.verification.agreement >= 0.99
    assert ov.Core().read_model(str(b.dir / pp.file)).get_rt_info(["model_info", "embedded_preprocessing"]).astype(str) == "YES"
    # the -pp IR takes a u8 BGR frame of any size and answers like the plain IR fed by our own pre-processing
    from edgerec.export.source import _resizer
    from edgerec.runtime.adapters import to_model_input

    core = ov.Core()
    frame = np.random.default_rng(0).integers(0, 256, (57, 83, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(frame[..., ::-1])  # `frame` is RGB, like the images export verifies on
    raw = core.compile_model(str(b.dir / pp.file), "CPU")(bgr[None])[0]
    x = to_model_input(_resizer(m.input)(frame)[None], m.input, plain)
    ref = core.compile_model(str(b.dir / plain.file), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0]
    assert raw.shape == ref.shape == (1, len(m.labels))
    # resize kernels differ slightly (OpenVINO's linear resize vs OpenCV's), so compare answers and closeness
    assert raw.argmax() == ref.argmax()
    assert np.abs(raw - ref).max() < 0.25 * (np.abs(ref).max() + 1)


def test_ptq_at_export_uses_the_runs_quantizer(tiny_run, tmp_path, monkeypatch):
    """A run without an int8 graph at the asked size is quantized at export with the scheme it was trained for."""
    import shutil

    import yaml

    from edgerec.export.source import load_source
    from edgerec.train import qat

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["quantizer"] = "litert"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    seen = []

    class Stop(Exception):
        pass

    def prepare(model, example, *, qat, kind="xnnpack"):
        seen.append(kind)
        raise Stop

    monkeypatch.setattr(qat, "prepare", prepare)
    with pytest.raises(Stop):  # 40 px: the run's 32 px QAT graph does not apply, so export makes PTQ
        load_source(run, calib=8, max_eval=8, img_size=40, progress=False)
    assert seen == ["litert"]
