"""``edgerec run BUNDLE_OR_PIPELINE --source URI``: flags in, library calls out."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from ..errors import ConfigError

__all__ = ["main", "build_parser"]

_EPILOG = """examples:
  edgerec run out/digits/bundle --source 0                        # USB camera, JSON lines on stdout
  edgerec run bundle/ --source csi://0 --http 8080                # Jetson CSI camera, preview at :8080
  edgerec run bundle/ --source clip.mp4 --save-video out.mp4 --csv out.csv
  edgerec run inspect.yaml --source rtsp://cam/stream --smooth 5  # a gate pipeline on a stream
  edgerec run bundle/ --source photos/ --jsonl results.jsonl --threshold 0.6
  edgerec run bundle/ --source 0 --roi 0.125,0,0.75,1 --http 8080  # classify the central square of a 4:3 camera
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgerec run", description="Real-time recognition on a camera, stream, video or folder.",
                                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="a bundle folder (edgerec.json) or a pipeline .yaml of gated stages")
    p.add_argument("--source", "-s", default=None,
                   help="(default: the --profile's camera) 0, /dev/video0, csi://0, picam://0, rtsp://..., http://..., gst://..., video file, image, folder or glob")
    _add_model_flags(p.add_argument_group("model"))
    _add_answer_flags(p.add_argument_group("answers"))
    _add_source_flags(p.add_argument_group("source"))
    _add_sink_flags(p.add_argument_group("sinks"))
    _add_collect_flags(p.add_argument_group("collect (doubt sampling: frames for a person to label)"))
    return p


def _add_model_flags(g) -> None:
    """Which artifact, backend and device run the model, and on which part of each frame."""
    g.add_argument("--backend", default="auto", help="auto, litert, onnxruntime, openvino")
    g.add_argument("--format", default="auto", help="auto, tflite, onnx, openvino (auto: see --precision)")
    g.add_argument("--precision", default="auto",
                   help="auto, int8, fp32, fp16 (auto: the bundle's deploy profile, else a bench result for this "
                        "device, else --profile's default, else the fastest in a few timed calls, cached; always "
                        "among artifacts within --accuracy-tolerance of the most accurate)")
    g.add_argument("--accuracy-tolerance", type=float, default=0.01, metavar="X",
                   help="auto choice: how far below the best recorded accuracy an artifact may be (default 0.01 = 1 point)")
    g.add_argument("--bench-store", action="append", default=None, metavar="FILE",
                   help="auto choice: bench result store(s) to look in (default: edgerec-bench.jsonl in the bundle "
                        "folder and here, when they exist)")
    g.add_argument("--deploy-profile", default=None, metavar="PATH",
                   help="auto choice: this deploy profile instead of the bundle's deploy-profile.yaml ('none': ignore it)")
    g.add_argument("--retime", action="store_true", help="auto choice: time the artifacts again instead of using the cached choice")
    g.add_argument("--threads", default=None, help="inference threads (auto, 0 or -1: the backend chooses)")
    g.add_argument("--device", default=None, help="backend device: CPU/GPU/NPU (OpenVINO), cuda/tensorrt (ONNX Runtime)")
    g.add_argument("--profile", default=None, help="device profile name whose defaults apply (see edgerec device)")
    g.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the bundle's files")
    g.add_argument("--roi", default=None, metavar="X,Y,W,H",
                   help="classify only this region of each frame: pixels (200,40,480,480) or fractions (0.125,0,0.75,1)")


def _add_answer_flags(g) -> None:
    """How scores become the answer: threshold, top-k, smoothing."""
    g.add_argument("--threshold", type=float, default=None, help="under this score the label is 'unknown' (multi-label: per label, default 0.5)")
    g.add_argument("--top-k", type=int, default=5)
    g.add_argument("--smooth", type=int, default=0, metavar="N", help="smooth over the last N frames")
    g.add_argument("--smooth-mode", default="mean", help="mean (average scores) or majority (vote)")


def _add_source_flags(g) -> None:
    """Camera, stream or file settings."""
    g.add_argument("--width", type=int, default=None)
    g.add_argument("--height", type=int, default=None)
    g.add_argument("--fps", type=float, default=None)
    g.add_argument("--loop", action="store_true", help="start files again at the end")
    g.add_argument("--max-frames", type=int, default=None)
    g.add_argument("--retries", type=int, default=None, help="live sources: reconnect attempts before giving up (default: forever)")


