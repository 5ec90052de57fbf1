"""What does one call of the runtime's ``Backend.invoke`` cost beyond what the backend itself needs?

Per bundle, artifact and thread count, the p50 of ``Backend.invoke`` timed exactly as ``edgerec bench`` times
it (``perf_counter_ns`` around the call, cycling through the bundle's check images prepared as the runtime
prepares them) against each ecosystem's own figure for the same model file:

* OpenVINO IR: ``benchmark_app -hint none -nstreams 1 -nthreads T -api sync`` (latency mode, one request; its
  ``Median`` is the request's own C++ latency, no Python in it), ``-infer_precision f32`` for fp32/fp16
  artifacts as edgerec's backend asks; when the model's batch is open, ``-shape`` (the model fixed to the
  input's shape, as the backend compiles a batch-1 copy) or, where the backend runs the open model,
  ``-data_shape``;
* TFLite: ``litert-benchmark --num_threads T`` (ships in the ``ai-edge-litert`` wheel; its ``median_ms``);
* ONNX: a bare ``run_with_iobinding`` loop on the backend's own session, input and output bound once,
  timed in the same process, alternating with ``invoke`` in chunks (the same session: no second thread
  pool spinning beside it).

Two processes on a busy machine see different load, so each tool also has a same-process control: for
OpenVINO, the request's own C++ ``latency`` of the very calls ``invoke`` made; for LiteRT,
``CompiledModel.run_by_name`` (litert-benchmark's call) alternating with ``invoke``.

``--baseline-rev REV`` also times the backend modules as they were at git revision ``REV`` (read with
``git show``), alternating with today's in the same process: the before/after of a change to the backends.

Rounds: each round measures every configuration once (in-process variants alternating in chunks of
``--chunk`` calls, then the tool's own process, which one first alternating by round); ratios are per round,
summarised by their median and interquartile range, with the best-case (minimum) ratio beside them.

    python benchmarks/invoke_overhead.py /tmp/digits/bundle [/tmp/mnv2-224] [--threads 1,2] [--rounds 7]
        [--runs 300] [--baseline-rev HEAD] [--pin 1] [--out benchmarks/results/invoke_overhead.json]
    python benchmarks/invoke_overhead.py --build-mobilenet /tmp/mnv2-224   # a 224 px MobileNetV2 bundle first

Bundles: ``edgerec demo --out /tmp/demo`` writes the digits one (``/tmp/demo/bundle``); ``--build-mobilenet``
makes a MobileNetV2 (random weights, 10 classes, 224 px: TFLite fp32/int8, ONNX fp32, OpenVINO fp32) with the
test fixtures' builder. Writes JSON (every round) and a PNG of the ratios next to it.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
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

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
TARGET = 0.15  # within +-15 %
PIN: set[int] | None = None


def _pinned():
    if PIN:
        os.sched_setaffinity(0, PIN)


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def build_mobilenet(out: Path, size: int = 224) -> Path:
    """MobileNetV2 from scratch (random weights) at ``size`` px, via the runtime tests' bundle builder."""
    if (out / "edgerec.json").is_file():
        return out
    import torchvision

    sys.path.insert(0, str(REPO / "tests"))
    from _fixtures.runtime import make_tflite_bundle

    model = torchvision.models.mobilenet_v2(num_classes=10).eval()
    return make_tflite_bundle(out, model, size=size, labels=tuple(f"class{i}" for i in range(10)), calib=4,
                              name=f"mnv2-{size}", onnx_openvino=True)


