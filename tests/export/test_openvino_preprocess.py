"""OpenVINO's embedded pre-processing (``-pp`` artifacts) against edgerec's own, on whole camera frames.

An identity model behind ``_embed_preprocess`` shows exactly what the IR feeds its network, so the test
measures where the two paths differ: nowhere that matters with ``bilinear`` (squash and center_crop within
1 grey level), a few grey levels with ``area+bilinear`` (OpenVINO's Pillow-style anti-aliasing instead of
edgerec's 2x2 halvings); letterbox is refused.
"""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edgerec.bundle import InputSpec
from edgerec.errors import ExportError
from edgerec.runtime.adapters import normalize
from edgerec.runtime.image import model_image

ov = pytest.importorskip("openvino")


def _identity(h, w):
    import openvino.opset13 as ops

    p = ops.parameter([1, 3, h, w], np.float32, name="x")
    return ov.Model([ops.result(p)], [p], "identity")


def _frames():
    rng = np.random.default_rng(0)
    out = []
    for shape in ((480, 640), (720, 1280), (500, 333)):
        small = cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (48, 48), interpolation=cv2.INTER_CUBIC)
        out.append(cv2.resize(small, shape[::-1], interpolation=cv2.INTER_LINEAR))  # photo-like, smooth
        out.append(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))  # noise: where resamplers differ most
    return out


def _compare(spec):
    from edgerec.export.openvino_format import _embed_preprocess

    model = _embed_preprocess(_identity(spec.height, spec.width), SimpleNamespace(input_spec=spec))
    compiled = ov.Core().compile_model(model, "CPU")
    diffs = []
    for f in _frames():
        got = compiled(f[None])[0][0].transpose(1, 2, 0)  # normalised, model colour order
        ref = normalize(model_image(f, spec)[..., ::-1], spec)
        diffs.append(np.abs(got - ref) * np.asarray(spec.std, np.float32) * spec.pixel_scale)  # in grey levels
    return np.stack([d.mean() for d in diffs]), np.stack([d.max() for d in diffs])


@pytest.mark.parametrize("mode", ["squash", "center_crop"])
def test_embedded_bilinear_matches_the_runtime(mode):
    mean, top = _compare(InputSpec(height=32, width=32, resize_mode=mode, interpolation="bilinear"))
    assert top.max() <= 1.01 and mean.max() < 0.5, (mean, top)


@pytest.mark.parametrize("mode", ["squash", "center_crop"])
def test_embedded_area_bilinear_is_close_and_anti_aliased(mode):
    spec = InputSpec(height=32, width=32, resize_mode=mode, interpolation="area+bilinear")
    mean, top = _compare(spec)
    assert mean.max() < 5.0, (mean, top)  # grey levels (measured 1.7-4.2); a plain bilinear IR is 40-60 off on noise


def test_embedded_letterbox_is_refused():
    from edgerec.export.openvino_format import _embed_preprocess

    spec = InputSpec(height=32, width=32, resize_mode="letterbox")
    with pytest.raises(ExportError, match="squash and center_crop"):
        _embed_preprocess(_identity(32, 32), SimpleNamespace(input_spec=spec))
