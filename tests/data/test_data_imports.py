"""The data tier stays light: no torch, and `import edgerec.data` loads neither Pillow nor scikit-learn."""

import subprocess
import sys

CODE = """
import sys
import edgerec.data as d
assert "PIL" not in sys.modules and "sklearn" not in sys.modules, "import edgerec.data must stay cheap"
root = d.write_synth(sys.argv[1], classes=2, per_class=4, size=16)
ds = d.load_dataset(root)
d.stratified_split(ds, (0.5, 0.25, 0.25))
d.check_dataset(root).table()
assert "torch" not in sys.modules, "edgerec.data imported torch"
print("ok")
"""


def test_data_tier_never_imports_torch(tmp_path):
    out = subprocess.run([sys.executable, "-c", CODE, str(tmp_path / "s")], capture_output=True, text=True,
                         timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
