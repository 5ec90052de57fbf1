import subprocess
import sys


def test_bench_never_imports_torch():
    code = ("import sys\n"
            "import edgerec.bench.latency, edgerec.bench.estimate, edgerec.bench.compare, edgerec.bench.loop\n"
            "import edgerec.bench._cli, edgerec.bench.deploy_profile, edgerec.devices.device_profile\n"
            "bad = [m for m in ('torch', 'tensorflow', 'edgerec.train', 'edgerec.export') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
