"""The runtime never imports torch, tensorflow, edgerec.train or edgerec.export.

Fast check: a fresh interpreter whose import system refuses those modules runs the whole runtime path
(load, classify, a source, the CLI loop). Slow check: a truly clean virtual environment holding only
the runtime extra (numpy, OpenCV, one backend, PyYAML, jsonschema) and edgerec without dependencies.
"""

import json
import subprocess
import sys
import textwrap
import pytest
from _fixtures.runtime import make_clean_env

FORBIDDEN = ("torch", "torchvision", "torchao", "tensorflow", "litert_torch", "onnx", "nncf", "edgerec.train", "edgerec.export")

_SCRIPT = """
import importlib.abc, json, sys
FORBIDDEN = {forbidden!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            raise ImportError(f"blocked import of {{name}}")
        return None

sys.meta_path.insert(0, Block())
from edgerec.runtime import Classifier, open_source
from edgerec.runtime._cli import main
with Classifier.load({bundle!r}, threads=1, backend={backend!r}) as clf:
    import numpy as np
    pred = clf.classify(np.zeros((48, 64, 3), np.uint8))
with open_source({video!r}) as src:
    n = sum(1 for _ in src)
rc = main([{bundle!r}, "--source", {video!r}, "--max-frames", "5", "--jsonl", {out!r}, "--backend", {backend!r}])
loaded = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
print(json.dumps({{"label": pred.label, "frames": n, "rc": rc, "loaded": loaded, "backend": clf.backend.name}}))
"""


def _check(python, bundle, video, tmp_path, env=None, backend="auto"):
    # the colour bundle holds ONNX and OpenVINO artifacts: "auto" takes whichever ran faster here
    code = _SCRIPT.format(forbidden=FORBIDDEN, bundle=str(bundle), video=str(video), out=str(tmp_path / "o.jsonl"),
                          backend=backend)
    r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["loaded"] == [] and res["rc"] == 0 and res["frames"] == 40
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 5
    return res


def test_runtime_path_imports_no_torch(rt_onnx_bundle, rt_video, tmp_path):
    res = _check(sys.executable, rt_onnx_bundle, rt_video, tmp_path, backend="onnxruntime")
    assert res["backend"] == "onnxruntime"
    res = _check(sys.executable, rt_onnx_bundle, rt_video, tmp_path)  # the automatic choice, whichever it is
    assert res["backend"] in ("onnxruntime", "openvino")


def test_tflite_runtime_path_imports_no_torch(rt_tflite_bundle, rt_video, tmp_path):
    res = _check(sys.executable, rt_tflite_bundle, rt_video, tmp_path)
    assert res["backend"] == "litert"


@pytest.mark.slow
def test_clean_environment_with_only_the_runtime_extra(rt_onnx_bundle, rt_video, tmp_path):
    py = make_clean_env(tmp_path / "venv", "onnx")
    probe = subprocess.run([str(py), "-c", textwrap.dedent("""
        import importlib.util as u
        print([m for m in ("torch", "tensorflow", "torchvision", "onnx") if u.find_spec(m)])""")],
        capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"  # truly clean: they could not be imported even by accident
    res = _check(py, rt_onnx_bundle, rt_video, tmp_path, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert res["label"] in ("red", "green", "blue")
    assert res["backend"] == "onnxruntime"  # the one backend installed: the automatic choice takes it
