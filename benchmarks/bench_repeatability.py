"""How repeatable is `edgerec bench`'s p50 on a noisy machine, and which measures keep it tight?

Five repeated `edgerec bench` runs (each a fresh process, as a user would run them) per strategy, on the
same artifacts and thread count; the five repeats of all strategies are interleaved (A B C A B C ...) so
a busy minute on the machine lands on every strategy. Strategies:

* ``naive``      20 timed runs, no warm-up, configurations one after another (what a quick script does)
* ``default``    edgerec's defaults: warm-up until the median settles, 3 s of timed runs, interleaved
* ``pinned``     the defaults plus ``--pin`` to one core (threads stay put; no migration between cores)

Per strategy and artifact: the five p50s, their spread ((max - min) / median), coefficient of variation,
and how often a run's 95 % CI of the median contains the median of the five.

    python benchmarks/bench_repeatability.py [--repeats 5] [--threads 1]
Writes benchmarks/results/bench_repeatability.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

STRATEGIES = {
    "naive": ["--runs", "20", "--warmup-runs", "0", "--warmup-seconds", "0", "--no-interleave"],
    "default": ["--seconds", "3"],
    "pinned": ["--seconds", "3", "--pin", "{core}"],
}


def one_run(bundle: Path, threads: int, extra: list[str]) -> list[dict]:
    cmd = [str(BIN / "edgerec"), "bench", str(bundle), "--threads", str(threads), "--json", "--no-store",
           "--backend", "litert,openvino", *extra]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "edgerec-profiler-agreement"))
    p.add_argument("--out", default=str(HERE / "results" / "bench_repeatability.json"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from profiler_agreement import build

    bundle = build(Path(args.work), args.size)
    core = str(max(os.sched_getaffinity(0)))
    runs: dict[str, list[list[dict]]] = {s: [] for s in STRATEGIES}
    t0 = time.time()
    for r in range(args.repeats):
        for name, extra in STRATEGIES.items():
            recs = one_run(bundle, args.threads, [e.format(core=core) for e in extra])
            runs[name].append(recs)
            print(f"repeat {r} {name:<8} " + "  ".join(f"{x['artifact']}/{x['backend']} p50 {x['latency_ms']['p50']:.3f}"
                                                      for x in recs), flush=True)
    summary = []
    for name, reps in runs.items():
        keys = sorted({(x["artifact"], x["backend"]) for rep in reps for x in rep})
        for art, be in keys:
            recs = [x for rep in reps for x in rep if (x["artifact"], x["backend"]) == (art, be)]
            p50 = [x["latency_ms"]["p50"] for x in recs]
            mins = [x["latency_ms"]["min"] for x in recs]
            med = statistics.median(p50)
            covered = sum(x["latency_ms"]["p50_ci95"][0] <= med <= x["latency_ms"]["p50_ci95"][1] for x in recs)
            summary.append({
                "strategy": name, "artifact": art, "backend": be, "p50_ms": p50, "median_p50_ms": med,
                "spread_pct": 100 * (max(p50) - min(p50)) / med,
                "cv_pct": 100 * statistics.stdev(p50) / statistics.mean(p50) if len(p50) > 1 else 0.0,
                "min_ms": mins, "min_spread_pct": 100 * (max(mins) - min(mins)) / statistics.median(mins),
                "ci_covers_median": f"{covered}/{len(recs)}",
                "timed_runs": [x["latency_ms"]["n"] for x in recs],
                "warmup_runs": [x["warmup_runs"] for x in recs],
            })
    out = {
        "what": "p50 of repeated `edgerec bench` processes; spread = (max - min) / median of the repeats",
        "strategies": {k: " ".join(v) for k, v in STRATEGIES.items()},
        "threads": args.threads, "repeats": args.repeats, "pinned_core": int(core),
        "machine": {"cores": os.cpu_count(), "load_avg_at_end": list(os.getloadavg())},
        "seconds": round(time.time() - t0, 1), "summary": summary,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for s in summary:
        print(f"{s['strategy']:<8} {s['artifact']:<15} {s['backend']:<9} median p50 {s['median_p50_ms']:.3f} ms  "
              f"spread {s['spread_pct']:5.1f}%  CV {s['cv_pct']:4.1f}%  CI covers {s['ci_covers_median']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
