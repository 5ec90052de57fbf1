"""What does the runtime add on top of the backend? ``Classifier.classify`` on a 640x480 BGR camera frame
versus the same backend's bare ``invoke`` on a ready input tensor: same model file, same threads, side by side.

``classify`` = pre-processing (resize 640x480 -> model size, colour swap, normalise/quantize via one
table look-up) + invoke + dequantize/softmax/top-k. The two are timed call by call in alternation, so both see
the same load from the rest of the machine. Figures: the ratio of medians, the median of per-pair ratios
(each classify over the bare invoke timed next to it: the most load-robust), and the runtime's own work,
(pre + post) / bare. Target: <= 1.10 for the int8 NHWC TFLite artifact.

Model: MobileNetV3-small, random weights, 10 classes, 224x224 (built once with litert-torch / torch.onnx,
cached under --work). The weights do not change the timing.

    python benchmarks/runtime_overhead.py [--threads 2] [--runs 200] [--blocks 10]
Writes benchmarks/results/runtime_overhead.json and a bar chart beside it (.png).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402


def machine() -> dict:
    import cv2

    return {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def pct(xs_ns: list[int]) -> dict:
    ms = np.asarray(xs_ns) / 1e6
    return {"p50": round(float(np.percentile(ms, 50)), 4), "p90": round(float(np.percentile(ms, 90)), 4),
            "p99": round(float(np.percentile(ms, 99)), 4), "n": int(ms.size)}


def measure(clf, frame: np.ndarray, runs: int, blocks: int, progress) -> dict:
    x = clf.prepare(frame).copy()
    for _ in range(20):  # warm-up: allocator, XNNPACK packing, caches
        clf.classify(frame)
        clf.invoke(x)
    bare, full, pre, post, inner = [], [], [], [], []
    per_block = max(1, runs // blocks)
    for b in range(blocks):
        # alternate call by call (which goes first flips per block): both sides see the same machine load
        for i in range(per_block):
            for which in (("bare", "full") if (i + b) % 2 == 0 else ("full", "bare")):
                if which == "bare":
                    t0 = time.perf_counter_ns()
                    clf.invoke(x)
                    bare.append(time.perf_counter_ns() - t0)
                else:
                    t0 = time.perf_counter_ns()
                    clf.classify(frame)
                    full.append(time.perf_counter_ns() - t0)
                    pre.append(clf.last_timings_ns["preprocess"])
                    post.append(clf.last_timings_ns["postprocess"])
                    inner.append(clf.last_timings_ns["inference"])
        progress(b + 1, blocks)
    res = {"bare_invoke_ms": pct(bare), "classify_ms": pct(full), "preprocess_ms": pct(pre), "postprocess_ms": pct(post),
           "inference_in_classify_ms": pct(inner)}
    res["ratio_of_medians"] = round(res["classify_ms"]["p50"] / res["bare_invoke_ms"]["p50"], 4)
    # the runtime's own work, free of the noise in two large medians: (pre + post) / bare
    # each classify next to the bare invoke timed just before or after it: the same moment's load
    pairs = np.asarray(full, np.float64) / np.asarray(bare, np.float64)
    res["median_pair_ratio"] = round(float(np.median(pairs)), 4)
    res["added_ms_p50"] = round(res["preprocess_ms"]["p50"] + res["postprocess_ms"]["p50"], 4)
    res["added_over_bare"] = round(res["added_ms_p50"] / res["bare_invoke_ms"]["p50"], 4)
    return res


def plot(results: list[dict], path: Path, threads: int) -> None:
    """Stacked bars per artifact: pre-processing, inference inside classify, post-processing; the bare invoke beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{r['artifact']}\n{r['backend']}" for r in results]
    x = np.arange(len(results))
    pre = [r["preprocess_ms"]["p50"] for r in results]
    inf = [r["inference_in_classify_ms"]["p50"] for r in results]
    post = [r["postprocess_ms"]["p50"] for r in results]
    bare = [r["bare_invoke_ms"]["p50"] for r in results]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, bare, 0.38, label="bare invoke", color="#999999")
    ax.bar(x + 0.2, inf, 0.38, label="classify: inference", color="#4c72b0")
    ax.bar(x + 0.2, pre, 0.38, bottom=inf, label="classify: pre-processing", color="#dd8452")
    ax.bar(x + 0.2, post, 0.38, bottom=np.add(inf, pre), label="classify: post-processing", color="#55a868")
    for i, r in enumerate(results):
        ax.text(x[i] + 0.2, inf[i] + pre[i] + post[i], f"+{r['added_over_bare'] * 100:.0f}%", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("median ms per frame")
    ax.set_title(f"classify() on a 640x480 frame vs bare invoke ({threads} threads)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=200, help="timed calls per side and artifact")
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--work", default="/tmp/edgerec-bench")
    ap.add_argument("--out", default=str(HERE / "results" / "runtime_overhead.json"))
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from _fixtures.runtime import make_benchmark_bundle
    from tqdm import tqdm

    from edgerec.runtime import Classifier

    bundle = make_benchmark_bundle(Path(args.work) / f"mnv3s-{args.size}", args.size)
    host = machine()
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    combos = [("tflite", "int8", "litert"), ("tflite", "fp32", "litert"), ("onnx", "fp32", "onnxruntime"),
              ("onnx", "fp32", "openvino"), ("openvino", "fp32", "openvino")]
    results = []
    bar = tqdm(total=len(combos) * args.blocks, desc="overhead", unit="block")
    for fmt, prec, backend in combos:
        with Classifier.load(bundle, format=fmt, precision=prec, backend=backend, threads=args.threads) as clf:
            r = measure(clf, frame, args.runs, args.blocks, lambda *_: bar.update(1))
            r.update({"artifact": clf.artifact.key, "backend": backend, "backend_version": clf.backend.version,
                      "input": f"{clf.artifact.layout} {clf.artifact.input_dtype}"})
            results.append(r)
    bar.close()
    out = {"benchmark": "runtime_overhead", "model": f"mobilenet_v3_small {args.size}px, 10 classes, random weights",
           "frame": "640x480 BGR uint8", "threads": args.threads, "machine": host,
           "loadavg_end": [round(x, 2) for x in os.getloadavg()], "target": "classify/bare <= 1.10 for tflite-int8",
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    plot(results, Path(args.out).with_suffix(".png"), args.threads)
    print(f"{'artifact':<16}{'backend':<13}{'bare p50':>10}{'classify p50':>14}{'pre p50':>9}{'post p50':>10}"
          f"{'ratio':>8}{'pair':>7}{'added':>7}")
    for r in results:
        print(f"{r['artifact']:<16}{r['backend']:<13}{r['bare_invoke_ms']['p50']:>10.3f}{r['classify_ms']['p50']:>14.3f}"
              f"{r['preprocess_ms']['p50']:>9.3f}{r['postprocess_ms']['p50']:>10.3f}{r['ratio_of_medians']:>8.3f}"
              f"{r['median_pair_ratio']:>7.3f}{r['added_over_bare']:>7.3f}")
    print(f"(ms; {args.threads} threads; written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
