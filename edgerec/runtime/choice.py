"""Which artifact of a bundle runs on this device, and why.

A bundle holds several artifacts (``tflite-int8``, ``tflite-fp32``, ``onnx-fp32``, ...) and the fastest one
depends on the model and the device: MobileNetV3's int8 can be several times slower than its fp32 on a CPU
where EfficientNet-Lite's int8 is the fast one. So the choice is measured, not assumed. The first level
that applies decides (docs/runtime.md, "Which artifact runs"):

1. ``flags``: ``format`` and ``precision`` both given: that artifact (the backend as given, or the first
   installed one for the format). ``format``, ``precision`` or ``backend`` given alone narrow what the
   levels below choose from.
2. ``deploy-profile``: ``deploy-profile.yaml`` in the bundle folder (``edgerec bench --recommend`` writes it,
   ``edgerec deploy --format/--precision`` uploads one): its artifact, backend and threads.
3. ``bench-store``: latency records of this bundle measured on this kind of device
   (``edgerec.bench.fingerprint.device_id``) in a bench result store: the lowest p50.
4. ``device-profile``: the device profile the caller names (``profile=``): its default backend and precision.
5. ``timed``: a few timed calls (pre-processing and invoke on a camera-sized frame) of every candidate at
   load; the winner is cached outside the bundle, in ``<cache>/choice/<bundle sha>-<device id>.json``
   (``edgerec._cache``), and later loads reuse it (``cached``).

Levels 3-5 choose only among *accurate* candidates: those whose recorded accuracy (the manifest's
verification) is within ``accuracy_tolerance`` (default 0.01, one point) of the most accurate candidate's.
A deploy profile was chosen with that rule already and is taken as it is.

>>> choice = choose(root, manifest, open_candidate=opener)            # doctest: +SKIP
>>> choice.reason                                                       # doctest: +SKIP
'fastest of 4 timed at load: 0.21 ms per frame (next: onnx-int8/onnxruntime 0.34 ms)'
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import MANIFEST_NAME, Artifact, Manifest
from ..errors import BackendError, ConfigError, suggest
from . import backends as _backends

__all__ = [
    "ACCURACY_TOLERANCE",
    "PRECISION_ORDER",
    "Candidate",
    "Choice",
    "choice_cache_path",
    "choose",
    "choose_artifact",
    "verified_accuracy",
]

log = logging.getLogger(__name__)

# Static order, used for explicit flags and to break ties: formats by FORMAT_BACKENDS, then precisions.
PRECISION_ORDER = ("int8", "fp32", "fp16")
ACCURACY_TOLERANCE = 0.01  # one point of top-1
CHOICE_FORMAT = "edgerec-choice/1"
STORE_NAME = "edgerec-bench.jsonl"  # edgerec.bench.store.DEFAULT_STORE, the file `edgerec bench` appends to
_FORMATS = tuple(_backends.FORMAT_BACKENDS)
_AUTO = (None, "auto", "")


# -- the static order ------------------------------------------------------------------------------------
def _order(a: Artifact) -> tuple:
    fmt = _FORMATS.index(a.format) if a.format in _FORMATS else len(_FORMATS)
    prec = PRECISION_ORDER.index(a.precision) if a.precision in PRECISION_ORDER else len(PRECISION_ORDER)
    return (fmt, prec, a.embedded_preprocess)


def _rank_backend(format: str, backend: str, installed: list[str]) -> str | None:
    names = _backends.candidates(format) if backend == "auto" else (backend,)
    return next((n for n in names if n in installed and n in _backends.candidates(format)), None)


def choose_artifact(manifest: Manifest, *, backend: str = "auto", format: str | None = None,
                    precision: str | None = None, installed: list[str] | None = None) -> tuple[Artifact, str]:
    """``(artifact, backend name)`` by the static order, from what the bundle holds and what is installed.

    Order: formats by ``FORMAT_BACKENDS`` (tflite, onnx, openvino), precisions by ``PRECISION_ORDER``;
    ``format``/``precision``/``backend`` narrow the choice. The error lists what the bundle has and what
    is installed, so the fix is obvious. :func:`choose` is what ``Classifier.load`` uses.
    """
    backend = "auto" if backend in _AUTO else backend
    format = None if format in _AUTO else format
    precision = None if precision in _AUTO else precision
    if backend != "auto" and backend not in _backends.BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'{suggest(backend, [*_backends.BACKENDS, 'auto'])}")
    if format is not None and format not in _FORMATS:
        raise ConfigError(f"unknown format '{format}'{suggest(format, [*_FORMATS, 'auto'])}")
    if precision is not None and precision not in PRECISION_ORDER:
        raise ConfigError(f"unknown precision '{precision}'{suggest(precision, [*PRECISION_ORDER, 'auto'])}")
    installed = _backends.installed_backends() if installed is None else installed
    arts = [a for a in manifest.ok_artifacts()
            if (format is None or a.format == format) and (precision is None or a.precision == precision)]
    for a in sorted(arts, key=_order):
        name = _rank_backend(a.format, backend, installed)
        if name is not None:
            return a, name
    have = ", ".join(a.key for a in manifest.ok_artifacts()) or "none"
    wanted = ", ".join(f"{k}={v}" for k, v in (("backend", backend), ("format", format), ("precision", precision))
                       if v not in (None, "auto")) or "any"
    hint = f"the bundle holds: {have}; installed backends: {', '.join(installed) or 'none'}"
    if not installed:
        hint += "; pip install 'edgerec[litert]' (or [onnx], [openvino])"
    raise BackendError(f"no artifact of bundle '{manifest.name}' can run here ({wanted})", hint=hint)


# -- what is chosen ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One artifact on one backend."""

    artifact: Artifact
    backend: str

    @property
    def label(self) -> str:
        return f"{self.artifact.key}/{self.backend}"


