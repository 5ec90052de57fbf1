"""Do edgerec's latency figures agree with each ecosystem's own profiler on the same artifact?

Pairs (same model file, same thread count, one inference at a time, batch 1):

* OpenVINO IR on OpenVINO: ``edgerec bench --backend openvino`` vs ``benchmark_app -hint none -nstreams 1
  -nthreads T -api sync -infer_precision f32`` (the pip ``openvino`` package's own tool; ``-hint none``
  because benchmark_app refuses ``-nthreads`` under a hint, one stream + sync API is exactly latency mode,
  and f32 because edgerec's backend keeps fp32/fp16 artifacts in f32 where OpenVINO would default to bf16).
* TFLite on LiteRT: ``edgerec bench --backend litert`` vs ``litert-benchmark --num_threads T`` (the tool that
  ships in the ``ai-edge-litert`` wheel; it times ``CompiledModel.run_by_name``, edgerec times the classic
  ``Interpreter.invoke`` - both run XNNPACK on the CPU).

Every tool runs as its own process. The two tools of a pair run back to back (which one goes first
alternates by round), so both see the same load from the rest of the machine; the summary is the median
over rounds of (edgerec median / reference median), with its interquartile range, and the ratio of the two
tools' best-case (minimum) latencies, the figure least disturbed by other load.

    python benchmarks/profiler_agreement.py [--rounds 10] [--threads 1,2] [--runs 100] [--pin 1]
Writes benchmarks/results/profiler_agreement.json (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
TARGET = 0.15  # within +-15 %


def build(work: Path, size: int) -> Path:
    """MobileNetV3-small (random weights, 10 classes) at ``size`` px as TFLite fp32 and OpenVINO IR."""
    bundle = work / f"mnv3s-{size}"
    if (bundle / "edgerec.json").is_file():
        return bundle
    import torch

    torch.set_num_threads(2)
    sys.path.insert(0, str(REPO / "tests" / "bench"))
    from builder import build_bundle

    from edgerec.train.models import build_model

    model = build_model("mobilenet_v3_small", 10).eval()
    return build_bundle(bundle, model=model, size=size, formats=("tflite", "openvino"), name="mnv3s")


PIN: set[int] | None = None  # --pin: every tool process runs on these cores only


def _pinned():
    if PIN:
        os.sched_setaffinity(0, PIN)


def _env(threads: int) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_edgerec(bundle: Path, artifact: str, backend: str, threads: int, runs: int) -> dict:
    cmd = [str(BIN / "edgerec"), "bench", str(bundle), "--artifact", artifact, "--backend", backend,
           "--threads", str(threads), "--runs", str(runs), "--json", "--no-store"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), check=True, preexec_fn=_pinned).stdout
    rec = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    return {"median_ms": rec["latency_ms"]["p50"], "mean_ms": rec["latency_ms"]["mean"],
            "min_ms": rec["latency_ms"]["min"], "n": rec["latency_ms"]["n"]}


_UNITS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def run_benchmark_app(xml: Path, threads: int, runs: int) -> dict:
    # -infer_precision f32: edgerec's OpenVINO backend keeps fp32/fp16 artifacts in f32, while OpenVINO's
    # default on CPUs with AVX512-BF16/AMX is bf16 (several times faster, slightly different logits)
    cmd = [str(BIN / "benchmark_app"), "-m", str(xml), "-d", "CPU", "-hint", "none", "-nstreams", "1",
           "-nthreads", str(threads), "-api", "sync", "-niter", str(runs), "-infer_precision", "f32"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), check=True, preexec_fn=_pinned).stdout

    def grab(name):
        m = re.search(rf"{name}:\s*([\d.]+)\s*(ns|us|ms|s)\b", out)
        return float(m.group(1)) * _UNITS[m.group(2)]

    return {"median_ms": grab("Median"), "mean_ms": grab("Average"), "min_ms": grab("Min"), "n": runs}


def run_litert_benchmark(tflite: Path, threads: int, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        js = Path(d) / "r.json"
        cmd = [str(BIN / "litert-benchmark"), "--model", str(tflite), "--num_threads", str(threads),
               "--num_runs", str(runs), "--warmup_runs", "20", "--result_json", str(js)]
        subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), check=True, preexec_fn=_pinned)
        lat = json.loads(js.read_text())["latency"]
    return {"median_ms": lat["median_ms"], "mean_ms": lat["avg_ms"], "min_ms": lat["min_ms"], "n": lat["num_runs"]}


def same_process_control(bundle: Path, threads: int, chunks: int = 40, chunk: int = 10) -> list[dict]:
    """edgerec's backends vs each tool's own inference call, alternating in one process.

    Separate processes on a busy machine see different load; here both calls see the same, so any gap
    is edgerec's own overhead (wrapper, input copy, configuration), not noise.
    """
    import numpy as np
    import openvino as ov

    from edgerec.bundle import load_manifest
    from edgerec.runtime.backends import open_backend

    m = load_manifest(bundle)
    out = []
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, m.input.height, m.input.width)).astype(np.float32)

    # OpenVINO: edgerec's backend vs benchmark_app's configuration (-hint none -nstreams 1 -nthreads T, sync)
    art = m.artifact("openvino")
    ours = open_backend(bundle / art.file, art, backend="openvino", threads=threads)
    core = ov.Core()
    cfg = {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,  # no hint, as benchmark_app -hint none
           "INFERENCE_PRECISION_HINT": "f32"}
    req = core.compile_model(core.read_model(str(bundle / art.file)), "CPU", cfg).create_infer_request()
    out.append(_alternate("openvino", threads, lambda: ours.invoke(x), lambda: req.infer({0: x}), chunks, chunk))

    # LiteRT: edgerec's backend (Interpreter.invoke) vs litert-benchmark's call (CompiledModel.run_by_name)
    import ai_edge_litert.tools.benchmark_litert_model as lb

    art = m.artifact("tflite")
    ours_l = open_backend(bundle / art.file, art, backend="litert", threads=threads)
    opts = argparse.Namespace(use_cpu=True, use_gpu=False, use_npu=False, no_cpu=False, num_threads=threads,
                              dispatch_library_path=None, compiler_plugin_path=None, runtime_path=None,
                              require_full_delegation=False)
    cm_cls, hw_cls, env_cls, env_opts_cls, opts_cls, cpu_opts_cls = lb._import_litert()
    env = lb.create_environment(opts, env_cls, env_opts_cls)
    model = cm_cls.from_file(str(bundle / art.file), environment=env,
                             options=lb.create_model_options(opts, opts_cls, cpu_opts_cls, lb.build_hardware_accelerators(opts, hw_cls)))
    sig = next(iter(model.get_signature_list()))
    ins = {n: model.create_input_buffer_by_name(sig, n) for n in model.get_input_tensor_details(sig)}
    outs = {n: model.create_output_buffer_by_name(sig, n) for n in model.get_output_tensor_details(sig)}
    for buf in ins.values():
        buf.write(x)
    out.append(_alternate("litert", threads, lambda: ours_l.invoke(x), lambda: model.run_by_name(sig, ins, outs), chunks, chunk))
    return out


def _alternate(name, threads, ours, theirs, chunks, chunk) -> dict:
    for f in (ours, theirs):
        for _ in range(20):
            f()
    ta, tb = [], []
    clock = time.perf_counter_ns
    for _ in range(chunks):
        for f, acc in ((ours, ta), (theirs, tb)):
            for _ in range(chunk):
                t0 = clock()
                f()
                acc.append(clock() - t0)
    ma, mb = statistics.median(ta) / 1e6, statistics.median(tb) / 1e6
    return {"backend": name, "threads": threads, "edgerec_median_ms": ma, "tool_call_median_ms": mb,
            "ratio_median": ma / mb, "edgerec_min_ms": min(ta) / 1e6, "tool_call_min_ms": min(tb) / 1e6,
            "ratio_min": min(ta) / min(tb), "n": len(ta)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "edgerec-profiler-agreement"))
    p.add_argument("--out", default=str(HERE / "results" / "profiler_agreement.json"))
    p.add_argument("--pin", help="run every tool (and the same-process control) on these cores, e.g. 1")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    global PIN
    PIN = {int(c) for c in args.pin.split(",")} if args.pin else None
    if PIN:
        os.sched_setaffinity(0, PIN)
    bundle = build(Path(args.work), args.size)
    from edgerec.bundle import load_manifest

    m = load_manifest(bundle)
    tfl = m.artifact("tflite")
    ovi = m.artifact("openvino")
    tools = {
        "edgerec/openvino": lambda t: run_edgerec(bundle, ovi.key, "openvino", t, args.runs),
        "benchmark_app": lambda t: run_benchmark_app(bundle / ovi.file, t, args.runs),
        "edgerec/litert": lambda t: run_edgerec(bundle, tfl.key, "litert", t, args.runs),
        "litert-benchmark": lambda t: run_litert_benchmark(bundle / tfl.file, t, args.runs),
    }
    pairs = [("edgerec/openvino", "benchmark_app"), ("edgerec/litert", "litert-benchmark")]
    raw = []
    t_start = time.time()
    for r in range(args.rounds):
        for a, b in pairs:
            for t in threads:
                # the two tools of a pair run back to back, the first one alternating by round
                for name in ((a, b) if r % 2 == 0 else (b, a)):
                    res = tools[name](t)
                    raw.append({"round": r, "threads": t, "tool": name, **res})
                    print(f"round {r} threads {t} {name:<18} median {res['median_ms']:.3f} min {res['min_ms']:.3f} ms",
                          flush=True)
    summary = []
    for a, b in pairs:
        for t in threads:
            ra = [x for x in raw if x["threads"] == t and x["tool"] == a]
            rb = [x for x in raw if x["threads"] == t and x["tool"] == b]
            ratios = [x["median_ms"] / y["median_ms"] for x, y in zip(ra, rb)]
            q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            ratio = statistics.median(ratios)
            min_ratio = min(x["min_ms"] for x in ra) / min(y["min_ms"] for y in rb)
            summary.append({
                "edgerec": a, "reference": b, "threads": t,
                "edgerec_median_ms": statistics.median(x["median_ms"] for x in ra),
                "reference_median_ms": statistics.median(y["median_ms"] for y in rb),
                "ratio_median": ratio, "ratio_iqr": [q[0], q[2]], "ratio_per_round": ratios,
                "edgerec_min_ms": min(x["min_ms"] for x in ra), "reference_min_ms": min(y["min_ms"] for y in rb),
                "ratio_min": min_ratio,
                "within_15pct": abs(ratio - 1) <= TARGET, "min_within_15pct": abs(min_ratio - 1) <= TARGET,
            })
    control = [c for t in threads for c in same_process_control(bundle, t)]
    out = {
        "same_process_control": control,
        "what": ("each tool a separate process; the two tools of a pair run back to back, first one alternating; "
                 "ratio_median = median over rounds of edgerec median / reference median; ratio_min = best-case "
                 "(minimum) latency of edgerec / of the reference over all rounds"),
        "model": f"mobilenet_v3_small (random weights) {args.size}x{args.size}, {tfl.key} and {ovi.key}",
        "runs_per_measurement": args.runs, "rounds": args.rounds, "threads": threads,
        "pinned_cores": sorted(PIN) if PIN else None,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_avg_at_end": list(os.getloadavg())},
        "seconds": round(time.time() - t_start, 1),
        "summary": summary, "raw": raw,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for s in summary:
        print(f"{s['edgerec']:<18} vs {s['reference']:<17} t{s['threads']}: median ratio {s['ratio_median']:.3f} "
              f"(IQR {s['ratio_iqr'][0]:.2f}-{s['ratio_iqr'][1]:.2f}), min {s['edgerec_min_ms']:.3f} vs "
              f"{s['reference_min_ms']:.3f} ms = {s['ratio_min']:.3f}; "
              f"{'within' if s['within_15pct'] and s['min_within_15pct'] else 'OUTSIDE'} +-15%")
    for c in control:
        print(f"same process, alternating: edgerec/{c['backend']} vs the tool's own call t{c['threads']}: "
              f"median {c['edgerec_median_ms']:.3f} vs {c['tool_call_median_ms']:.3f} ms = {c['ratio_median']:.3f}; "
              f"min ratio {c['ratio_min']:.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
