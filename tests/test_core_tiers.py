"""Tiers by dependency, checked by walking the import graph: every module of a tier imports, in a fresh interpreter
whose import system refuses what that tier must not need.

- core (what ``import edgerec`` and the manifest need): numpy, PyYAML, jsonschema; not even OpenCV.
- board (runtime, capture, bench, devices: what a board with only a runtime extra runs): numpy and OpenCV; no
  torch, TensorFlow, converters, scikit-learn, Pillow, matplotlib or rich, and nothing from edgerec.train/export.

A module of a tier may still import heavier libraries *inside* a function that needs them (a plot, an SSH
session); that is the rule, and what this test enforces is that importing the module does not.
"""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "torchao", "tensorflow", "litert_torch", "ai_edge_quantizer", "onnx", "onnxscript",
         "nncf", "sklearn", "PIL", "matplotlib", "rich", "skimage", "edgerec.train", "edgerec.export")

TIERS = {
    "core": (("edgerec.bundle", "edgerec.errors", "edgerec.limits", "edgerec.cli", "edgerec._archive",
              "edgerec._table", "edgerec._bundle_info", "edgerec._config", "edgerec._imagesize", "edgerec._versions", "edgerec.formats"),
             HEAVY + ("cv2", "onnxruntime", "openvino", "ai_edge_litert")),
    "board": (("edgerec.runtime", "edgerec.capture", "edgerec.bench", "edgerec.devices"), HEAVY),
}

_SCRIPT = """
import importlib, importlib.abc, json, pkgutil, sys
FORBIDDEN = {forbidden!r}
blocked = []

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            blocked.append(name)
            raise ImportError(f"blocked import of {{name}}")
        return None

sys.meta_path.insert(0, Block())
names = []
for top in {modules!r}:
    mod = importlib.import_module(top)
    names.append(top)
    if hasattr(mod, "__path__"):
        names += [m.name for m in pkgutil.walk_packages(mod.__path__, top + ".")
                  if not m.name.endswith("__main__")]  # running it is not importing it
failed = {{}}
for name in names:
    before = len(blocked)
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failed[name] = str(exc)
    else:
        if len(blocked) > before:  # imported, but tried a forbidden module on the way (and swallowed the error)
            failed[name] = "tried " + ", ".join(sorted(set(blocked[before:])))
open({out!r}, "w").write(json.dumps({{"modules": names, "failed": failed}}))
"""


@pytest.mark.parametrize("tier", list(TIERS))
def test_every_module_of_the_tier_imports_without_what_the_tier_must_not_need(tier, tmp_path):
    modules, forbidden = TIERS[tier]
    out = tmp_path / "tier.json"
    r = subprocess.run([sys.executable, "-c", _SCRIPT.format(forbidden=forbidden, modules=modules, out=str(out))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert len(res["modules"]) >= len(modules)
    assert res["failed"] == {}, json.dumps(res["failed"], indent=1)
