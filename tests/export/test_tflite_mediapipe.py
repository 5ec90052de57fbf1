"""MediaPipe Tasks' ImageClassifier loads our .tflite files and names the same classes as our evaluation.

mediapipe pulls opencv-contrib-python, which clashes with opencv-python-headless, so it lives in its own
virtual environment (``.venv-mediapipe`` at the repository root, gitignored), created here when missing;
a small script runs there in a subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from _fixtures.quant import LABELS, digits_source, exported_tflite, run_tflite  # noqa: E402

pytestmark = pytest.mark.slow

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import mediapipe as mp
    from mediapipe.tasks import python as mpt
    from mediapipe.tasks.python import vision

    images = np.load(sys.argv[2])
    options = vision.ImageClassifierOptions(
        base_options=mpt.BaseOptions(model_asset_path=sys.argv[1]), max_results=1)
    names = []
    with vision.ImageClassifier.create_from_options(options) as clf:
        for im in images:
            result = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(im)))
            names.append(result.classifications[0].categories[0].category_name)
    print(json.dumps(names))
    """
)


@pytest.fixture(scope="module")
def mediapipe_python(repo_root):
    venv = Path(os.environ.get("EDGEREC_MEDIAPIPE_VENV", repo_root / ".venv-mediapipe"))
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mediapipe"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        steps = [[sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", "mediapipe"]]
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.skip(f"cannot set up mediapipe in {venv}: {' '.join(cmd[-2:])} failed: {done.stderr[-500:]}")
    return python


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_mediapipe_image_classifier_matches_our_top1(precision, mediapipe_python, tmp_path):
    images = digits_source().eval_images[:40]
    _, path = exported_tflite(precision)
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "classify.py").write_text(_SCRIPT)
    done = subprocess.run(
        [str(mediapipe_python), str(tmp_path / "classify.py"), str(path), str(tmp_path / "images.npy")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours, _, _ = run_tflite(path, images)
    assert len(theirs) == len(images)
    for name, scores in zip(theirs, ours):
        # int8 logits can tie at the top; either order of a tie is the same answer
        assert name in {LABELS[k] for k in np.flatnonzero(scores == scores.max())}, (name, scores)
    assert sum(name == LABELS[k] for name, k in zip(theirs, ours.argmax(1))) >= len(images) - 1
