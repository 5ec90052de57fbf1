"""The runtime on a bundle written by `edgerec export` (digits, 32 px MobileNetV3-small, every format and
precision the converters here produce): every artifact loads, and all agree with each other on real images."""

import cv2
import numpy as np
import pytest

from edgerec.runtime import Classifier


def _images(bundle):
    """The bundle's own check images (BGR), or the digits the run was trained on."""
    m = bundle.manifest
    paths = [bundle.dir / p for p in m.check_images if (bundle.dir / p).is_file()]
    imgs = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths]
    return [i for i in imgs if i is not None]


@pytest.mark.slow
def test_every_artifact_of_an_exported_bundle_runs_and_agrees(tiny_bundle):
    m = tiny_bundle.manifest
    arts = m.ok_artifacts()
    assert arts, "the export produced no usable artifact"
    images = _images(tiny_bundle)
    if not images:
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(8)]
    answers = {}
    for a in arts:
        with Classifier.load(tiny_bundle.dir, format=a.format, precision=a.precision, threads=1) as clf:
            assert clf.artifact.key == a.key
            preds = clf.classify_batch(images)
            assert all(p.label in m.labels for p in preds)
            # gray and BGRA versions of a frame are converted, not refused
            img = images[0] if images[0].ndim == 3 else cv2.cvtColor(images[0], cv2.COLOR_GRAY2BGR)
            clf.classify(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
            clf.classify(cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))
            answers[a.key] = [p.index for p in preds]
    ref = answers[next(k for k in answers if k.endswith("fp32"))]
    for key, got in answers.items():
        agree = np.mean(np.asarray(got) == np.asarray(ref))
        assert agree >= (0.99 if key.endswith("fp32") else 0.75), (key, agree)
