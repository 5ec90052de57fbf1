"""edgerec.devices never imports torch (it runs on boards that only have the runtime)."""

import subprocess
import sys


def test_devices_modules_do_not_import_torch():
    code = ("import sys\n"
            "import edgerec.devices.deploy, edgerec.devices.inventory, edgerec.devices.board, edgerec.devices.doctor\n"
            "import edgerec.devices.pull, edgerec.devices.setup, edgerec.devices._cli, edgerec.devices.ssh\n"
            "bad = [m for m in ('torch', 'tensorflow', 'edgerec.train', 'edgerec.export') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