# -- the backends at another revision ------------------------------------------------------------------
def baseline_backends(rev: str) -> dict[str, type]:
    """The backend classes of ``git show REV:edgerec/runtime/backends/<module>.py``, loaded beside today's."""
    import edgerec.runtime.backends as pkg

    out = {}
    for name, module, cls in (("litert", "litert_backend", "LiteRTBackend"),
                              ("onnxruntime", "ort_backend", "OrtBackend"),
                              ("openvino", "ov_backend", "OpenVINOBackend")):
        src = subprocess.run(["git", "show", f"{rev}:edgerec/runtime/backends/{module}.py"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
        full = f"{pkg.__name__}._baseline_{module}"  # inside the package, so its relative imports resolve
        spec = importlib.util.spec_from_loader(full, loader=None)
        mod = importlib.util.module_from_spec(spec)
        mod.__package__ = pkg.__name__
        sys.modules[full] = mod
        exec(compile(src, f"{rev}:{module}.py", "exec"), mod.__dict__)
        out[name] = getattr(mod, cls)
    return out


# -- the tools ---------------------------------------------------------------------------------------
_UNITS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def run_benchmark_app(model: Path, artifact, threads: int, runs: int, *, shape: tuple[int, ...] | None,
                      fixed: bool = False) -> dict:
    cmd = [str(BIN / "benchmark_app"), "-m", str(model), "-d", "CPU", "-hint", "none", "-nstreams", "1",
           "-nthreads", str(threads), "-api", "sync", "-niter", str(runs)]
    if artifact.precision in ("fp32", "fp16"):
        cmd += ["-infer_precision", "f32"]  # edgerec's backend keeps these in f32 (OpenVINO's default: bf16 on AMX)
    if shape is not None:
        cmd += ["-shape" if fixed else "-data_shape", "[" + ",".join(map(str, shape)) + "]"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), check=True, preexec_fn=_pinned).stdout

    def grab(name):
        m = re.search(rf"{name}:\s*([\d.]+)\s*(ns|us|ms|s)\b", out)
        return float(m.group(1)) * _UNITS[m.group(2)]

    return {"median_ms": grab("Median"), "min_ms": grab("Min"), "n": runs}


def run_litert_benchmark(model: Path, threads: int, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        js = Path(d) / "r.json"
        cmd = [str(BIN / "litert-benchmark"), "--model", str(model), "--num_threads", str(threads),
               "--num_runs", str(runs), "--warmup_runs", "50", "--result_json", str(js)]
        subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), check=True, preexec_fn=_pinned)
        lat = json.loads(js.read_text())["latency"]
    return {"median_ms": lat["median_ms"], "min_ms": lat["min_ms"], "n": lat["num_runs"]}


def bare_iobinding(backend, x: np.ndarray):
    """``run_with_iobinding`` on the backend's own session, input ``x`` and the output bound once."""
    import onnxruntime as ort

    sess = backend._sess
    io = sess.io_binding()
    io.bind_cpu_input(sess.get_inputs()[0].name, x)
    io.bind_output(sess.get_outputs()[0].name)
    sess.run_with_iobinding(io)
    y = io.copy_outputs_to_cpu()[0]
    yv = ort.OrtValue.ortvalue_from_numpy(np.empty_like(y))
    io.bind_ortvalue_output(sess.get_outputs()[0].name, yv)
    keep = (x, yv)
    run = sess.run_with_iobinding

    def call():
        run(io)

    call.keep = keep
    return call


# -- measuring -----------------------------------------------------------------------------------------
def _invoker(backend, tensors, own_latency=None):
    """The bench's timing loop (``edgerec.bench.latency._timed_chunk``): next tensor, time the call.

    ``own_latency()``: the backend's own figure for the call just made (OpenVINO's ``InferRequest.latency``,
    C++-timed, what benchmark_app reports), collected in ``call.side`` (ns).
    """
    state = {"i": 0}
    inv, n = backend.invoke, len(tensors)
    clock = time.perf_counter_ns

    def call():
        x = tensors[state["i"] % n]
        state["i"] += 1
        t0 = clock()
        inv(x)
        dt = clock() - t0
        if own_latency is not None:
            call.side.append(own_latency() * 1e6)
        return dt

    call.side = [] if own_latency is not None else None
    return call


