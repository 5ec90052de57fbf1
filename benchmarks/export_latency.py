"""Single-image latency of every exported format x precision on this CPU, with 1 and 2 threads.

Each artifact runs through its own runtime backend (LiteRT, ONNX Runtime, OpenVINO) exactly as
``edgerec run`` would. Method: warm-up, then rounds that interleave every (artifact, threads) pair so
drifting machine load hits all of them alike; each call timed with ``perf_counter_ns``; medians and p90.
Beside the bundle's artifacts, the ONNX int8 model is also measured with int8 activations (the QDQ graph
as PT2E writes it) to show what edgerec's uint8 re-expression buys in ONNX Runtime.

    python benchmarks/export_latency.py                      # trains a quick digits run, exports, measures
    python benchmarks/export_latency.py --run runs/digits     # an existing run
    python benchmarks/export_latency.py --bundle b/digits     # an existing bundle (no export)

Writes benchmarks/results/export_latency.json and export_latency.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def cpu_info() -> dict:
    info = {"machine": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["model"] = line.split(":", 1)[1].strip()
                break
        flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
        info["isa"] = sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                                                       "amx_bf16", "amx_int8", "fma"})
    except OSError:
        pass
    try:
        info["load_avg_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def build_run(root: Path, steps: int) -> Path:
    # the quick digits trainer the export tests use (full 1797-image set, BN statistics re-estimated)
    sys.path.insert(0, str(HERE.parent / "tests"))
    from _fixtures.export import make_digits_run

    return make_digits_run(root, per_class=None, steps=steps, batch=64)


def measure(entries, *, threads=(1, 2), warmup=20, rounds=30, per_round=10) -> list[dict]:
    """entries: (label, path, artifact, spec, image). Interleaved timing; returns one row per (label, threads)."""
    import numpy as np

    from edgerec.runtime.adapters import to_model_input
    from edgerec.runtime.backends import open_backend

    sessions = []
    for label, path, art, spec, image in entries:
        x = to_model_input(image[None], spec, art)
        for t in threads:
            be = open_backend(path, art, threads=t)
            for _ in range(warmup):
                be.invoke(x)
            sessions.append({"label": label, "threads": t, "be": be, "x": x, "ns": []})
    for _ in range(rounds):
        for s in sessions:
            be, x, ns = s["be"], s["x"], s["ns"]
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                be.invoke(x)
                ns.append(time.perf_counter_ns() - t0)
    rows = []
    for s in sessions:
        ms = np.asarray(s["ns"]) / 1e6
        rows.append({"artifact": s["label"], "threads": s["threads"], "backend": s["be"].version,
                     "median_ms": round(float(np.median(ms)), 4), "p90_ms": round(float(np.percentile(ms, 90)), 4),
                     "n": int(len(ms))})
        s["be"].close()
    return rows


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({r["artifact"] for r in rows})
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(labels) + 1.5))
    for k, t in enumerate(sorted({r["threads"] for r in rows})):
        vals = [next((r["median_ms"] for r in rows if r["artifact"] == lab and r["threads"] == t), 0) for lab in labels]
        ax.barh([i + 0.4 * k for i in range(len(labels))], vals, height=0.4, label=f"{t} thread{'s' * (t > 1)}")
    ax.set_yticks([i + 0.2 for i in range(len(labels))], labels)
    ax.set_xlabel("median single-image latency (ms), lower is better")
    ax.legend()
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="existing run folder (default: train a quick digits run)")
    p.add_argument("--bundle", help="existing bundle folder (skips the export)")
    p.add_argument("--steps", type=int, default=150, help="training steps of the quick digits run")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    p.add_argument("--formats", default="tflite,onnx,openvino")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--out", default=str(RESULTS / "export_latency.json"))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    from edgerec.bundle import load_manifest

    work = Path(tempfile.mkdtemp(prefix="edgerec-bench-"))
    t0 = time.perf_counter()
    extra = []
    if args.bundle:
        bdir = Path(args.bundle)
        manifest = load_manifest(bdir)
    else:
        from edgerec.export import export
        from edgerec.export.source import load_source
        from edgerec.export.onnx_format import export_onnx

        run = Path(args.run) if args.run else build_run(work, args.steps)
        print(f"run ready in {time.perf_counter() - t0:.0f}s: {run}", flush=True)
        bundle = export(run, formats=args.formats, precisions=args.precisions, out=work / "bundle", calib=256,
                        max_eval=500, strict=False, threads=2)
        bdir, manifest = bundle.dir, bundle.manifest
        # the ONNX int8 model as PT2E writes it (int8 activations), for the uint8 comparison
        src, _, _ = load_source(run, calib=256, max_eval=500, progress=False)
        if "onnx" in args.formats and "int8" in args.precisions:
            r = export_onnx(src, "int8", work / "s8", int8_activations="int8")
            ref = manifest.artifact("onnx", "int8")
            import dataclasses

            extra.append(("onnx-int8 (int8 activations)", work / "s8" / r.files[0], dataclasses.replace(ref, file=str(r.files[0]))))
    from edgerec.data.images import read_image
    from edgerec.export.source import _resizer

    image = _resizer(manifest.input)(read_image(bdir / manifest.check_images[0]))
    entries = [(a.key, bdir / a.file, a, manifest.input, image) for a in manifest.ok_artifacts()]
    entries += [(label, path, art, manifest.input, image) for label, path, art in extra]
    print(f"timing {len(entries)} artifacts x 1/2 threads ...", flush=True)
    rows = measure(entries, rounds=args.rounds)
    by = {(r["artifact"], r["threads"]): r for r in rows}
    for r in rows:
        fmt = r["artifact"].split("-")[0]
        base = by.get((f"{fmt}-fp32", r["threads"]))
        r["vs_fp32_same_format"] = round(r["median_ms"] / base["median_ms"], 3) if base else None
    arts = {a.key: {"status": a.status, "error": a.error, "size_bytes": a.size_bytes,
                    "accuracy": a.verification.accuracy if a.verification else None,
                    "accuracy_delta": a.verification.accuracy_delta if a.verification else None,
                    "agreement": a.verification.agreement if a.verification else None,
                    "max_abs_logit_diff": a.verification.max_abs_logit_diff if a.verification else None,
                    "export_seconds": a.export_seconds}
            for a in manifest.artifacts}
    result = {
        "what": "median single-image latency per exported artifact, its own runtime, this CPU",
        "method": {"warmup": 20, "rounds": args.rounds, "per_round": 10, "interleaved": True, "timer": "perf_counter_ns",
                   "input": f"{manifest.input.width}x{manifest.input.height} digits check image, batch 1"},
        "cpu": cpu_info(),
        "versions": manifest.provenance.get("versions", {}),
        "reference": {k: v for k, v in manifest.reference.items() if k in ("n_images", "accuracy", "int8_accuracy", "int8_method")},
        "artifacts": arts,
        "latency": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    plot(rows, out.with_suffix(".png"))
    print(f"{'artifact':<32} {'thr':>3} {'median ms':>10} {'p90 ms':>8} {'vs fp32':>8}")
    for r in sorted(rows, key=lambda r: (r["artifact"], r["threads"])):
        print(f"{r['artifact']:<32} {r['threads']:>3} {r['median_ms']:>10.3f} {r['p90_ms']:>8.3f} "
              f"{r['vs_fp32_same_format'] if r['vs_fp32_same_format'] is not None else '-':>8}")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
