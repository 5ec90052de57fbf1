"""Profile the whole recognition loop on a real source: capture, pre-processing, inference, post-processing.

Inference alone is rarely the whole story on a board: a 1080p USB camera's MJPEG decode or a letterbox
resize can cost as much as a small int8 model. This runs ``edgerec run``'s own loop
(``edgerec.runtime.loop.run_loop``, no sinks) and keeps the times it measures for each frame.

The source reads and decodes on its own thread, so two figures describe it: ``capture`` is the decode time
per frame on that thread (it overlaps the rest of the loop), ``wait`` is how long the loop blocked in
``source.read()`` for the next frame (~0 when the camera is faster than the loop, which then drops frames).
``total`` is one loop iteration: wait + preprocess + inference + postprocess + building the frame's record.

>>> rec = profile_loop("out/bundle", "clip.mp4", frames=300)    # doctest: +SKIP
>>> rec["fps"], rec["stages_ms"]["inference"]["p50"]            # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .fingerprint import device_warnings, fingerprint
from .store import RECORD_FORMAT

__all__ = ["STAGES", "profile_loop"]

STAGES = ("capture", "wait", "preprocess", "inference", "postprocess", "total")


def _stage(ns: list[int]) -> dict[str, float]:
    ms = np.asarray(ns, np.float64) / 1e6
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())}


def profile_loop(bundle: str | Path, source: str, *, frames: int | None = 300, seconds: float | None = None,
                 warmup_frames: int = 10, backend: str = "auto", format: str | None = None, precision: str | None = None,
                 threads: int | None = None, loop_source: bool = True, device: dict | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the recognition loop on ``source`` and return one ``kind: loop`` result record.

    Stops after ``frames`` timed frames, ``seconds``, or the end of a (non-looping) file source.
    """
    from ..runtime.loop import run_loop
    from ..runtime.pipeline import Pipeline
    from ..runtime.sources import open_source

    pipe = Pipeline.from_bundle(bundle, backend=backend, format=format, precision=precision, threads=threads)
    ((_, clf),) = pipe.stages
    device = device if device is not None else fingerprint()
    timings: dict[str, list[int]] = {s: [] for s in STAGES}
    clock = time.perf_counter_ns
    at = {"seen": 0, "start": None, "dropped0": 0}

    with pipe, open_source(source, loop=loop_source) as src:

        def on_frame(t: dict[str, int]) -> bool:
            """The runtime's loop calls this with each frame's times: keep them after the warm-up, say when to stop."""
            at["seen"] += 1
            if at["seen"] <= warmup_frames:
                return False
            now = clock()
            if at["start"] is None:
                at["start"], at["dropped0"] = now - t["total"], src.stats.dropped
            for s in STAGES:
                timings[s].append(t[s])
            n = len(timings["total"])
            if progress:
                progress(n, frames or 0)
            return (frames is not None and n >= frames) or (seconds is not None and now - at["start"] >= seconds * 1e9)

        run_loop(pipe, src, [], status=False, on_frame=on_frame)  # the very loop `edgerec run` runs
        end = clock()
        stats = src.stats
    n, start, dropped0 = len(timings["total"]), at["start"], at["dropped0"]
    if n == 0:
        from ..errors import SourceError

        raise SourceError(f"{source} delivered no frames after {warmup_frames} warm-up frames",
                          hint="use a longer clip, --loop, or fewer warm-up frames")
    wall_s = (end - start) / 1e9 if start is not None else 0.0
    stages = {s: _stage(v) for s, v in timings.items()}
    warnings = device_warnings(device)
    if stats.dropped - dropped0:
        warnings.append(f"{stats.dropped - dropped0} frames dropped: the loop is slower than the source")
    art = clf.artifact
    return {
        "format": RECORD_FORMAT,
        "kind": "loop",
        "id": uuid.uuid4().hex,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "bundle": {"name": clf.manifest.name, "version": clf.manifest.version, "path": str(bundle)},
        "artifact": art.key,
        "artifact_format": art.format,
        "precision": art.precision,
        "file": art.file,
        "size_bytes": int(art.size_bytes),
        "backend": clf.backend.name,
        "backend_version": clf.backend.version,
        "threads": threads,
        "source": str(source),
        "stages_ms": stages,
        "fps": n / wall_s if wall_s > 0 else 0.0,
        "frames": n,
        "dropped": int(stats.dropped - dropped0),
        "device": device,
        "warnings": warnings,
        "settings": {"warmup_frames": warmup_frames, "frames": frames, "seconds": seconds,
                     "corrupt": stats.corrupt, "reconnects": stats.reconnects},
    }
