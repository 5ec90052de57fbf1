"""Does decoding overlap inference? Loop throughput on a video file versus min(decode fps, inference fps).

Four figures, measured in alternating rounds so all see the same machine load:

* D - decode only: ``cv2.VideoCapture.read`` of every frame, nothing else;
* I - inference only: ``Classifier.classify`` on an already decoded 640x480 frame;
* sequential - read then classify in one thread (what a naive loop does: about 1 / (1/D + 1/I));
* edgerec loop - ``run_loop`` with the file source decoding on its own thread (no frame dropped).

Target: edgerec loop >= 0.9 x min(D, I). The overlap needs a free core for the decoder thread; on a
machine shared with other work the figure shows how much of it was available.

    python benchmarks/pipeline_throughput.py [--frames 300] [--rounds 3] [--threads 1]
Writes benchmarks/results/pipeline_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(HERE))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def make_video(path: Path, frames: int, fourcc: str) -> Path:
    if path.is_file():
        return path
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, (640, 480))
    for i in range(frames):
        vw.write(np.roll(base, i * 3, axis=1))  # moving content: real inter-frame coding work
    vw.release()
    return path


def decode_only(video: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(video))
    n, t0 = 0, time.perf_counter()
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n, time.perf_counter() - t0


def infer_only(clf, frame, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        clf.classify(frame)
    return time.perf_counter() - t0


def sequential(clf, video: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(video))
    n, t0 = 0, time.perf_counter()
    global _SEQ_CPU
    c0 = time.process_time()
    while True:
        ok, img = cap.read()
        if not ok:
            break
        clf.classify(img)
        n += 1
    cap.release()
    dt = time.perf_counter() - t0
    _SEQ_CPU.append((time.process_time() - c0) / dt)
    return n, dt


_SEQ_CPU: list[float] = []


def edgerec_loop(pipe, video: Path) -> tuple[int, float, dict]:
    from edgerec.runtime import open_source
    from edgerec.runtime.loop import run_loop

    with open_source(str(video)) as src:
        t0, c0 = time.perf_counter(), time.process_time()
        s = run_loop(pipe, src, [], status=False)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return s.frames, dt, {**s.source, "cpu_per_wall": cpu / dt}


def gil_check(clf, frame, seconds: float = 1.5) -> float:
    """A pure-Python thread's progress while the main thread runs ``invoke``, relative to while it sleeps.

    Near 0: the backend holds the GIL during inference and no decoder thread could overlap it. Well above 0:
    it releases the GIL (what remains below 1.0 is competition for the CPU itself)."""
    import threading

    x = clf.prepare(frame).copy()
    rates = {}
    for mode in ("sleep", "invoke"):
        stop, count = threading.Event(), []

        def spin():
            n = 0
            while not stop.is_set():
                n += 1
            count.append(n)

        t = threading.Thread(target=spin)
        t.start()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            time.sleep(0.01) if mode == "sleep" else clf.invoke(x)
        stop.set()
        t.join()
        rates[mode] = count[0] / (time.perf_counter() - t0)
    return rates["invoke"] / rates["sleep"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="inference threads (the decoder gets its own thread)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--artifact", default="tflite-int8", help="format-precision from the benchmark bundle")
    ap.add_argument("--fourcc", default="MJPG", help="MJPG (.avi) like most USB cameras, or mp4v")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--work", default="/tmp/edgerec-bench")
    ap.add_argument("--out", default=str(HERE / "results" / "pipeline_throughput.json"))
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    cv2.setNumThreads(1)
    from _fixtures.runtime import make_benchmark_bundle
    from runtime_overhead import machine
    from tqdm import tqdm

    from edgerec.runtime import load_pipeline

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bundle = make_benchmark_bundle(work / f"mnv3s-{args.size}", args.size)
    video = make_video(work / f"clip-{args.frames}-{args.fourcc}.avi", args.frames, args.fourcc)
    fmt, prec = args.artifact.split("-")[:2]
    host = machine()
    rows = {"decode": [], "inference": [], "sequential": [], "edgerec_loop": []}
    dropped, loop_cpu = [], []
    with load_pipeline(bundle, format=fmt, precision=prec, threads=args.threads) as pipe:
        clf = pipe.stages[0][1]
        ok, frame = cv2.VideoCapture(str(video)).read()
        infer_only(clf, frame, 20)  # warm-up
        for _ in tqdm(range(args.rounds), desc="rounds"):
            n, dt = decode_only(video)
            rows["decode"].append(n / dt)
            rows["inference"].append(args.frames / infer_only(clf, frame, args.frames))
            n, dt = sequential(clf, video)
            rows["sequential"].append(n / dt)
            n, dt, src = edgerec_loop(pipe, video)
            rows["edgerec_loop"].append(n / dt)
            dropped.append(src["dropped"])
            loop_cpu.append(round(src["cpu_per_wall"], 3))
        artifact = clf.artifact.key
        gil = gil_check(clf, frame)
    med = {k: round(statistics.median(v), 2) for k, v in rows.items()}
    bound = min(med["decode"], med["inference"])
    out = {"benchmark": "pipeline_throughput", "artifact": artifact, "model": f"mobilenet_v3_small {args.size}px",
           "video": f"{args.frames} frames 640x480 {args.fourcc}", "threads": args.threads, "machine": host,
           "loadavg_end": [round(x, 2) for x in os.getloadavg()], "fps_median": med,
           "fps_rounds": {k: [round(x, 2) for x in v] for k, v in rows.items()},
           "min_decode_inference": bound,
           "edgerec_loop_over_bound": round(med["edgerec_loop"] / bound, 3),
           "sequential_over_bound": round(med["sequential"] / bound, 3),
           "edgerec_loop_over_sequential": round(med["edgerec_loop"] / med["sequential"], 3),
           "frames_dropped": dropped,
           "python_thread_progress_during_invoke": round(gil, 3),
           # CPU seconds per wall second: above 1.0 the decoder and inference really ran at the same time
           "cpu_per_wall": {"sequential": [round(x, 3) for x in _SEQ_CPU], "edgerec_loop": loop_cpu}, "target": "edgerec_loop >= 0.9 x min(D, I)"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"decode D {med['decode']:.1f} fps   inference I {med['inference']:.1f} fps   min {bound:.1f}")
    print(f"sequential {med['sequential']:.1f} fps ({out['sequential_over_bound']:.2f} x min)   "
          f"edgerec loop {med['edgerec_loop']:.1f} fps ({out['edgerec_loop_over_bound']:.2f} x min, "
          f"{out['edgerec_loop_over_sequential']:.2f} x sequential); dropped {dropped}")
    print(f"a Python thread keeps {gil:.0%} of its pace during invoke (the backend releases the GIL)")
    print(f"CPU s per wall s: sequential {out['cpu_per_wall']['sequential']}, edgerec loop {loop_cpu}")
    print(f"(medians of {args.rounds} rounds; written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
