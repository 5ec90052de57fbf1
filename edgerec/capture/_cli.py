"""``edgerec capture SOURCE DIR --label NAME``: flags in, ``capture`` out, progress and summary on stderr."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time

from ..errors import ConfigError

__all__ = ["main", "build_parser"]

_EPILOG = """examples:
  edgerec capture 0 data/ --label apple                     # USB camera, 2 images/s, until data/apple has 200
  edgerec capture csi://0 data/ --label pear --max 50       # 50 new images from a Jetson CSI camera
  edgerec capture picam://0 data/ --label empty --seconds 60 --roi 0.125,0,0.75,1
  edgerec capture walk.mp4 data/ --label cat --fps 1        # one image per second of video at most
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgerec capture", description="Collect training images from a camera, stream or video "
                                "into DIR/<label>/, skipping near-duplicates, blurred, dark and overexposed frames.",
                                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="as for edgerec run --source: 0, /dev/video0, csi://0, picam://0, rtsp://..., video file, folder")
    p.add_argument("out", help="ImageFolder root: images go to OUT/<label>/")
    p.add_argument("--label", "-l", required=True, help="class of every image this run (a folder name)")
    g = p.add_argument_group("how many")
    g.add_argument("--fps", type=float, default=2.0, help="kept images per second at most (default 2; 0: no limit)")
    g.add_argument("--target", type=int, default=200, help="stop when the class has this many images, counting those "
                   "already there (default 200; 0: no target)")
    g.add_argument("--max", type=int, default=None, metavar="N", dest="max_images", help="stop after N new images")
    g.add_argument("--seconds", type=float, default=None, metavar="S", help="stop after S seconds")
    g = p.add_argument_group("which frames")
    g.add_argument("--roi", default=None, metavar="X,Y,W,H", help="keep only this region, as edgerec run --roi classifies it")
    g.add_argument("--dedupe-bits", type=int, default=6, metavar="B",
                   help="a frame within B of 64 hash bits of a recent kept image is a near-duplicate (default 6; -1: off)")
    g.add_argument("--min-sharpness", type=float, default=None, help="variance of the Laplacian under this: blurred (default 30)")
    g.add_argument("--min-brightness", type=float, default=None, help="mean gray level under this: dark (default 30)")
    g.add_argument("--max-brightness", type=float, default=None, help="mean gray level over this: overexposed (default 225)")
    g = p.add_argument_group("output")
    g.add_argument("--format", default="jpg", help="jpg (quality 95, default) or png")
    g.add_argument("--min-free-mb", type=float, default=100.0, help="stop when the disk has less free (default 100)")
    g.add_argument("--summary-json", default=None, metavar="PATH", help="write the summary as JSON")
    g = p.add_argument_group("source")
    g.add_argument("--width", type=int, default=None)
    g.add_argument("--height", type=int, default=None)
    g.add_argument("--retries", type=int, default=3, help="live sources: reconnect attempts before stopping (default 3)")
    return p


def _options(args):
    from ..runtime.roi import parse_roi
    from .quality import QualityLimits
    from .session import CaptureOptions

    try:
        roi = parse_roi(args.roi)
    except ConfigError as exc:
        raise ConfigError(f"--roi: {exc.message}", hint=exc.hint) from None
    lim = {k: v for k, v in (("min_sharpness", args.min_sharpness), ("min_brightness", args.min_brightness),
                             ("max_brightness", args.max_brightness)) if v is not None}
    return CaptureOptions(label=args.label, fps=args.fps, target=args.target, max_images=args.max_images, seconds=args.seconds,
                          dedupe_bits=args.dedupe_bits, roi=roi, limits=QualityLimits(**lim), image_format=args.format,
                          min_free_mb=args.min_free_mb, source=str(args.source))


def _progress_printer(stream, every: float = 0.25):
    last = [0.0, -1]

    def show(s) -> None:
        now = time.monotonic()
        if s.kept == last[1] and now - last[0] < every:  # redraw on every kept image, else at most 4 times a second
            return
        last[:] = [now, s.kept]
        r = s.rejected
        if s.target:
            done = min(1.0, s.total / s.target)
            bar = f"{s.total:>4}/{s.target} [{'#' * round(20 * done):<20}]"
        else:
            bar = f"{s.total:>4}"
        stream.write(f"\r{s.label[:20]:<20} {bar}  new {s.kept}  duplicate {r['duplicate']}  blurry {r['blurry']}"
                     f"  dark {r['dark']}  overexposed {r['overexposed']} ")
        stream.flush()

    return show


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    options = _options(args)  # the label and every limit are checked before the camera opens
    from ..runtime.sources import open_source
    from .session import capture

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    show = _progress_printer(sys.stderr)
    try:
        with open_source(args.source, width=args.width, height=args.height, retries=args.retries, cancel=stop) as src:
            summary = capture(src, args.out, options, progress=show, stop=stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
    show(summary)
    r = summary.rejected
    print(f"\n{summary.kept} new images in {summary.folder} ({summary.total} in all"
          + (f", target {summary.target}" if summary.target else "") + f"); stopped by {summary.stopped_by} after "
          f"{summary.seconds:.1f} s; looked at {summary.examined} frames: {r['duplicate']} near-duplicates, "
          f"{r['blurry']} blurred, {r['dark']} dark, {r['overexposed']} overexposed", file=sys.stderr)
    if summary.message:
        print(summary.message, file=sys.stderr)
    if summary.stopped_by == "target reached" and not summary.kept:
        print(f"the class already has {summary.existing} images: raise --target to take more", file=sys.stderr)
    if args.summary_json:
        with open(args.summary_json, "w") as f:
            json.dump(summary.to_dict(), f, indent=1)
    return 1 if summary.stopped_by in ("disk full", "source lost") else 0