def _add_sink_flags(g) -> None:
    """Where the results go, and the status line and summary."""
    g.add_argument("--jsonl", default=None, metavar="PATH", help="JSON lines to PATH ('-' = stdout; the default when no other sink is given)")
    g.add_argument("--csv", default=None, metavar="PATH")
    g.add_argument("--save-video", default=None, metavar="PATH", help="annotated video (.mp4, .avi, .mkv)")
    g.add_argument("--show", action="store_true", help="on-screen window (needs a display)")
    g.add_argument("--http", type=int, default=None, metavar="PORT", help="serve /result (JSON) and /stream.mjpg")
    g.add_argument("--http-host", default="127.0.0.1", help="address to bind --http to (default loopback only)")
    g.add_argument("--status", dest="status", action="store_true", default=None, help="force the live status line")
    g.add_argument("--no-status", dest="status", action="store_false")
    g.add_argument("--summary-json", default=None, metavar="PATH", help="write the end-of-run summary as JSON")


def _add_collect_flags(g) -> None:
    """--collect: frames the model doubts, saved for a person to label."""
    g.add_argument("--collect", default=None, metavar="DIR", help="save the frames the model doubts into DIR, each with "
                   "its prediction beside it (DIR/<time>_<host>_<n>.jpg + .json; see edgerec data review)")
    g.add_argument("--collect-below", type=float, default=0.6, metavar="S", help="top score under S (default 0.6; 0: off)")
    g.add_argument("--collect-margin", type=float, default=0.15, metavar="M", help="top-1 minus top-2 under M (default 0.15; 0: off)")
    g.add_argument("--collect-no-flips", action="store_true", help="do not save frames where the (smoothed) label changes")
    g.add_argument("--collect-random", type=float, default=0.01, metavar="P", help="and this share of all frames (default 0.01)")
    g.add_argument("--collect-per-minute", type=float, default=30.0, metavar="N", help="save at most N frames a minute (default 30)")
    g.add_argument("--collect-max-mb", type=float, default=500.0, metavar="MB",
                   help="cap on DIR's size; over it, frames already pulled go first, then the oldest (default 500)")
    g.add_argument("--collect-min-free-mb", type=float, default=200.0, metavar="MB",
                   help="never save when the disk has less free (default 200)")


def _collect_policy(args):
    """--collect-* flags -> a DoubtPolicy, checked before the model loads."""
    from ..capture.doubt import DoubtPolicy

    return DoubtPolicy(below=args.collect_below, margin=args.collect_margin, flips=not args.collect_no_flips,
                       random_share=args.collect_random, max_per_minute=args.collect_per_minute,
                       max_mb=args.collect_max_mb, min_free_mb=args.collect_min_free_mb)


def _sinks(args, fps_hint: float):
    from .sinks import open_sink

    sinks = []
    if args.jsonl is not None or not (args.csv or args.save_video or args.show or args.http is not None):
        sinks.append(open_sink("jsonl", args.jsonl or "-"))
    if args.csv:
        sinks.append(open_sink("csv", args.csv))
    if args.save_video:
        sinks.append(open_sink("video", args.save_video, fps=fps_hint))
    if args.show:
        sinks.append(open_sink("window"))
    if args.http is not None:
        sinks.append(open_sink("http", args.http, args.http_host))
    return sinks


def _check_outputs(args) -> None:
    """Every file a sink or the summary will write can be created: checked before the model loads and the
    run starts, not when the run ends."""
    for flag, value in (("--jsonl", args.jsonl), ("--csv", args.csv), ("--save-video", args.save_video),
                        ("--summary-json", args.summary_json)):
        if value is None or value == "-":
            continue
        path = Path(value)
        folder = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise ConfigError(f"{flag} {value} is a folder; it needs a file name", hint=f"e.g. {flag} {path / 'out'}")
        if not folder.is_dir():
            raise ConfigError(f"{flag} {value}: the folder {folder} does not exist",
                              hint=f"create it first (mkdir -p {folder}) or choose another path")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {value}: the folder {folder} is not writable", hint="choose another path")
    if args.collect is not None and Path(args.collect).exists() and not Path(args.collect).is_dir():
        raise ConfigError(f"--collect {args.collect} is a file; it needs a folder", hint="e.g. --collect field/")