def compiled_model_call(path: Path, threads: int, x: np.ndarray):
    """litert-benchmark's call, ``CompiledModel.run_by_name`` (LiteRT 2), input written once, in this process."""
    import argparse as _ap

    import ai_edge_litert.tools.benchmark_litert_model as lb

    opts = _ap.Namespace(use_cpu=True, use_gpu=False, use_npu=False, no_cpu=False, num_threads=threads,
                         dispatch_library_path=None, compiler_plugin_path=None, runtime_path=None,
                         require_full_delegation=False)
    cm_cls, hw_cls, env_cls, env_opts_cls, opts_cls, cpu_opts_cls = lb._import_litert()
    env = lb.create_environment(opts, env_cls, env_opts_cls)
    model = cm_cls.from_file(str(path), environment=env, options=lb.create_model_options(
        opts, opts_cls, cpu_opts_cls, lb.build_hardware_accelerators(opts, hw_cls)))
    sig = next(iter(model.get_signature_list()))
    ins = {n: model.create_input_buffer_by_name(sig, n) for n in model.get_input_tensor_details(sig)}
    outs = {n: model.create_output_buffer_by_name(sig, n) for n in model.get_output_tensor_details(sig)}
    for buf in ins.values():
        buf.write(x)
    run = model.run_by_name

    def call():
        run(sig, ins, outs)

    call.keep = (env, model, ins, outs)
    return call


def _timed(f):
    def call():
        t0 = time.perf_counter_ns()
        f()
        return time.perf_counter_ns() - t0

    return call


def alternate(variants: dict, runs: int, chunk: int, warmup: int = 50) -> dict:
    """Each variant ``runs`` times, in alternating chunks; per variant p50 and min in ms."""
    for f in variants.values():
        for _ in range(warmup):
            f()
        if getattr(f, "side", None):
            f.side.clear()
    samples = {k: [] for k in variants}
    while min(len(s) for s in samples.values()) < runs:
        for k, f in variants.items():
            acc = samples[k]
            for _ in range(chunk):
                acc.append(f())
    for k, f in variants.items():
        if getattr(f, "side", None):  # the backend's own timing of the same calls
            samples[f"{k}_own"] = list(f.side)
            f.side.clear()
    return {k: {"median_ms": statistics.median(s) / 1e6, "min_ms": min(s) / 1e6, "n": len(s)} for k, s in samples.items()}


def configurations(bundle: Path, threads: list[int], baseline: dict | None, backends: tuple[str, ...] | None = None):
    """(label, artifact, backend name, threads, in-process variants, tool) for every configuration of ``bundle``."""
    from edgerec.bench.inputs import load_images, prepare_tensors
    from edgerec.bundle import load_manifest
    from edgerec.errors import BundleError
    from edgerec.runtime.backends import open_backend

    m = load_manifest(bundle)
    try:
        frames, source = load_images(bundle, m).frames, "check images"
    except BundleError:  # a bundle without check images: camera-sized noise (int8 kernels see varied input)
        rng = np.random.default_rng(0)
        frames, source = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(8)], "random frames"
    plan = []
    for a in m.ok_artifacts():
        if a.embedded_preprocess:
            continue  # any frame size: benchmark_app would need a shape per frame
        backend = {"tflite": "litert", "onnx": "onnxruntime", "openvino": "openvino"}[a.format]
        if backends and backend not in backends:
            continue
        tensors = prepare_tensors(frames, m, a)
        for t in threads:
            be = open_backend(bundle / a.file, a, backend=backend, threads=t)
            own = (lambda be=be: be._request.latency) if backend == "openvino" else None
            variants = {"edgerec": _invoker(be, tensors, own)}
            held = [be]
            if baseline is not None:
                old = baseline[backend](bundle / a.file, a, threads=t)
                held.append(old)
                variants["baseline"] = _invoker(old, tensors)
            if backend == "onnxruntime":
                variants["tool"] = _timed(bare_iobinding(be, tensors[0]))
                tool, tool_name = None, "bare run_with_iobinding"
            elif backend == "openvino":
                shape = tensors[0].shape if None in be.input_signature else None
                # the backend runs batch 1 on a copy fixed to it: benchmark_app gets the same fixed model (-shape)
                fixed = shape is not None and getattr(be, "_fixed_one", False) and shape[0] == 1
                tool = functools.partial(run_benchmark_app, bundle / a.file, a, t, shape=shape, fixed=fixed)
                tool_name = "benchmark_app"
            else:
                tool, tool_name = functools.partial(run_litert_benchmark, bundle / a.file, t), "litert-benchmark"
                variants["compiled_model"] = _timed(compiled_model_call(bundle / a.file, t, tensors[0]))
            plan.append({"bundle": m.name, "artifact": a.key, "backend": backend, "threads": t, "variants": variants,
                         "tool": tool, "tool_name": tool_name, "held": held, "inputs": source,
                         "input": list(tensors[0].shape), "input_dtype": str(tensors[0].dtype)})
    return plan