@dataclass(frozen=True)
class Choice:
    """The artifact that runs and why: ``source`` is the precedence level that decided, ``reason`` says how.

    ``timings_ms``: the figures the choice compared (candidate label -> ms); ``excluded``: candidates left out,
    with why (accuracy below the floor, failed to load).
    """

    artifact: str  # Artifact.key
    backend: str
    threads: int | None
    source: str  # flags | only | deploy-profile | bench-store | device-profile | timed | cached
    reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def short(self) -> str:
        """``tflite-int8/litert [timed]``: for a status line."""
        return f"{self.artifact}/{self.backend} [{self.source}]"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"{self.artifact} on {self.backend} ({self.source}): {self.reason}"


def verified_accuracy(artifact: Artifact) -> float | None:
    """Top-1 accuracy recorded at export (``verification.accuracy``) as a fraction, or None.

    Manifests of schema 1.x stored percent; ``load_manifest`` converts them, and a figure above 1 is read as
    percent here too, so either kind of manifest gives a fraction.
    """
    v = artifact.verification
    acc = getattr(v, "accuracy", None) if v is not None else None
    if acc is None:
        return None
    acc = float(acc)
    return acc / 100.0 if acc > 1.0 else acc


def _threads(t) -> int | None:
    """None for the backend's default (as ``edgerec.limits.resolve_threads`` reads it), else the count."""
    if t is None or str(t).strip().lower() in ("auto", "default", "0", "-1", ""):
        return None
    return int(t)


def _accurate(cands: list[Candidate], tolerance: float) -> tuple[list[Candidate], dict[str, str], str]:
    """The candidates within ``tolerance`` of the best recorded accuracy, the excluded ones with why, and a note."""
    accs = {c.label: verified_accuracy(c.artifact) for c in cands}
    known = [a for a in accs.values() if a is not None]
    if not known:
        return cands, {}, "no accuracy recorded in the bundle"
    best = max(known)
    # on a small verification set one image is more than a point: a one-image difference is no difference
    n = min((c.artifact.verification.n_images for c in cands
             if accs[c.label] is not None and getattr(c.artifact.verification, "n_images", 0)), default=0)
    tol = max(tolerance, 1.0 / n) if n else tolerance
    floor = best - tol
    keep, out, low = [], {}, {}
    for c in cands:
        acc = accs[c.label]
        if acc is None:
            out[c.label] = "no recorded accuracy"
        elif acc < floor - 1e-9:
            out[c.label] = f"accuracy {acc:.3f} < {floor:.3f} (best {best:.3f} - {tol:.3g})"
            low.setdefault(c.artifact.key, acc)
        else:
            keep.append(c)
    note = f"accuracy within {tol:.3g} of the best ({best:.3f}{f'; one image of {n}' if tol > tolerance else ''})"
    if low:
        note += "; below that: " + ", ".join(f"{k} ({v:.3f})" for k, v in low.items())
    unknown = sorted({k.split("/")[0] for k, v in out.items() if v == "no recorded accuracy"})
    if unknown:
        note += f"; no recorded accuracy: {', '.join(unknown)}"
    return keep, out, note


