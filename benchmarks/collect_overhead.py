"""What does doubt sampling (``edgerec run --collect``) cost the recognition loop? Frames/s of ``run_loop`` on
the same 640x480 video with and without the collect sink, side by side.

The video alternates blocks of frames the colour classifier is sure of with blocks it doubts (left half red,
right half blue: top two scores close), so about half of all frames have a reason to be saved and the rate
cap (30 a minute) is what limits the saving, as on a board that runs for hours. One ``CollectSink`` lives
through all repetitions, so the cap is in its steady state, not in the burst of a fresh run's first minute.

The model is the hand-built colour classifier (a mean over the input): inference costs almost nothing, so
the loop is as fast as decode + pre-processing allow and any cost of the sink shows in full. Repetitions
alternate (off, on, on, off, ...) so both see the same machine load; figures: median frames/s per side and
the ratio on/off (target >= 0.95), plus the median of per-pair ratios. On a machine shared with other work
the frames/s of single runs scatter widely, so the sink's own cost is also timed directly: ``write`` per frame
for a sure frame and for a doubtful one over the rate cap (what nearly every frame costs in steady state), as a
share of the loop's median frame time.

    python benchmarks/collect_overhead.py [--frames 300] [--reps 10]
Writes benchmarks/results/collect_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402


def machine() -> dict:
    import cv2

    return {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "opencv": cv2.__version__,
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def make_video(path: Path, frames: int) -> Path:
    from _fixtures.capture import mixed_colour, write_clip

    sure = mixed_colour("red", "blue", 0.0, 480, 640)
    unsure = [mixed_colour("red", "blue", 0.45, 480, 640, seed=i) for i in range(8)]
    clip = [sure if (i // 20) % 2 == 0 else unsure[i % 8] for i in range(frames)]  # blocks of 20
    return write_clip(path, clip, fps=30.0)


def one_run(pipe, video: Path, sinks: list) -> float:
    from edgerec.runtime.loop import run_loop
    from edgerec.runtime.sources import open_source

    with open_source(str(video)) as src:
        t0 = time.perf_counter()
        s = run_loop(pipe, src, sinks, status=False)
        return s.frames / (time.perf_counter() - t0)


def direct_cost(sink, pipe, video: Path, calls: int = 20000) -> dict:
    """Microseconds per ``sink.write`` for a sure frame's record and a doubtful one's (rate cap reached)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = [cap.read()[1] for _ in range(40)]
    cap.release()
    records = {"sure": pipe.process(frames[0]).to_dict(), "doubtful, over the rate cap": pipe.process(frames[20]).to_dict()}
    out = {}
    for name, rec in records.items():
        rec = {"timestamp": time.time(), "frame": 0, **rec}
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            sink.write(frames[0], rec)
        out[name] = round((time.perf_counter_ns() - t0) / calls / 1e3, 3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=600, help="frames per run")
    ap.add_argument("--reps", type=int, default=16, help="runs per side")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "results" / "collect_overhead.json"))
    args = ap.parse_args(argv)
    from _fixtures.runtime import make_colour_onnx_bundle

    from edgerec.capture.doubt import CollectSink, DoubtPolicy
    from edgerec.runtime.pipeline import load_pipeline

    work = Path(tempfile.mkdtemp(prefix="edgerec-collect-bench-"))
    try:
        bundle = make_colour_onnx_bundle(work / "colours", size=224, openvino=False)
        video = make_video(work / "clip.avi", args.frames)
        policy = DoubtPolicy()  # the defaults edgerec run --collect uses
        sink = CollectSink(work / "field", policy)
        host = machine()
        off, on = [], []
        with load_pipeline(bundle, threads=args.threads, format="onnx", precision="fp32") as pipe:
            one_run(pipe, video, [])  # warm-up: allocator, caches, the ONNX session
            for rep in range(args.reps):
                for side in (("off", "on") if rep % 2 == 0 else ("on", "off")):
                    fps = one_run(pipe, video, [sink] if side == "on" else [])
                    (on if side == "on" else off).append(fps)
                print(f"rep {rep + 1}/{args.reps}: off {off[-1]:.1f} fps, on {on[-1]:.1f} fps", file=sys.stderr)
            stats = sink.stats.to_dict()
            per_call = direct_cost(sink, pipe, video)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med_off, med_on = statistics.median(off), statistics.median(on)
    out = {"benchmark": "collect_overhead", "model": "colour classifier (mean over a 224x224 input), ONNX fp32",
           "frames": f"{args.frames} x 640x480 MJPG, half of them doubtful", "policy": policy.__dict__,
           "threads": args.threads, "machine": host, "loadavg_end": [round(x, 2) for x in os.getloadavg()],
           "fps_off": [round(x, 1) for x in off], "fps_on": [round(x, 1) for x in on],
           "median_fps_off": round(med_off, 2), "median_fps_on": round(med_on, 2), "ratio": round(med_on / med_off, 4),
           "median_pair_ratio": round(float(np.median(np.asarray(on) / np.asarray(off))), 4),
           "sink_write_us": per_call,
           "sink_share_of_frame_time": {k: round(v / (1e6 / med_off), 5) for k, v in per_call.items()},
           "collect": stats, "target": "ratio >= 0.95"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"{'':<14}{'median fps':>12}")
    print(f"{'without':<14}{med_off:>12.1f}\n{'with --collect':<14}{med_on:>12.1f}")
    print(f"ratio {out['ratio']:.3f} (pairs {out['median_pair_ratio']:.3f}; target >= 0.95); "
          f"saved {stats['saved']} of {stats['frames']} frames, {stats['skipped_rate']} over the rate cap")
    for k, v in per_call.items():
        print(f"sink.write, {k}: {v:.2f} us = {out['sink_share_of_frame_time'][k] * 100:.3f} % of a frame")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