def _summary(rows: list[dict], key: str, ref: str) -> dict:
    ratios = [r[key]["median_ms"] / r[ref]["median_ms"] for r in rows]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    best = min(r[key]["min_ms"] for r in rows) / min(r[ref]["min_ms"] for r in rows)
    return {"ratio_median": round(statistics.median(ratios), 4), "ratio_iqr": [round(q[0], 4), round(q[2], 4)],
            "ratio_min": round(best, 4), "ratio_per_round": [round(x, 4) for x in ratios],
            f"{key}_median_ms": round(statistics.median(r[key]["median_ms"] for r in rows), 5),
            f"{ref}_median_ms": round(statistics.median(r[ref]["median_ms"] for r in rows), 5),
            "within_15pct": abs(statistics.median(ratios) - 1) <= TARGET}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for p in ("ai-edge-litert", "onnxruntime", "openvino", "numpy"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    try:
        out["edgerec_git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                            text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "edgerec/runtime/backends"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        out["backends_modified_since_commit"] = bool(dirty)
    except OSError:
        pass
    return out


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{s['bundle']} {s['artifact']}\n{s['backend']} t{s['threads']}" for s in summary]
    y = np.arange(len(summary))
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(summary) + 1.5), dpi=110)
    ax.axvspan(1 - TARGET, 1 + TARGET, color="0.9", label="+-15 %")
    ax.axvline(1.0, color="0.5", lw=0.8)
    for off, key, colour, name in ((-0.27, "after", "tab:blue", "edgerec invoke / tool"),
                                   (0.0, "before", "tab:orange", "before (baseline) / tool"),
                                   (0.27, "same_process", "tab:green", "edgerec invoke / same call in-process")):
        vals = [s[key]["ratio_median"] if s.get(key) else np.nan for s in summary]
        lo = [v - s[key]["ratio_iqr"][0] if s.get(key) else 0 for v, s in zip(vals, summary)]
        hi = [s[key]["ratio_iqr"][1] - v if s.get(key) else 0 for v, s in zip(vals, summary)]
        ax.barh(y + off, vals, height=0.26, color=colour, label=name, xerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                error_kw={"capsize": 2, "elinewidth": 0.8})
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("p50 ratio to the backend's own tool (median over rounds, whisker: IQR)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", nargs="*", type=Path)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--runs", type=int, default=300, help="timed calls per variant and round (and per tool run)")
    p.add_argument("--chunk", type=int, default=25, help="calls per turn when in-process variants alternate")
    p.add_argument("--baseline-rev", help="also time the backends as they were at this git revision")
    p.add_argument("--backends", help="only these backends, e.g. openvino,litert")
    p.add_argument("--pin", help="this process and the tools on these cores only, e.g. 1")
    p.add_argument("--build-mobilenet", type=Path, metavar="DIR", help="write a MobileNetV2 224 px bundle to DIR first")
    p.add_argument("--out", type=Path, default=HERE / "results" / "invoke_overhead.json")
    args = p.parse_args(argv)
    if args.build_mobilenet:
        args.bundles.append(build_mobilenet(args.build_mobilenet))
    if not args.bundles:
        p.error("give at least one bundle")
    global PIN
    PIN = {int(c) for c in args.pin.split(",")} if args.pin else None
    if PIN:
        os.sched_setaffinity(0, PIN)
    threads = [int(t) for t in args.threads.split(",")]
    baseline = baseline_backends(args.baseline_rev) if args.baseline_rev else None
    only = tuple(args.backends.split(",")) if args.backends else None
    plan = [c for b in args.bundles for c in configurations(b, threads, baseline, only)]
    t_start, load = time.time(), [os.getloadavg()]
    for r in range(args.rounds):
        for c in plan:
            tool_first = r % 2 == 1 and c["tool"] is not None

            def tool():
                c.setdefault("tool_rounds", []).append(c["tool"](args.runs))

            if tool_first:
                tool()
            c.setdefault("rounds", []).append(alternate(c["variants"], args.runs, args.chunk))
            if c["tool"] is not None and not tool_first:
                tool()
            last = c["rounds"][-1]
            ref = (c["tool_rounds"][-1] if c["tool"] is not None else last["tool"])
            print(f"round {r} {c['bundle']:<10} {c['artifact']:<14} {c['backend']:<12} t{c['threads']}: "
                  + "  ".join(f"{k} {v['median_ms']:.4f}" for k, v in last.items())
                  + (f"  {c['tool_name']} {ref['median_ms']:.4f} ms" if c["tool"] is not None else " ms"), flush=True)
        load.append(os.getloadavg())
    summary = []
    for c in plan:
        rows = []
        for i, rd in enumerate(c["rounds"]):
            row = {"edgerec": rd["edgerec"], "tool": rd["tool"] if c["tool"] is None else c["tool_rounds"][i]}
            if "baseline" in rd:
                row["baseline"] = rd["baseline"]
            rows.append(row)
        s = {k: c[k] for k in ("bundle", "artifact", "backend", "threads", "tool_name", "inputs", "input", "input_dtype")}
        s["after"] = _summary(rows, "edgerec", "tool")
        same = {"openvino": "edgerec_own", "litert": "compiled_model"}.get(c["backend"])
        if same:  # the same comparison in this process: no difference in load between two processes
            for row, rd in zip(rows, c["rounds"]):
                row[same] = rd[same]
            s["same_process"] = {"reference": {"edgerec_own": "OpenVINO's own latency of the same calls",
                                               "compiled_model": "CompiledModel.run_by_name, alternating"}[same],
                                 **_summary(rows, "edgerec", same)}
        if baseline is not None:
            s["before"] = _summary(rows, "baseline", "tool")
            s["after_vs_before"] = _summary(rows, "edgerec", "baseline")
        s["rounds"] = rows
        summary.append(s)
    out = {
        "what": ("p50 of Backend.invoke as edgerec bench times it, against the backend's own tool on the same file; "
                 "ratios per round, median and IQR over rounds; ratio_min = best case over all rounds. "
                 "'before': the backends at --baseline-rev, alternating with today's in the same process. "
                 "'same_process': against OpenVINO's own C++ latency of the same calls, or against "
                 "CompiledModel.run_by_name (litert-benchmark's call) alternating in this process."),
        "baseline_rev": args.baseline_rev, "rounds": args.rounds, "runs": args.runs, "chunk": args.chunk,
        "threads": threads, "pinned_cores": sorted(PIN) if PIN else None, "versions": versions(),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "load_avg_per_round": [list(x) for x in load]},
        "seconds": round(time.time() - t_start, 1), "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    plot(summary, args.out.with_suffix(".png"))
    for s in summary:
        line = (f"{s['bundle']:<10} {s['artifact']:<14} {s['backend']:<12} t{s['threads']}  vs {s['tool_name']:<24} "
                f"edgerec {s['after']['edgerec_median_ms']:.4f} / {s['after']['tool_median_ms']:.4f} ms = "
                f"{s['after']['ratio_median']:.3f} (IQR {s['after']['ratio_iqr'][0]:.2f}-{s['after']['ratio_iqr'][1]:.2f},"
                f" min {s['after']['ratio_min']:.3f})")
        if "before" in s:
            line += (f"; before {s['before']['baseline_median_ms']:.4f} ms = {s['before']['ratio_median']:.3f};"
                     f" after/before {s['after_vs_before']['ratio_median']:.3f}")
        if "same_process" in s:
            line += f"; same process {s['same_process']['ratio_median']:.3f}"
        print(line)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