# -- the levels -------------------------------------------------------------------------------------------
def _from_deploy_profile(root: Path, manifest: Manifest, cands: list[Candidate], where, threads, default_threads,
                         here: dict):
    from ..bench.deploy_profile import DEPLOY_PROFILE_NAME, load_deploy_profile  # PyYAML only

    path = Path(where) if where not in (None, True) else root / DEPLOY_PROFILE_NAME
    if not path.is_file():
        if where not in (None, True):
            raise ConfigError(f"deploy profile not found: {path}")
        return None, None
    prof = load_deploy_profile(path)
    b = prof.bundle or {}
    if b.get("name") not in (None, manifest.name) or str(b.get("version", manifest.version)) != str(manifest.version):
        return None, (f"{path.name} is for {b.get('name')} {b.get('version')}, not {manifest.name} "
                      f"{manifest.version}: not used")
    match = [c for c in cands if c.artifact.key == prof.artifact and prof.backend in ("auto", c.backend)]
    if not match:
        return None, (f"{path.name} names {prof.artifact}/{prof.backend}, which cannot run here or was excluded "
                      "by a flag")
    dev = prof.device or {}
    where_measured = dev.get("profile") or dev.get("board_model") or dev.get("cpu_model")
    same = all(dev.get(k) in (None, here.get(k)) for k in ("board_model", "cpu_model"))
    note = "" if same or not where_measured else f" (measured on {where_measured}, not this device)"
    t = threads if threads is not None else prof.threads if prof.threads is not None else default_threads
    reason = f"{path.name}{note}: {prof.reason or 'as written'}"
    return Choice(match[0].artifact.key, match[0].backend, t, "deploy-profile", reason,
                  {match[0].label: prof.measured["p50_ms"]} if "p50_ms" in (prof.measured or {}) else {}), None


def _store_paths(root: Path, store) -> list[Path]:
    if store is False:
        return []
    if store is None:
        found = [root / STORE_NAME, Path.cwd() / STORE_NAME]
        return list(dict.fromkeys(p.resolve() for p in found if p.is_file()))
    paths = [store] if isinstance(store, (str, Path)) else list(store)
    return [Path(p) for p in paths]


def _from_store(manifest: Manifest, cands: list[Candidate], paths: list[Path], threads, default_threads, here_id: str):
    from ..bench.fingerprint import device_id
    from ..bench.store import StoreWarning, read_records

    labels = {c.label: c for c in cands}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)  # a corrupt line is `edgerec bench compare`'s to report
        records = read_records(*paths, kind="latency")
    latest: dict[tuple, dict] = {}
    for r in records:
        label = f"{r['artifact']}/{r['backend']}"
        if (label not in labels or r["bundle"].get("name") != manifest.name
                or str(r["bundle"].get("version")) != str(manifest.version)
                or device_id(r.get("device") or {}) != here_id
                or (threads is not None and r.get("threads") != threads)):
            continue
        key = (label, r.get("threads"))
        if key not in latest or r["timestamp"] >= latest[key]["timestamp"]:
            latest[key] = r
    if not latest:
        return None
    best = {}
    for (label, t), r in latest.items():
        if label not in best or r["latency_ms"]["p50"] < best[label]["latency_ms"]["p50"]:
            best[label] = r
    ranked = sorted(best.values(), key=lambda r: r["latency_ms"]["p50"])
    pick = ranked[0]
    label = f"{pick['artifact']}/{pick['backend']}"
    nxt = (f" (next: {ranked[1]['artifact']}/{ranked[1]['backend']} {ranked[1]['latency_ms']['p50']:.3g} ms)"
           if len(ranked) > 1 else "")
    files = ", ".join(sorted({Path(r["_store"]).name for r in ranked}))
    reason = (f"lowest p50 stored for this device: {pick['latency_ms']['p50']:.3g} ms of {len(ranked)} measured in "
              f"{files}, {pick['timestamp'][:16]}{nxt}")
    t = threads if threads is not None else pick.get("threads") if pick.get("threads") is not None else default_threads
    return Choice(labels[label].artifact.key, labels[label].backend, t, "bench-store", reason,
                  {lb: round(r["latency_ms"]["p50"], 4) for lb, r in best.items()})


