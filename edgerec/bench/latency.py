"""Latency profiling of a bundle: every artifact x backend x thread count, measured like an experiment.

Per configuration: model load time, first-inference time, warm-up until the latency settles, then timed
back-to-back runs on real images (``perf_counter_ns`` around ``backend.invoke`` only: the same span that
OpenVINO's ``benchmark_app`` and LiteRT's benchmark tool time). With ``interleave`` (the default) the timed
runs of all configurations alternate in short chunks, so a burst of load from elsewhere on the machine
lands on every configuration alike instead of on whichever ran at that moment.

>>> from edgerec.bench import BenchConfig, run_bench
>>> records = run_bench("out/bundle", BenchConfig(threads=(1, 2), runs=200))    # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Artifact, Manifest, bundle_path, verify_bundle
from ..errors import BackendError, ConfigError, suggest
from .fingerprint import device_warnings, fingerprint
from .inputs import BenchImages, load_images, prepare_tensors
from .stats import summarize
from .store import RECORD_FORMAT

__all__ = ["BenchConfig", "Measurement", "plan", "rss_mb", "run_bench"]


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and for how long.

    ``threads``: thread counts to try (``None`` = the backend's own default). ``runs`` or ``seconds`` bound the
    timed runs per configuration (``runs`` wins when both are given). Warm-up runs at least ``warmup_runs``,
    then continues in windows of ``warmup_window`` until two successive window medians differ by less than
    ``warmup_tolerance`` or ``warmup_max_seconds`` is spent.
    """

    threads: tuple[int | None, ...] = (None,)
    runs: int | None = None
    seconds: float | None = 3.0
    min_runs: int = 10
    warmup_runs: int = 5
    warmup_window: int = 5
    warmup_tolerance: float = 0.05
    warmup_max_seconds: float = 3.0
    backends: tuple[str, ...] | None = None  # None: every installed backend that runs the format
    artifacts: tuple[str, ...] | None = None  # artifact keys (tflite-int8) or formats (tflite)
    interleave: bool = True
    chunk: int = 10
    limit_images: int | None = None
    verify: bool = True
    pin: tuple[int, ...] | None = None  # CPU cores for this process (and the backends' threads)

    def __post_init__(self):
        if self.runs is not None and self.runs < 1:
            raise ConfigError(f"--runs must be at least 1, got {self.runs}")
        if self.seconds is not None and self.seconds <= 0:
            raise ConfigError(f"--seconds must be positive, got {self.seconds}")
        if self.runs is None and self.seconds is None:
            raise ConfigError("give --runs or --seconds")
        for t in self.threads:
            if t is not None and t < 1:
                raise ConfigError(f"--threads values must be at least 1, got {t}")
        if self.warmup_runs < 0 or self.warmup_max_seconds < 0:
            raise ConfigError("warm-up runs and seconds cannot be negative")


@dataclass
class Measurement:
    """One configuration while it is being measured (internal state, turned into a record at the end)."""

    artifact: Artifact
    backend_name: str
    threads: int | None
    backend: Any = None
    tensors: list[np.ndarray] | None = None
    load_ns: int = 0
    first_ns: int = 0
    warmup_runs: int = 0
    samples: list[int] | None = None
    timed_ns: int = 0
    rss_before: float = 0.0
    rss_after_load: float = 0.0
    rss_peak: float = 0.0
    correct: int | None = None
    n_scored: int = 0
    error: str | None = None
    cursor: int = 0

    @property
    def label(self) -> str:
        return f"{self.artifact.key}/{self.backend_name}/t{self.threads or 'auto'}"


