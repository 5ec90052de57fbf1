"""MediaPipe Tasks' ImageClassifier in its own virtual environment, for checks against our .tflite files.

mediapipe pulls opencv-contrib-python, which clashes with opencv-python-headless, so it lives in
``.venv-mediapipe`` at the repository root (gitignored, or ``$EDGEREC_MEDIAPIPE_VENV``), created when
missing; a small script runs there in a subprocess. Tests take the ``mediapipe_python`` fixture;
benchmarks call ``ensure_mediapipe`` and ``mediapipe_top1`` directly.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

__all__ = ["mediapipe_python", "ensure_mediapipe", "mediapipe_top1"]

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import mediapipe as mp
    from mediapipe.tasks import python as mpt
    from mediapipe.tasks.python import vision

    images = np.load(sys.argv[2], allow_pickle=True)
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


def ensure_mediapipe(repo_root) -> tuple[Path | None, str]:
    """``(python of the mediapipe venv, "")``, creating it when missing, or ``(None, why not)``."""
    venv = Path(os.environ.get("EDGEREC_MEDIAPIPE_VENV", Path(repo_root) / ".venv-mediapipe"))
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mediapipe"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        steps = [[sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", "mediapipe"]]
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                return None, f"cannot set up mediapipe in {venv}: {' '.join(cmd[-2:])} failed: {done.stderr[-500:]}"
    return python, ""


def mediapipe_top1(python, model_path, images) -> list[str]:
    """MediaPipe ImageClassifier's top-1 category name for each RGB uint8 image (a list of (H, W, 3) arrays
    of any sizes, or one (N, H, W, 3) array). MediaPipe resizes each image to the model's input itself."""
    with tempfile.TemporaryDirectory(prefix="edgerec-mediapipe-") as tmp:
        tmp = Path(tmp)
        arr = np.empty(len(images), dtype=object)
        for i, im in enumerate(images):
            arr[i] = np.ascontiguousarray(im)
        np.save(tmp / "images.npy", arr, allow_pickle=True)
        (tmp / "classify.py").write_text(_SCRIPT)
        done = subprocess.run([str(python), str(tmp / "classify.py"), str(model_path), str(tmp / "images.npy")],
                              capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"mediapipe failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def mediapipe_python(repo_root):
    python, why = ensure_mediapipe(repo_root)
    if python is None:
        pytest.skip(why)
    return python