def _from_device_profile(prof, cands: list[Candidate], threads):
    prec, be = prof.default_precision, prof.default_backend
    for want_be, want_prec in ((be, prec), (be, None), (None, prec)):
        if not want_be and not want_prec:
            continue
        match = [c for c in cands if (want_be is None or c.backend == want_be)
                 and (want_prec is None or c.artifact.precision == want_prec)]
        if match:
            c = match[0]
            how = " ".join(x for x in (want_be, want_prec) if x)
            t = threads if threads is not None else prof.default_threads
            return Choice(c.artifact.key, c.backend, t, "device-profile", f"device profile {prof.name}: {how}")
    return None


# -- timing at load, cached -------------------------------------------------------------------------------
def _manifest_sha(root: Path) -> str:
    return hashlib.sha256((root / MANIFEST_NAME).read_bytes()).hexdigest()


def choice_cache_path(root: str | Path, here: dict | None = None) -> Path:
    """``<cache>/choice/<bundle sha>-<device id>.json``: where timed choices for this bundle and device live."""
    from .._cache import cache_dir
    from ..bench.fingerprint import device_id, hardware

    return cache_dir("choice", f"{_manifest_sha(Path(root))[:16]}-{device_id(here or hardware())}.json")


def _cache_key(cands: list[Candidate], threads, device) -> str:
    """What a timed choice depends on besides the bundle and the board: threads, device, the candidates and
    the versions of their backends (an upgrade can change the winner)."""
    from .._versions import package_versions

    packages = sorted({_backends.backend_class(c.backend).package for c in cands})
    versions = ",".join(f"{k}={v}" for k, v in sorted(package_versions(packages).items()))
    return (f"threads={threads or 'auto'};device={device or 'default'};{versions};"
            + ",".join(sorted(c.label for c in cands)))


def _read_cache(path: Path, key: str) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != CHOICE_FORMAT:
        return None
    entry = (data.get("entries") or {}).get(key)
    return entry if isinstance(entry, dict) and "artifact" in entry and "backend" in entry else None