def rss_mb() -> float:
    """Resident set size of this process in MiB (``/proc/self/statm``; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def plan(manifest: Manifest, config: BenchConfig) -> list[tuple[Artifact, str, int | None]]:
    """(artifact, backend, threads) for every combination this machine can run."""
    from ..runtime.backends import BACKENDS, candidates, installed_backends

    installed = set(installed_backends())
    if config.backends:
        for b in config.backends:
            if b not in BACKENDS:
                raise ConfigError(f"unknown backend '{b}'{suggest(b, BACKENDS)}")
    arts = manifest.ok_artifacts()
    if config.artifacts:
        keys = {a.key for a in arts} | {a.format for a in arts}
        for want in config.artifacts:
            if want not in keys:
                raise ConfigError(f"bundle '{manifest.name}' has no artifact '{want}'{suggest(want, keys)}")
        arts = [a for a in arts if a.key in config.artifacts or a.format in config.artifacts]
    out = []
    for art in arts:
        for b in candidates(art.format):
            if b not in installed or (config.backends and b not in config.backends):
                continue
            for t in config.threads:
                out.append((art, b, t))
    if not out:
        raise BackendError(
            f"nothing to benchmark: no installed backend runs the selected artifacts of '{manifest.name}'",
            hint=f"installed backends: {', '.join(sorted(installed)) or 'none'}; pip install 'edgerec[runtime]'",
        )
    return out


def _load(m: Measurement, root: Path, manifest: Manifest, images: BenchImages) -> None:
    from ..runtime.backends import open_backend

    m.tensors = prepare_tensors(images.frames, manifest, m.artifact)
    m.rss_before = rss_mb()
    t0 = time.perf_counter_ns()
    path = bundle_path(root, m.artifact.file or m.artifact.files[0], what=f"{m.artifact.key} file")
    m.backend = open_backend(path, m.artifact, backend=m.backend_name, threads=m.threads)
    m.load_ns = time.perf_counter_ns() - t0
    m.rss_after_load = rss_mb()
    x = m.tensors[0]
    t0 = time.perf_counter_ns()
    m.backend.invoke(x)
    m.first_ns = time.perf_counter_ns() - t0
    m.rss_peak = max(m.rss_after_load, rss_mb())
    m.samples = []


def _score(m: Measurement, manifest: Manifest, images: BenchImages) -> None:
    """Top-1 accuracy on the labelled images (also part of the warm-up)."""
    from ..runtime.adapters import from_model_output

    if images.labels is None or manifest.task != "single_label":
        return
    correct = 0
    for x, y in zip(m.tensors, images.labels):
        scores = from_model_output(m.backend.invoke(x), m.artifact)
        correct += int(np.argmax(scores.reshape(-1)) == y)
    m.correct, m.n_scored = correct, len(images.labels)


def _warm_up(m: Measurement, config: BenchConfig) -> None:
    """At least ``warmup_runs``; then windows until the median settles (or the time cap)."""
    inv, xs = m.backend.invoke, m.tensors
    n = len(xs)
    start = time.perf_counter()
    for _ in range(config.warmup_runs):
        inv(xs[m.cursor % n])
        m.cursor += 1
    runs = config.warmup_runs
    prev = None
    while time.perf_counter() - start < config.warmup_max_seconds:
        window = []
        for _ in range(config.warmup_window):
            x = xs[m.cursor % n]
            t0 = time.perf_counter_ns()
            inv(x)
            window.append(time.perf_counter_ns() - t0)
            m.cursor += 1
        runs += config.warmup_window
        med = float(np.median(window))
        if prev is not None and abs(med - prev) <= config.warmup_tolerance * prev:
            break
        prev = med
    m.warmup_runs = runs


def _timed_chunk(m: Measurement, k: int) -> None:
    inv, xs, out = m.backend.invoke, m.tensors, m.samples
    n = len(xs)
    clock = time.perf_counter_ns
    for _ in range(k):
        x = xs[m.cursor % n]
        t0 = clock()
        inv(x)
        t1 = clock()
        out.append(t1 - t0)
        m.timed_ns += t1 - t0
        m.cursor += 1
    m.rss_peak = max(m.rss_peak, rss_mb())


def _done(m: Measurement, config: BenchConfig) -> bool:
    if m.error:
        return True
    if config.runs is not None:
        return len(m.samples) >= config.runs
    return len(m.samples) >= config.min_runs and m.timed_ns >= config.seconds * 1e9


def _next_chunk(m: Measurement, config: BenchConfig) -> int:
    if config.runs is not None:
        return max(1, min(config.chunk, config.runs - len(m.samples)))
    return config.chunk


def _record(m: Measurement, manifest: Manifest, root: Path, images: BenchImages, device: dict,
            dev_warnings: list[str], config: BenchConfig) -> dict[str, Any]:
    stats = summarize(m.samples)
    warnings = list(dev_warnings) + stats.noise_warnings()
    rec: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "kind": "latency",
        "id": uuid.uuid4().hex,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "bundle": {"name": manifest.name, "version": manifest.version, "path": str(root)},
        "artifact": m.artifact.key,
        "artifact_format": m.artifact.format,
        "precision": m.artifact.precision,
        "file": m.artifact.file,
        "size_bytes": int(sum((root / f).stat().st_size for f in (m.artifact.files or (m.artifact.file,)))),
        "backend": m.backend_name,
        "backend_version": m.backend.version if m.backend is not None else "",
        "threads": m.threads,
        "load_ms": m.load_ns / 1e6,
        "first_inference_ms": m.first_ns / 1e6,
        "warmup_runs": m.warmup_runs,
        "latency_ms": stats.to_dict(),
        "throughput_ips": stats.throughput,
        "rss_mb": {"before_load": round(m.rss_before, 1), "after_load": round(m.rss_after_load, 1), "peak": round(m.rss_peak, 1)},
        "accuracy": ({"top1": m.correct / m.n_scored, "n": m.n_scored, "data": images.source[5:]}
                     if m.correct is not None and m.n_scored else None),
        "input": {"source": images.source, "n_images": len(images)},
        "device": device,
        "warnings": warnings,
        "settings": {"interleave": config.interleave, "runs": config.runs, "seconds": config.seconds,
                     "chunk": config.chunk, "pin": list(config.pin) if config.pin else None},
    }
    return rec


def run_bench(bundle: str | Path, config: BenchConfig = BenchConfig(), *, data: str | Path | None = None,
              progress: Callable[[str, int, int], None] | None = None, device: dict | None = None) -> list[dict[str, Any]]:
    """Measure every configuration of ``bundle``; one result record (see docs/bench.md) per configuration.

    ``data``: a labelled folder; adds top-1 accuracy per configuration and is used as the timing input.
    ``progress(label, done, total)`` is called as timed runs accumulate.
    """
    from ..bundle import load_manifest

    root = Path(bundle)
    manifest = verify_bundle(root) if config.verify else load_manifest(root)
    root = root if root.is_dir() else root.parent
    images = load_images(root, manifest, data, limit=config.limit_images)
    device = device if device is not None else fingerprint()
    dev_warnings = device_warnings(device)
    ms = [Measurement(a, b, t) for a, b, t in plan(manifest, config)]
    previous_affinity = _pin(config.pin)
    try:
        return _measure(ms, root, manifest, images, device, dev_warnings, config, progress)
    finally:
        if previous_affinity is not None:
            os.sched_setaffinity(0, previous_affinity)


def _pin(cores: tuple[int, ...] | None) -> set[int] | None:
    """Restrict this process to ``cores`` before any backend starts its thread pool (threads inherit it)."""
    if not cores:
        return None
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError("--pin needs Linux (os.sched_setaffinity)")
    have = os.sched_getaffinity(0)
    bad = [c for c in cores if c not in have]
    if bad:
        raise ConfigError(f"--pin: core(s) {bad} are not available to this process", hint=f"available: {sorted(have)}")
    os.sched_setaffinity(0, set(cores))
    return have


def _measure(ms, root, manifest, images, device, dev_warnings, config, progress) -> list[dict[str, Any]]:

    def open_one(m: Measurement) -> None:
        try:
            _load(m, root, manifest, images)
            _score(m, manifest, images)
            _warm_up(m, config)
        except BackendError as exc:
            m.error = str(exc)

    def close_one(m: Measurement) -> None:
        if m.backend is not None:
            m.backend.close()
            m.backend = None

    total = len(ms) * (config.runs or 0)
    report = progress or (lambda *a: None)
    if config.interleave:
        for m in ms:
            open_one(m)
        active = [m for m in ms if not m.error]
        while active:
            for m in active:
                _timed_chunk(m, _next_chunk(m, config))
            active = [m for m in active if not _done(m, config)]
            report("interleaved", sum(len(m.samples) for m in ms if m.samples), total)
        for m in ms:
            close_one(m)
    else:
        for m in ms:
            open_one(m)
            while not m.error and not _done(m, config):
                _timed_chunk(m, _next_chunk(m, config))
                report(m.label, len(m.samples), config.runs or 0)
            close_one(m)
    failed = [m for m in ms if m.error]
    records = [_record(m, manifest, root, images, device, dev_warnings, config) for m in ms if not m.error]
    for m in failed:
        # a backend that cannot run an artifact is reported with every record of the run, not fatal
        for r in records:
            r["warnings"].append(f"{m.label} not measured: {m.error}")
    if not records:
        raise BackendError(f"no configuration could be measured: {failed[0].error}")
    return records
