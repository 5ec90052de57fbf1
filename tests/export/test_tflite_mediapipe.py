"""MediaPipe Tasks' ImageClassifier loads our .tflite files and names the same classes as our evaluation.

mediapipe lives in its own virtual environment (``tests/_fixtures/mediapipe.py``: ``.venv-mediapipe`` at the
repository root, created when missing); a small script runs there in a subprocess.
"""

import numpy as np
import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from _fixtures.mediapipe import mediapipe_python, mediapipe_top1  # noqa: E402,F401  (the fixture, by import)
from _fixtures.quant import LABELS, digits_source, exported_tflite, run_tflite  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # builds its own MediaPipe venv


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_mediapipe_image_classifier_matches_our_top1(precision, mediapipe_python):
    images = digits_source().eval_images[:40]
    _, path = exported_tflite(precision)
    theirs = mediapipe_top1(mediapipe_python, path, images)
    ours, _, _ = run_tflite(path, images)
    assert len(theirs) == len(images)
    for name, scores in zip(theirs, ours):
        # int8 logits can tie at the top; either order of a tie is the same answer
        assert name in {LABELS[k] for k in np.flatnonzero(scores == scores.max())}, (name, scores)
    assert sum(name == LABELS[k] for name, k in zip(theirs, ours.argmax(1))) >= len(images) - 1
