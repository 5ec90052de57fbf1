"""The recognition loop: source -> pipeline -> sinks, with timings, a live status line and a summary.

>>> from edgerec.runtime.loop import run_loop                       # doctest: +SKIP
>>> with open_source("clip.mp4") as src, load_pipeline("bundle/") as pipe:
...     summary = run_loop(pipe, src, [JsonlSink("-")], max_frames=100)
>>> print(summary.table())
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import EdgerecError
from .pipeline import RECORD_SCHEMA, Pipeline, PipelineResult
from .sinks import Sink
from .sources import Source

__all__ = ["run_loop", "Summary", "STEPS", "frame_record"]

STEPS = ("capture", "wait", "preprocess", "inference", "postprocess", "sinks", "total")
_RING = 4096  # timing history kept for percentiles: bounded, so a week-long run does not grow


class _Timings:
    def __init__(self, names):
        self.names = tuple(names)
        self.buf = np.zeros((_RING, len(self.names)), np.int64)
        self.n = 0

    def add(self, values: list[int]) -> None:
        self.buf[self.n % _RING] = values
        self.n += 1

    def window(self, last: int | None = None) -> np.ndarray:
        k = min(self.n, _RING)
        if last is not None:
            k = min(k, last)
        idx = (np.arange(self.n - k, self.n)) % _RING
        return self.buf[idx]


@dataclass
class Summary:
    frames: int
    seconds: float
    fps: float
    steps_ms: dict[str, dict[str, float]]  # step -> {p50, p90, mean}
    stages_ms: dict[str, dict[str, float]]  # stage name -> inference {p50, p90, mean, runs}
    source: dict = field(default_factory=dict)
    stopped_by: str = "end of source"
    models: list[dict] = field(default_factory=list)  # per stage: the artifact that ran and why (Choice.to_dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def table(self) -> str:
        lines = [f"{self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} FPS (stopped by {self.stopped_by});"
                 f" dropped {self.source.get('dropped', 0)}, corrupt {self.source.get('corrupt', 0)},"
                 f" reconnects {self.source.get('reconnects', 0)}",
                 f"  {'step':<12}{'p50 ms':>9}{'p90 ms':>9}{'mean ms':>9}"]
        for k, v in self.steps_ms.items():
            lines.append(f"  {k:<12}{v['p50']:>9.2f}{v['p90']:>9.2f}{v['mean']:>9.2f}")
        if len(self.stages_ms) > 1:
            lines.append(f"  {'stage':<12}{'p50 ms':>9}{'p90 ms':>9}{'runs':>9}")
            for k, v in self.stages_ms.items():
                lines.append(f"  {k:<12}{v['p50']:>9.2f}{v['p90']:>9.2f}{v['runs']:>9d}")
        lines.append("  (capture: decode on the reader thread, overlapping the rest; wait: the loop waiting for a frame;"
                     " preprocess/inference/postprocess summed over stages)")
        for m in self.models:
            lines.append(f"  model {m['stage']}: {m['artifact']} on {m['backend']} ({m['source']}): {m['reason']}")
        return "\n".join(lines)


def frame_record(frame, result: PipelineResult, capture_ns: int, steps_ns: dict[str, int]) -> dict:
    """The JSON-lines record of one frame, built once and handed to every sink (schema ``RECORD_SCHEMA``).

    Always the same keys: ``schema``, ``timestamp`` (s, the source's clock), ``frame`` (index), ``name`` (the
    file's name for file sources, else None), the answer (``label``, ``score``, ``top_k``, ``labels``,
    ``stage``, ``roi``), ``stages`` (one entry per stage, one for a single model) and ``latency_ms``
    (``capture`` and the stages' summed ``preprocess``/``inference``/``postprocess``).
    """
    return {"schema": RECORD_SCHEMA, "timestamp": round(frame.timestamp, 3), "frame": frame.index,
            "name": frame.name or None, **result.to_dict(),
            "latency_ms": {"capture": round(capture_ns / 1e6, 3), **{k: round(v / 1e6, 3) for k, v in steps_ns.items()}}}


def _pct(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {"p50": 0.0, "p90": 0.0, "mean": 0.0}
    ms = x / 1e6
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p90": round(float(np.percentile(ms, 90)), 3),
            "mean": round(float(ms.mean()), 3)}


class _LoopState:
    """What one run of the loop has done: frames taken, why it stopped, the step it is in (named if it fails),
    each frame's step times and each stage's inference time (bounded), and how often each stage ran."""

    def __init__(self, pipeline: Pipeline):
        self.stage_names = [spec.name for spec, _ in pipeline.stages]
        self.choices = [(spec.name, clf.choice) for spec, clf in pipeline.stages
                        if getattr(clf, "choice", None) is not None]
        self.chosen = " ".join(c.short for _, c in self.choices)
        self.timings = _Timings(STEPS)
        self.stage_t = _Timings(self.stage_names)
        self.stage_runs = dict.fromkeys(self.stage_names, 0)
        self.frames, self.stopped_by, self.where = 0, "end of source", "capture"
        self._cap_prev = (0, 0)

    def capture_ns(self, st) -> int:
        """The decode time of the frames captured since the last one we took (reader thread)."""
        cap_ns = (st.capture_ns - self._cap_prev[0]) // max(1, st.captured - self._cap_prev[1])
        self._cap_prev = (st.capture_ns, st.captured)
        return cap_ns

    def stage_steps(self, result: PipelineResult) -> tuple[dict[str, int], list[int]]:
        """``result``'s preprocess/inference/postprocess ns summed over its stages, and each stage's inference ns;
        the stages that ran are counted."""
        steps = {"preprocess": 0, "inference": 0, "postprocess": 0}
        per_stage = []
        for s in result.stages:
            per_stage.append(s.latency_ns.get("inference", 0))
            if s.ran:
                self.stage_runs[s.name] += 1
            for k in steps:
                steps[k] += s.latency_ns.get(k, 0)
        return steps, per_stage

    def add(self, row: list[int], per_stage: list[int]) -> None:
        """Count a finished frame with its step times (one per ``STEPS``) and its stages' inference times."""
        self.timings.add(row)
        self.stage_t.add(per_stage)
        self.frames += 1

    def status_line(self, st, label: str) -> str:
        recent = self.timings.window(64)
        fps = 1e9 / max(1.0, float(np.mean(recent[:, -1])))
        return (f"\r{fps:6.1f} FPS  p50 {np.percentile(recent[:, -1], 50) / 1e6:6.1f} ms  "
                f"frames {self.frames}  dropped {st.dropped}  corrupt {st.corrupt}  {label[:24]:<24}  {self.chosen}")

    def summary(self, seconds: float, source: dict) -> Summary:
        all_t = self.timings.window()
        steps_ms = {k: _pct(all_t[:, i]) for i, k in enumerate(STEPS)}
        st_all = self.stage_t.window()
        stages_ms = {}
        for i, name in enumerate(self.stage_names):
            col = st_all[:, i]
            stages_ms[name] = {**_pct(col[col > 0]), "runs": self.stage_runs[name]}
        frames = self.frames
        return Summary(frames, round(seconds, 3), round(frames / seconds, 2) if seconds > 0 else 0.0, steps_ms,
                       stages_ms, source, self.stopped_by, [{"stage": name, **c.to_dict()} for name, c in self.choices])


def run_loop(pipeline: Pipeline, source: Source, sinks: list[Sink], *, max_frames: int | None = None,
             stop: threading.Event | None = None, status: bool | None = None, status_stream=None,
             status_every: float = 0.5, on_frame: Callable[[dict[str, int]], bool | None] | None = None) -> Summary:
    """Run until the source ends, ``max_frames``, ``stop`` is set, Ctrl-C, a window sink's ``q``, or ``on_frame``
    returns True. ``on_frame`` gets each frame's times in ns, one per ``STEPS`` (what ``edgerec bench --source``
    profiles: this very loop).

    Any failure is re-raised as an ``EdgerecError`` naming the frame and the step that failed.
    """
    stream = status_stream or sys.stderr
    show_status = stream.isatty() if status is None else status
    stop = stop or threading.Event()
    state = _LoopState(pipeline)
    wants_frames = any(s.wants_frames for s in sinks)
    last_status = 0.0
    t_start = time.perf_counter()
    try:
        while not stop.is_set():
            if max_frames is not None and state.frames >= max_frames:
                state.stopped_by = "--max-frames"
                break
            done = _one_frame(pipeline, source, sinks, stop, state, wants_frames=wants_frames)
            if done is None:
                break
            row, result = done
            if on_frame is not None and on_frame(dict(zip(STEPS, row))):
                state.stopped_by = "caller"
                break
            if show_status and time.perf_counter() - last_status >= status_every:
                last_status = time.perf_counter()
                stream.write(state.status_line(source.stats, result.label))
                stream.flush()
        else:
            if state.stopped_by == "end of source":
                state.stopped_by = "signal"
    except KeyboardInterrupt:
        state.stopped_by = "Ctrl-C"
    except EdgerecError:
        raise
    except Exception as exc:  # name the cause: which frame, which step
        raise EdgerecError(f"frame {state.frames}: {state.where} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if show_status and state.frames:
            stream.write("\n")
    return state.summary(time.perf_counter() - t_start, source.stats.to_dict())


def _one_frame(pipeline: Pipeline, source: Source, sinks: list[Sink], stop: threading.Event, state: _LoopState, *,
               wants_frames: bool) -> tuple[list[int], PipelineResult] | None:
    """Take the next frame, run the pipeline on it and hand its record to every sink; returns the frame's times
    (one per ``STEPS``) and the result, or None when no frame came (the source ended, or ``stop`` is set)."""
    state.where = "capture"
    t0 = time.perf_counter_ns()
    frame = _read_frame(source, stop)
    t1 = time.perf_counter_ns()
    if frame is None:
        if stop.is_set() and state.stopped_by == "end of source":
            state.stopped_by = "signal"
        return None
    state.where = "inference"
    result = pipeline.process(frame.image)
    t2 = time.perf_counter_ns()
    cap_ns = state.capture_ns(source.stats)
    steps, per_stage = state.stage_steps(result)
    record = frame_record(frame, result, cap_ns, steps)
    _write_sinks(sinks, frame, record, stop, state, wants_frames=wants_frames)
    t3 = time.perf_counter_ns()
    row = [cap_ns, t1 - t0, steps["preprocess"], steps["inference"], steps["postprocess"], t3 - t2, t3 - t0]
    state.add(row, per_stage)
    return row, result


def _read_frame(source: Source, stop: threading.Event):
    """The next frame, or None when the source has ended or ``stop`` is set."""
    frame = None
    while not stop.is_set():  # short waits, so a stop request is seen even while a camera is away
        frame = source.read(timeout=0.25)
        if frame is not None or source.ended:
            break
    return frame


def _write_sinks(sinks: list[Sink], frame, record: dict, stop: threading.Event, state: _LoopState, *,
                 wants_frames: bool) -> None:
    """Hand ``record`` (and the image, when a sink shows frames) to every sink; a closed window stops the loop."""
    state.where = "sinks"
    image = frame.image if wants_frames else None
    for sink in sinks:
        state.where = f"sink {type(sink).__name__}"
        sink.write(image, record)
        if getattr(sink, "quit", False):
            stop.set()
            state.stopped_by = "window closed"