def _write_cache(path: Path, key: str, entry: dict, manifest: Manifest, here: dict) -> None:
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}
    if data.get("format") != CHOICE_FORMAT:
        data = {}
    data.update({"format": CHOICE_FORMAT, "bundle": {"name": manifest.name, "version": manifest.version},
                 "device": here})
    data.setdefault("entries", {})[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{time.monotonic_ns()}.tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(path)
    except OSError as exc:  # a read-only home only costs the next load its timing
        log.warning("could not cache the artifact choice in %s: %s", path, exc)


def _frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A camera-sized BGR test frame (480 rows, the model's aspect ratio): a gradient with noise (not
    constant: int8 kernels can be faster on zeros)."""
    w = max(1, round(480 * width / height))
    rng = np.random.default_rng(seed)
    g = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    return np.clip(g + rng.normal(0, 40, (480, w, 3)), 0, 255).astype(np.uint8)


def _close_all(opened: dict) -> None:
    for runner in reversed(list(opened.values())):  # the reverse of opening, as backends nest their state
        runner.close()


def _on_own_thread(fn):
    """``fn()`` on a thread of its own, its result or exception returned here.

    What a backend leaves on the thread that loads and drops models stays there: OpenVINO gives the compiling
    thread an alternate signal stack per compiled model and can leave it pointing at memory freed with the
    model, so the next signal that thread takes (SIGTERM for `edgerec run`) became a segfault.
    """
    import threading

    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the calling thread below
            out["error"] = exc

    t = threading.Thread(target=run, name="edgerec-choice-timing", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _time_candidates(manifest: Manifest, cands: list[Candidate], opener, *, rounds: int, calls: int,
                     budget_s: float, clock=time.perf_counter_ns):
    """Open every candidate; ``rounds`` x ``calls`` timed ``invoke(prepare(frame))`` each, interleaved round by
    round (a burst of other load hits all alike); close them all. Returns ({label: median ms}, {label: why it
    failed}).

    A candidate whose backend cannot load or run it is left out; a bundle that is wrong (``BundleError``) is
    an error, whichever artifact would have been chosen.
    """
    frame = _frame(manifest.input.height, manifest.input.width)
    opened, failed = {}, {}
    try:
        for c in cands:
            runner = None
            try:
                runner = opener(c)
                runner.invoke(runner.prepare(frame))  # the first call allocates: not timed
                opened[c.label] = runner
            except (BackendError, RuntimeError, ValueError, ImportError, OSError) as exc:  # a backend's own kinds
                failed[c.label] = f"failed to load or run: {getattr(exc, 'message', exc)}"
                if runner is not None:
                    runner.close()
        samples: dict[str, list[int]] = {k: [] for k in opened}
        start = time.perf_counter()
        for r in range(rounds):
            for label, runner in opened.items():
                for _ in range(calls):
                    t0 = clock()
                    runner.invoke(runner.prepare(frame))
                    samples[label].append(clock() - t0)
            if r >= 1 and time.perf_counter() - start > budget_s:  # a slow model: two rounds are enough
                break
    finally:
        _close_all(opened)  # the winner included: opening it again costs one load and keeps the order safe
    return {k: float(np.median(v)) / 1e6 for k, v in samples.items()}, failed


def _timed(root: Path, manifest: Manifest, cands: list[Candidate], opener, threads, device, *, cache: bool,
           here: dict, rounds: int, calls: int, budget_s: float):
    path = choice_cache_path(root, here)
    key = _cache_key(cands, threads, device)
    labels = {c.label: c for c in cands}
    entry = _read_cache(path, key) if cache else None
    if entry is not None and f"{entry['artifact']}/{entry['backend']}" in labels:
        c = labels[f"{entry['artifact']}/{entry['backend']}"]
        when = str(entry.get("timestamp", "?"))[:16]
        reason = f"{entry.get('reason', 'timed at load')}; timed {when}, cached in {path}"
        return Choice(c.artifact.key, c.backend, threads, "cached", reason, dict(entry.get("timings_ms") or {}))
    timings, failed = _on_own_thread(lambda: _time_candidates(manifest, cands, opener, rounds=rounds, calls=calls,
                                                              budget_s=budget_s))
    if not timings:
        raise BackendError(f"no artifact of bundle '{manifest.name}' could be loaded here",
                           hint="; ".join(f"{k}: {v}" for k, v in failed.items()))
    ranked = sorted(timings, key=timings.get)
    win = ranked[0]
    nxt = f" (next: {ranked[1]} {timings[ranked[1]]:.3g} ms)" if len(ranked) > 1 else ""
    reason = f"fastest of {len(ranked)} timed at load: {timings[win]:.3g} ms per frame{nxt}"
    c = labels[win]
    choice = Choice(c.artifact.key, c.backend, threads, "timed", reason, {k: round(v, 4) for k, v in timings.items()},
                    failed)
    if cache:
        _write_cache(path, key, {"artifact": c.artifact.key, "backend": c.backend, "reason": reason,
                                 "timings_ms": choice.timings_ms,
                                 "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
                     manifest, here)
    return choice


# -- the policy ----------------------------------------------------------------------------------------------
def choose(root: str | Path, manifest: Manifest, *, open_candidate: Callable[[Candidate, int | None], Any],
           backend: str = "auto", format: str | None = None, precision: str | None = None, threads=None,
           device: str | None = None, profile=None, deploy_profile=None, store=None,
           accuracy_tolerance: float = ACCURACY_TOLERANCE, cache: bool = True, installed: list[str] | None = None,
           rounds: int = 5, calls: int = 3, budget_s: float = 3.0):
    """Choose the artifact to run (see the module docstring for the precedence); the caller opens it.

    ``open_candidate(candidate, threads)`` opens one candidate for timing, as something with
    ``prepare(frame_bgr)``, ``invoke(x)`` and ``close()`` (``Classifier.load`` builds a ``Classifier``).
    ``profile``: a ``DeviceProfile`` (level 4, and its ``default_threads`` where ``threads`` is not given). ``deploy_profile``: None/True = the bundle's
    ``deploy-profile.yaml`` if there is one, a path, or False. ``store``: None = ``edgerec-bench.jsonl`` in
    the bundle folder and in the current folder when they exist, paths, or False. ``cache``: reuse and
    write timed choices.
    """
    root = Path(root)
    backend = "auto" if backend in _AUTO else backend
    format = None if format in _AUTO else format
    precision = None if precision in _AUTO else precision
    threads = _threads(threads)
    if not 0 <= accuracy_tolerance <= 1:
        raise ConfigError(f"accuracy tolerance is a fraction (0.01 = one point), got {accuracy_tolerance}")
    installed = _backends.installed_backends() if installed is None else installed
    first, first_backend = choose_artifact(manifest, backend=backend, format=format, precision=precision,
                                           installed=installed)  # checks the names; raises when nothing runs
    cands = [Candidate(a, b) for a in sorted(manifest.ok_artifacts(), key=_order)
             if (format is None or a.format == format) and (precision is None or a.precision == precision)
             for b in _backends.candidates(a.format) if b in installed and backend in ("auto", b)]
    narrowed = ", ".join(f"{k} {v}" for k, v in (("format", format), ("precision", precision), ("backend", backend))
                         if v not in (None, "auto"))
    default_threads = threads if threads is not None else getattr(profile, "default_threads", None)

    def opener(c: Candidate):
        return open_candidate(c, default_threads)

    if format is not None and precision is not None:
        return Choice(first.key, first_backend, default_threads, "flags", f"asked for {narrowed}")
    if len(cands) == 1:
        why = f"the only artifact that runs here{' with ' + narrowed if narrowed else ''}"
        return Choice(first.key, first_backend, default_threads, "only", why)
    notes = []
    from ..bench.fingerprint import hardware

    here = hardware()
    if deploy_profile is not False:
        choice, note = _from_deploy_profile(root, manifest, cands, deploy_profile, threads, default_threads, here)
        if choice is not None:
            return choice
        if note:
            notes.append(note)
    accurate, excluded, acc_note = _accurate(cands, accuracy_tolerance)
    suffix = (f"; {acc_note}" + (f"; {'; '.join(notes)}" if notes else "")
              + (f"; among {narrowed}" if narrowed else ""))
    paths = _store_paths(root, store)
    if paths:
        from ..bench.fingerprint import device_id

        choice = _from_store(manifest, accurate, paths, threads, default_threads, device_id(here))
        if choice is not None:
            return dataclasses.replace(choice, reason=choice.reason + suffix, excluded=excluded)
    if profile is not None:
        choice = _from_device_profile(profile, accurate, threads)
        if choice is not None:
            return dataclasses.replace(choice, reason=choice.reason + suffix, excluded=excluded)
    if len(accurate) == 1:
        c = accurate[0]
        return Choice(c.artifact.key, c.backend, default_threads, "only",
                      "the only accurate artifact that runs here" + suffix, {}, excluded)
    choice = _timed(root, manifest, accurate, opener, default_threads, device, cache=cache, here=here,
                    rounds=rounds, calls=calls, budget_s=budget_s)
    return dataclasses.replace(choice, reason=choice.reason + suffix, excluded={**excluded, **choice.excluded})