def main(argv: list[str]) -> int:
    """``edgerec run``: check the flags, run the model on the source into the sinks, print the summary."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    policy = _resolve_options(args)
    summary, collector, src = _run(args, policy)
    _report(args, summary, collector)
    if src.opening:
        _leave_now()
    return 0


def _resolve_options(args):
    """Check the flags and fill in what they leave open (ROI, threads, the --profile's camera) in ``args``,
    before the model loads; returns the --collect policy, or None."""
    from ..limits import resolve_threads
    from .sinks.http import check_port

    if args.top_k < 1:
        raise ConfigError("--top-k must be at least 1")
    if args.roi is not None:
        from .roi import parse_roi

        try:
            args.roi = parse_roi(args.roi)
        except ConfigError as exc:
            raise ConfigError(f"--roi: {exc.message}", hint=exc.hint) from None
    if args.smooth < 0:
        raise ConfigError(f"--smooth must be 0 (off) or a number of frames, got {args.smooth}")
    args.threads = resolve_threads(args.threads)
    if args.http is not None:
        check_port(args.http, "--http")
    _check_outputs(args)
    policy = _collect_policy(args) if args.collect is not None else None
    if args.source is None:
        if not args.profile:
            raise ConfigError("no --source given", hint="e.g. --source 0, csi://0, clip.mp4, photos/ (or --profile NAME for its camera)")
        from ..devices.device_profile import load_profile

        args.source = load_profile(args.profile).camera_uri
    return policy


def _run(args, policy):
    """Load the model, open the source and the sinks, and run the loop until the end, a limit or SIGTERM;
    returns the loop's summary, the --collect sink (or None) and the source."""
    from .loop import run_loop
    from .sources import open_source

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sinks, collector = [], None
    try:
        with _load_pipeline(args) as pipe:
            _print_model(pipe)
            # stop: a SIGTERM during the first open (a stream can take its 10 s open timeout) ends the run
            src = open_source(args.source, width=args.width, height=args.height, fps=args.fps, loop=args.loop,
                              retries=args.retries, cancel=stop)
            with src:
                fps_hint = getattr(src, "native_fps", lambda: 0.0)() or args.fps or 15.0
                sinks = _sinks(args, fps_hint)
                if policy is not None:
                    from ..capture.doubt import CollectSink

                    collector = CollectSink(args.collect, policy, meta={"model": pipe.name, "source": str(args.source)})
                    sinks.append(collector)
                for s in sinks:
                    if hasattr(s, "url"):
                        print(f"http   {s.url}  (/result, /stream.mjpg)", file=sys.stderr)
                summary = run_loop(pipe, src, sinks, max_frames=args.max_frames, stop=stop, status=args.status)
    finally:
        for s in sinks:
            s.close()
        signal.signal(signal.SIGTERM, previous)
    return summary, collector, src


def _load_pipeline(args):
    """The model flags -> the (not yet entered) pipeline."""
    from .pipeline import load_pipeline

    return load_pipeline(args.target, backend=args.backend, format=args.format, precision=args.precision,
                         threads=args.threads, device=args.device, profile=args.profile, verify=not args.no_verify,
                         threshold=args.threshold, top_k=args.top_k, smoothing=args.smooth,
                         smoothing_mode=args.smooth_mode, roi=args.roi, accuracy_tolerance=args.accuracy_tolerance,
                         bench_store=args.bench_store, choice_cache=not args.retime,
                         deploy_profile=False if str(args.deploy_profile).lower() == "none" else args.deploy_profile)


def _print_model(pipe) -> None:
    """What was loaded, and which artifact each stage chose, on stderr."""
    for line in pipe.describe():
        print(f"model  {line}", file=sys.stderr)
    for spec, clf in pipe.stages:
        if clf.choice is not None:
            print(f"choice {spec.name}: {clf.choice}", file=sys.stderr)


def _report(args, summary, collector) -> None:
    """The end-of-run summary on stderr, and in --summary-json when asked."""
    print(summary.table(), file=sys.stderr)
    collected = collector.stats if collector is not None else None
    if collected is not None:
        print(f"collect {args.collect}: {collected.line()}", file=sys.stderr)
    if args.summary_json:
        try:
            with open(args.summary_json, "w") as f:
                json.dump({**summary.to_dict(), **({"collect": collected.to_dict()} if collected else {})}, f, indent=1)
        except OSError as exc:  # checked at the start; the folder may have gone during the run
            raise ConfigError(f"cannot write --summary-json {args.summary_json}: {exc.strerror or exc}",
                              hint="the summary is printed above") from exc


def _leave_now() -> None:
    """Stopped while the stream was opening: that open is still inside FFmpeg, which cannot be interrupted,
    and a normal exit would unload the libraries under it (an abort). Everything is written: leave now."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
