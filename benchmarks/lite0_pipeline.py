"""EfficientNet-Lite0 at 224 px through the whole pipeline: fine-tune, QAT, export, then int8 against fp32.

One run, side by side:

1. **train**: ImageNet-pretrained EfficientNet-Lite0 fine-tuned at 224 px on a subset of the built-in digits
   (scikit-learn's handwritten scans; ``--train-per-class`` training images per class, a fixed held-out
   test set of ``--test-per-class``), with ``edgerec train``'s defaults plus ``qat: true``;
2. **export** to TFLite, ONNX and OpenVINO at fp32 and int8 (``edgerec.export.export``, every artifact
   verified by its own runtime);
3. **agreement**: every artifact run as the runtime runs it (OpenCV reader, ``model_image``,
   ``to_model_input``, its backend) on the held-out images, its top-1 against the fine-tuned float model
   *before* QAT (``best.pt``) in PyTorch;
4. **latency**: each artifact's backend (``open_backend``: LiteRT, ONNX Runtime, OpenVINO) at 1 and 2
   threads, invokes of one real held-out image, all twelve interleaved round by round, medians; int8 / fp32
   per backend and thread count (the medians' ratio, and the median of the per-round ratios);
5. **size**: int8 / fp32 bytes per format;
6. **graphs**: what each backend runs: the LiteRT op list, ONNX Runtime's optimized graph, OpenVINO's
   compiled graph with each layer's precision (float islands, transposes and clamps left in float show here).

Goals (issue 9): agreement >= 99 %, int8 latency <= 0.6x fp32, int8 size <= 0.30x fp32.

    python benchmarks/lite0_pipeline.py                          # ~15 min of CPU on two cores
    python benchmarks/lite0_pipeline.py --run RUN --bundle B     # reuse a trained run and its bundle

Writes benchmarks/results/lite0_pipeline.json and .png.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
GOALS = {"agreement": 0.99, "latency_ratio": 0.6, "size_ratio": 0.30}
FORMATS = ("tflite", "onnx", "openvino")
BACKEND_OF = {"tflite": "litert", "onnx": "onnxruntime", "openvino": "openvino"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# --------------------------------------------------------------------------- data and training


def make_data(root: Path, *, train: int, val: int, test: int, seed: int) -> Path:
    """train/ val/ test/ folders drawn per class, without overlap, from the built-in digits."""
    from edgerec.data import write_digits

    pool = write_digits(root / "pool", size=32, seed=0, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = root / "digits-subset"
    shutil.rmtree(out, ignore_errors=True)
    for cls in sorted(d for d in pool.iterdir() if d.is_dir()):
        files = sorted(cls.iterdir())
        pick = rng.permutation(len(files))[: train + val + test]
        parts = {"train": pick[:train], "val": pick[train:train + val], "test": pick[train + val:]}
        for part, idx in parts.items():
            d = out / part / cls.name
            d.mkdir(parents=True, exist_ok=True)
            for i in idx:
                shutil.copy2(files[i], d / files[i].name)
    return out


def train_run(data: Path, out: Path, threads: int, img_size: int, epochs: int | None) -> dict:
    import logging

    from edgerec.train import load_config, train

    logger = logging.getLogger("edgerec")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    cfg = load_config({"data": str(data), "out": str(out), "model": "efficientnet_lite0", "weights": "imagenet",
                       "img_size": img_size, "epochs": epochs, "qat": True, "threads": threads, "plots": False,
                       "overwrite": True})
    t0, c0 = time.perf_counter(), cpu_s()
    run = train(cfg)
    m = run.metrics
    used = run.config  # batch_size resolved by the run
    return {"seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(cpu_s() - c0, 1),
            "config": {"epochs": used.epochs, "head_epochs": used.head_epochs, "batch_size": used.batch_size,
                       "lr": used.lr, "qat_epochs": used.qat_cfg.epochs, "qat_keep": used.qat_cfg.keep,
                       "quantizer": used.quantizer},
            "int8_method": m.get("int8_method"), "int8_choice": m.get("int8_choice"),
            "test_accuracy": {p: m["test"][p]["accuracy"] for p in m["test"]},
            "val_accuracy": {p: m["val"][p]["accuracy"] for p in m["val"]},
            "best_epoch": m.get("best_epoch"), "warnings": [w["code"] for w in m.get("warnings", [])]}


# --------------------------------------------------------------------------- agreement


def held_out(run: Path) -> tuple[list[Path], np.ndarray]:
    from edgerec.data.split import Split

    split = Split.load(run / "split.json")
    parts = split.parts()
    samples = split.dataset.samples
    return [samples[i].path for i in parts["test"]], np.array([samples[i].label for i in parts["test"]])


def torch_top1(run: Path, paths: list[Path]) -> np.ndarray:
    """Top-1 of the fine-tuned float model before QAT (``best.pt``) on the images as the runtime reads them."""
    import torch

    from edgerec.runtime.adapters import normalize
    from edgerec.runtime.image import model_image, read_image_bgr
    from edgerec.train.checkpoint import load_run

    loaded = load_run(run)
    spec = loaded.input_spec
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), 32):
            rgb = np.stack([model_image(read_image_bgr(p), spec)[..., ::-1] for p in paths[i:i + 32]])
            x = torch.from_numpy(np.ascontiguousarray(normalize(rgb, spec).transpose(0, 3, 1, 2)))
            out.append(loaded.model(x).argmax(1).numpy())
    return np.concatenate(out)


def runtime_top1(bundle: Path, artifact, spec, paths: list[Path], threads: int) -> np.ndarray:
    """Top-1 of one artifact: the runtime's reader and pre-processing, its backend, argmax of the raw output
    (dequantizing is monotonic). Also for artifacts export marked failed on a bound: they are measured too."""
    from edgerec.runtime.adapters import to_model_input
    from edgerec.runtime.backends import open_backend
    from edgerec.runtime.image import model_image, read_image_bgr

    backend = open_backend(bundle / artifact.file, artifact, backend=BACKEND_OF[artifact.format], threads=threads)
    try:
        out = []
        for p in paths:
            rgb = model_image(read_image_bgr(p), spec)[..., ::-1]
            out.append(int(np.argmax(backend.invoke(np.ascontiguousarray(to_model_input(rgb[None], spec, artifact))))))
        return np.array(out)
    finally:
        backend.close()


# --------------------------------------------------------------------------- latency


class Timed:
    """One artifact in its runtime backend, with one held-out image as its input tensor."""

    def __init__(self, bundle: Path, artifact, spec, pixels: np.ndarray, threads: int):
        from edgerec.runtime.adapters import to_model_input
        from edgerec.runtime.backends import open_backend

        self.backend = open_backend(bundle / artifact.file, artifact, backend=BACKEND_OF[artifact.format],
                                    threads=threads)
        self.x = np.ascontiguousarray(to_model_input(pixels[None], spec, artifact))

    def __call__(self):
        self.backend.invoke(self.x)


class OpenVINODefaultPrecision:
    """An fp32 IR compiled with OpenVINO's own default inference precision (bf16 on CPUs with AVX512-BF16 or
    AMX). The runtime pins f32 for fp32 artifacts; this row shows what that choice costs here."""

    def __init__(self, path: Path, x: np.ndarray, threads: int):
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                              "INFERENCE_NUM_THREADS": threads})
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = self.compiled.create_infer_request()
        self.x = x

    def __call__(self):
        self.request.infer({0: self.x})


def time_interleaved(runners: dict, *, rounds: int, per_round: int, warmup: int) -> tuple[dict, dict, list]:
    """Per-invoke times (ms) per runner and per-round medians; the order flips every round."""
    for r in runners.values():
        for _ in range(warmup):
            r()
    times = collections.defaultdict(list)
    rounds_med = collections.defaultdict(list)
    loads = []
    keys = list(runners)
    for k in range(rounds):
        order = keys if k % 2 == 0 else keys[::-1]
        loads.append(os.getloadavg()[0])
        for key in order:
            r, ts = runners[key], []
            for _ in range(per_round):
                t = time.perf_counter_ns()
                r()
                ts.append((time.perf_counter_ns() - t) / 1e6)
            times[key].extend(ts)
            rounds_med[key].append(statistics.median(ts))
        if (k + 1) % 5 == 0 or k == rounds - 1:
            log(f"latency round {k + 1}/{rounds} (load {loads[-1]:.1f})")
    return times, rounds_med, loads


# --------------------------------------------------------------------------- graphs


def graph_facts(path: Path, artifact, threads: int = 1) -> dict:
    """What each backend runs: op types (and precisions for OpenVINO), float islands counted."""
    fmt = artifact.format
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(str(path))
        tensors = {t["index"]: t for t in it.get_tensor_details()}
        ops = it._get_ops_details()
        counts = collections.Counter(o["op_name"] for o in ops)
        float_ops = collections.Counter(o["op_name"] for o in ops if o["outputs"].size and
                                        tensors[o["outputs"][0]]["dtype"].__name__ == "float32")
        return {"ops": dict(counts), "ops_with_float_output": dict(float_ops)}
    if fmt == "onnx":
        import onnx
        import onnxruntime as ort

        file_ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
        with tempfile.TemporaryDirectory() as tmp:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
            so.log_severity_level = 3
            ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            run_ops = collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
        # a DequantizeLinear ONNX Runtime could not fuse into a QLinear* kernel starts a float region
        return {"file_ops": dict(file_ops), "runtime_ops": dict(run_ops),
                "float_regions": run_ops.get("DequantizeLinear", 0) - (1 if artifact.precision == "int8" else 0)}
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    if artifact.precision in ("fp32", "fp16"):
        config["INFERENCE_PRECISION_HINT"] = "f32"  # as the runtime's backend compiles it
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    layers = collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        layers[(rt["layerType"].astype(str), rt["runtimePrecision"].astype(str))] += 1
    compute = {"Convolution", "FullyConnected", "Eltwise", "Pad", "Reduce", "Subgraph", "FakeQuantize", "MatMul"}
    by_prec = collections.Counter()
    for (layer, prec), n in layers.items():
        if layer in compute:
            by_prec[f"{layer} {prec}"] += n
    return {"compute_layers_by_precision": dict(sorted(by_prec.items())),
            "float_compute_layers": sum(n for (layer, prec), n in layers.items()
                                        if layer in compute and prec in ("f32", "bf16", "f16"))}


# --------------------------------------------------------------------------- report


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    arts = [a for a in result["agreement"] if a["precision"] == "int8"]
    ax.bar([a["format"] for a in arts], [100 * a["agreement"] for a in arts], color="tab:blue")
    ax.axhline(100 * GOALS["agreement"], color="red", ls="--", label="goal 99 %")
    lo = min([100 * a["agreement"] for a in arts] + [98.0])
    ax.set_ylim(lo - 1, 100.5)
    ax.set_ylabel("top-1 agreement with float before QAT (%)")
    ax.set_title(f"int8 agreement ({arts[0]['n_images'] if arts else 0} held-out images)")
    ax.legend(loc="lower right")

    ax = axes[1]
    rows = result["latency"]["int8_vs_fp32"]
    labels = [f"{r['format']}\n{r['threads']} thr" for r in rows]
    ratios = [r["ratio"] for r in rows]
    bars = ax.bar(labels, ratios, color=["tab:green" if v <= GOALS["latency_ratio"] else "tab:orange" for v in ratios])
    for b, r in zip(bars, rows):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, f"{r['int8_ms']:.1f}/{r['fp32_ms']:.1f} ms",
                ha="center", fontsize=7)
    ax.axhline(GOALS["latency_ratio"], color="red", ls="--", label="goal 0.6x")
    ax.set_ylabel("int8 / fp32 median latency")
    ax.set_title("latency, each format in its runtime")
    ax.legend(loc="upper right")

    ax = axes[2]
    sizes = result["size"]
    ax.bar([s["format"] for s in sizes], [s["ratio"] for s in sizes], color="tab:purple")
    for i, s in enumerate(sizes):
        ax.text(i, s["ratio"] + 0.005, f"{s['int8_mb']:.1f}/{s['fp32_mb']:.1f} MB", ha="center", fontsize=8)
    ax.axhline(GOALS["size_ratio"], color="red", ls="--", label="goal 0.30x")
    ax.set_ylabel("int8 / fp32 bytes")
    ax.set_title("size")
    ax.legend(loc="upper right")
    fig.suptitle("EfficientNet-Lite0, 224 px, fine-tuned on digits with QAT: int8 against fp32")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-per-class", type=int, default=30)
    ap.add_argument("--val-per-class", type=int, default=8)
    ap.add_argument("--test-per-class", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--epochs", type=int, help="fine-tuning epochs (default: edgerec train's)")
    ap.add_argument("--threads", type=int, default=2, help="training, export and agreement threads")
    ap.add_argument("--bench-threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=10, help="invokes per artifact per round")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--run", type=Path, help="reuse this trained run (skip training)")
    ap.add_argument("--bundle", type=Path, help="reuse this bundle (skip export)")
    ap.add_argument("--work", type=Path, help="keep data, run and bundle here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=RESULTS / "lite0_pipeline.json")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="edgerec-lite0-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"benchmark": "lite0_pipeline", "model": "efficientnet_lite0", "weights": "imagenet",
                    "img_size": args.img_size, "goals": GOALS, "load_avg_start": os.getloadavg()}
    started, cpu0 = time.perf_counter(), cpu_s()
    try:
        run = args.run
        if run is None:
            data = make_data(work, train=args.train_per_class, val=args.val_per_class, test=args.test_per_class,
                             seed=args.seed)
            log(f"training on {data} ({args.train_per_class}/class, val {args.val_per_class}/class, "
                f"test {args.test_per_class}/class), qat: true")
            run = work / "run"
            result["train"] = train_run(data, run, args.threads, args.img_size, args.epochs)
            log(f"trained in {result['train']['seconds']} s: test {result['train']['test_accuracy']}")
        result["data"] = {"train_per_class": args.train_per_class, "val_per_class": args.val_per_class,
                          "test_per_class": args.test_per_class, "seed": args.seed, "run": str(run)}

        from edgerec.bundle import load_manifest

        bundle = args.bundle
        if bundle is None:
            from edgerec.export import export

            bundle = work / "bundle"
            log("exporting tflite, onnx, openvino x fp32, int8")
            t0, c0 = time.perf_counter(), cpu_s()
            export(run, formats=FORMATS, precisions=("fp32", "int8"), out=bundle, threads=args.threads,
                   max_eval=1000, archive=False, strict=False, progress=False)
            result["export"] = {"seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(cpu_s() - c0, 1)}
        manifest = load_manifest(bundle)
        spec = manifest.input
        arts = {(a.format, a.precision): a for a in manifest.artifacts if a.file and (bundle / a.file).is_file()}
        failed = {k: a.error for k, a in arts.items() if a.status != "ok"}
        if failed:
            log(f"artifacts that failed: {failed}")
        result["manifest_verification"] = {
            f"{f}/{p}": {"status": a.status, **(vars(a.verification) if a.verification else {})}
            for (f, p), a in arts.items()}
        result["manifest_reference"] = manifest.reference

        # agreement, through the runtime, with the float model before QAT
        paths, labels = held_out(run)
        log(f"agreement on {len(paths)} held-out images")
        ref = torch_top1(run, paths)
        result["float_before_qat_accuracy"] = float((ref == labels).mean())
        result["agreement"] = []
        for fmt in FORMATS:
            for prec in ("fp32", "int8"):
                if (fmt, prec) not in arts:
                    continue
                top1 = runtime_top1(bundle, arts[(fmt, prec)], spec, paths, args.threads)
                row = {"format": fmt, "precision": prec, "n_images": len(paths), "status": arts[(fmt, prec)].status,
                       "agreement": float((top1 == ref).mean()), "disagreements": int((top1 != ref).sum()),
                       "accuracy": float((top1 == labels).mean())}
                result["agreement"].append(row)
                log(f"  {fmt:8s} {prec}: agreement {100 * row['agreement']:.2f} % ({row['disagreements']} differ), "
                    f"accuracy {100 * row['accuracy']:.2f} %")

        # size
        result["size"] = []
        for fmt in FORMATS:
            a32, a8 = arts.get((fmt, "fp32")), arts.get((fmt, "int8"))
            if not (a32 and a8 and a32.size_bytes and a8.size_bytes):
                continue
            row = {"format": fmt, "fp32_mb": a32.size_bytes / 1e6, "int8_mb": a8.size_bytes / 1e6,
                   "ratio": a8.size_bytes / a32.size_bytes}
            if fmt == "openvino":  # the weights alone (.bin); the .xml grows with the FakeQuantize nodes
                b32, b8 = [(bundle / f).stat().st_size for a in (a32, a8) for f in a.files if f.endswith(".bin")]
                row["bin_ratio"] = b8 / b32
            result["size"].append(row)

        # graphs
        result["graphs"] = {f"{f}/{p}": graph_facts(bundle / a.file, a) for (f, p), a in arts.items()}

        # latency, interleaved
        from edgerec.runtime.image import model_image, read_image_bgr

        pixels = model_image(read_image_bgr(paths[0]), spec)[..., ::-1].copy()  # RGB, as the model takes it
        threads = [int(t) for t in args.bench_threads.split(",")]
        runners = {}
        for t in threads:
            for fmt in FORMATS:
                for prec in ("fp32", "int8"):
                    if (fmt, prec) in arts:
                        runners[(fmt, prec, t)] = Timed(bundle, arts[(fmt, prec)], spec, pixels, t)
            a = arts.get(("openvino", "fp32"))
            if a is not None:
                extra = OpenVINODefaultPrecision(bundle / a.file, runners[("openvino", "fp32", t)].x, t)
                runners[("openvino", "fp32-default-precision", t)] = extra
                result["openvino_default_precision"] = extra.precision
        log(f"latency: {len(runners)} runners, {args.rounds} rounds x {args.per_round} invokes")
        times, rounds_med, loads = time_interleaved(runners, rounds=args.rounds, per_round=args.per_round,
                                                    warmup=args.warmup)
        result["latency"] = {
            "rounds": args.rounds, "invokes_per_round": args.per_round, "warmup": args.warmup,
            "load_avg_per_round": loads,
            "backends": {k[0]: r.backend.version for k, r in runners.items() if hasattr(r, "backend")},
            "per_artifact": [{"format": f, "precision": p, "threads": t,
                              "median_ms": statistics.median(times[(f, p, t)]),
                              "p90_ms": float(np.percentile(times[(f, p, t)], 90))} for (f, p, t) in runners],
            "int8_vs_fp32": [],
        }
        for t in threads:
            for fmt in FORMATS:
                k32, k8 = (fmt, "fp32", t), (fmt, "int8", t)
                if k32 not in times or k8 not in times:
                    continue
                m32, m8 = statistics.median(times[k32]), statistics.median(times[k8])
                per_round = [a / b for a, b in zip(rounds_med[k8], rounds_med[k32])]
                row = {"format": fmt, "backend": BACKEND_OF[fmt], "threads": t, "fp32_ms": m32, "int8_ms": m8,
                       "ratio": m8 / m32, "ratio_per_round_median": statistics.median(per_round),
                       "ratio_per_round_range": [min(per_round), max(per_round)]}
                if fmt == "openvino":
                    row["fp32_default_precision_ms"] = statistics.median(times[("openvino", "fp32-default-precision", t)])
                result["latency"]["int8_vs_fp32"].append(row)
                log(f"  {fmt:8s} {t} thr: fp32 {m32:7.2f} ms  int8 {m8:7.2f} ms  int8/fp32 {m8 / m32:.3f} "
                    f"(per-round median {row['ratio_per_round_median']:.3f})")
        for r in runners.values():
            if hasattr(r, "backend"):
                r.backend.close()
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    from edgerec._versions import package_versions

    result["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                         "platform": platform.platform(), "load_avg_end": os.getloadavg()}
    result["versions"] = {"python": platform.python_version(), **package_versions(
        ("torch", "torchvision", "torchao", "litert-torch", "ai-edge-litert", "onnx", "onnxruntime", "openvino"))}
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["cpu_seconds"] = round(cpu_s() - cpu0, 1)
    result["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["goals_met"] = {
        "agreement": {r["format"]: r["agreement"] >= GOALS["agreement"] for r in result["agreement"] if r["precision"] == "int8"},
        "latency": {f"{r['format']}/{r['threads']}": r["ratio"] <= GOALS["latency_ratio"] for r in result["latency"]["int8_vs_fp32"]},
        "size": {r["format"]: r["ratio"] <= GOALS["size_ratio"] for r in result["size"]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    plot(result, args.out.with_suffix(".png"))
    for r in result["size"]:
        log(f"  size {r['format']:8s}: {r['int8_mb']:.2f} / {r['fp32_mb']:.2f} MB = {r['ratio']:.3f}")
    log(f"goals met: {json.dumps(result['goals_met'])}")
    log(f"wrote {args.out} and {args.out.with_suffix('.png').name} ({result['wall_seconds']} s, "
        f"{result['cpu_seconds']} CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
