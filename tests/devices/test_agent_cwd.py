"""The board agent runs from /, never from the folder a board script is in.

`python -m` puts the working folder first on sys.path. A deploy runs the agent's `check` inside the uploaded bundle,
whose exported layout has `tflite/`, `onnx/` and `openvino/` folders: on a board without OpenVINO, the bundle's
`openvino/` was imported as the library (a namespace package; "module 'openvino' has no attribute 'Core'") and every
multi-format bundle was refused. Found on the emulated Raspberry Pi (devices/emulated-pi).
"""

import json
import subprocess
import sys

from edgerec.devices.deploy import Board


class _Conn:
    target = "test"


def test_agent_command_does_not_import_from_the_working_folder(tmp_path):
    shadow = tmp_path / "bundle" / "json"  # a regular package beats the stdlib, as a namespace one beats nothing
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('imported from the bundle folder')\n")
    root = tmp_path / "board"
    root.mkdir()
    (root / "board.json").write_text(json.dumps({"python": sys.executable}))
    b = Board(_Conn(), str(root))
    b._config = {"python": sys.executable}
    r = subprocess.run(["sh", "-c", f"out=$( {b.agent_command('info')} 2>&1); echo \"$out\""], cwd=shadow.parent,
                       capture_output=True, text=True, timeout=120)
    assert "imported from the bundle folder" not in r.stdout, r.stdout
    assert json.loads(r.stdout)["versions"]
