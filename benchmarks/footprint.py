"""Footprint of a runtime-only install, per extra: environment size, import and load time, peak memory.

For each of ``edgerec[litert]``, ``edgerec[onnx]``, ``edgerec[openvino]`` a clean virtual environment is
made (``python -m venv`` + ``pip install --no-deps`` of exactly what the extra needs, then edgerec),
and a fresh interpreter in it measures, ``--repeats`` times (medians reported):

* ``import edgerec.runtime`` time and RSS after it;
* ``Classifier.load`` (sha256 of the files, schema, backend session) time;
* first ``classify`` (backend warm-up) and the median of 50 more;
* peak RSS of the process (``ru_maxrss``) after all of it.

Size is the bytes of ``site-packages`` without pip/setuptools. For scale, the same import + RSS of
``import torch`` in the development environment is recorded.

    python benchmarks/footprint.py [--extras litert,onnx,openvino] [--repeats 3]
Writes benchmarks/results/footprint.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(HERE))

ARTIFACT = {"litert": ("tflite", "int8", "litert"), "onnx": ("onnx", "fp32", "onnxruntime"),
            "openvino": ("openvino", "fp32", "openvino")}
_TOOLING = {"pip", "setuptools", "_distutils_hack", "pkg_resources", "wheel"}

_PROBE = """
import json, resource, sys, time
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
t0 = time.perf_counter()
import edgerec.runtime
from edgerec.runtime import Classifier
t1 = time.perf_counter()
rss_import = rss_mb()
clf = Classifier.load({bundle!r}, format={fmt!r}, precision={prec!r}, backend={backend!r}, threads=1)
t2 = time.perf_counter()
import numpy as np
frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
clf.classify(frame)
t3 = time.perf_counter()
ts = []
for _ in range(50):
    a = time.perf_counter(); clf.classify(frame); ts.append(time.perf_counter() - a)
ts.sort()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tensorflow", "torchvision"))
print(json.dumps({{"import_s": t1 - t0, "rss_after_import_mb": rss_import, "load_s": t2 - t1, "first_classify_s": t3 - t2,
                  "classify_p50_ms": ts[len(ts) // 2] * 1e3, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "artifact": clf.artifact.key, "backend": clf.backend.version, "heavy_modules": heavy}}))
"""


def site_size(env: Path) -> tuple[int, dict[str, int]]:
    (site,) = env.glob("lib/python*/site-packages")
    per: dict[str, int] = {}
    for p in site.iterdir():
        key = p.name.split("-")[0].split(".")[0]
        if key in _TOOLING or p.name.startswith(tuple(_TOOLING)):
            continue
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
        if p.name.endswith((".dist-info", ".pth")):
            key = "(metadata)"
        per[key] = per.get(key, 0) + size
    return sum(per.values()), dict(sorted(per.items(), key=lambda kv: -kv[1])[:8])


def probe(python: Path, bundle: Path, extra: str) -> dict:
    fmt, prec, backend = ARTIFACT[extra]
    code = _PROBE.format(bundle=str(bundle), fmt=fmt, prec=prec, backend=backend)
    r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=600,
                       env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    if r.returncode != 0:
        raise RuntimeError(f"probe failed in the {extra} environment:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def torch_reference() -> dict:
    code = ("import resource, time; t=time.perf_counter(); import torch; d=time.perf_counter()-t; "
            "print(d, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    s, mb = r.stdout.split()
    return {"import_torch_s": round(float(s), 3), "peak_rss_mb": round(float(mb), 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extras", default="litert,onnx,openvino")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--work", default="/tmp/edgerec-bench")
    ap.add_argument("--out", default=str(HERE / "results" / "footprint.json"))
    args = ap.parse_args(argv)
    from _fixtures.runtime import make_benchmark_bundle, make_clean_env
    from runtime_overhead import machine
    from tqdm import tqdm

    work = Path(args.work)
    bundle = make_benchmark_bundle(work / f"mnv3s-{args.size}", args.size)
    results = {}
    extras = args.extras.split(",")
    for extra in tqdm(extras, desc="extras"):
        env = work / f"env-{extra}"
        python = env / "bin" / "python"
        if not python.exists() or not list(env.glob("lib/python*/site-packages/edgerec")):
            make_clean_env(env, extra)
        total, top = site_size(env)
        runs = [probe(python, bundle, extra) for _ in range(args.repeats)]
        med = {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0] if isinstance(runs[0][k], float)}
        results[extra] = {"env_mb": round(total / 2**20, 1), "largest_mb": {k: round(v / 2**20, 1) for k, v in top.items()},
                          **med, "artifact": runs[0]["artifact"], "backend": runs[0]["backend"],
                          "heavy_modules": runs[0]["heavy_modules"], "runs": runs}
    out = {"benchmark": "footprint", "model": f"mobilenet_v3_small {args.size}px", "machine": machine(),
           "repeats": args.repeats, "extras": results, "reference_dev_env": torch_reference()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"{'extra':<10}{'env MB':>8}{'import s':>10}{'load s':>8}{'1st s':>7}{'p50 ms':>8}{'peak RSS MB':>13}  artifact")
    for extra, r in results.items():
        print(f"{extra:<10}{r['env_mb']:>8.1f}{r['import_s']:>10.3f}{r['load_s']:>8.3f}{r['first_classify_s']:>7.3f}"
              f"{r['classify_p50_ms']:>8.2f}{r['peak_rss_mb']:>13.1f}  {r['artifact']}")
    ref = out["reference_dev_env"]
    print(f"(for scale: `import torch` alone takes {ref['import_torch_s']} s and {ref['peak_rss_mb']} MB here; "
          f"medians of {args.repeats}; written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
