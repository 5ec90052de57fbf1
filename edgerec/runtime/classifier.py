"""``Classifier``: a verified bundle, one artifact, one backend; BGR frames in, ``Prediction`` out.

>>> from edgerec.runtime import Classifier
>>> with Classifier.load("out/digits/bundle", threads=2) as clf:      # doctest: +SKIP
...     pred = clf.classify(frame_bgr)
...     print(pred.label, pred.score, pred.top_k)
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .._archive import is_archive, unpack
from ..bundle import Artifact, Manifest, load_manifest, verify_bundle
from ..errors import BackendError, BundleError, ConfigError, suggest
from . import backends as _backends
from .adapters import from_model_output, output_decoder
from .postprocess import Postprocessor, Prediction, Smoother
from .preprocess import Preprocessor

__all__ = ["Classifier", "choose_artifact", "PRECISION_ORDER"]

# On CPUs and edge accelerators int8 is the fast one; fp16 only pays off on GPUs, so it comes last.
PRECISION_ORDER = ("int8", "fp32", "fp16")
_FORMATS = tuple(_backends.FORMAT_BACKENDS)
_now = time.perf_counter_ns


def _rank_backend(format: str, backend: str, installed: list[str]) -> str | None:
    names = _backends.candidates(format) if backend == "auto" else (backend,)
    return next((n for n in names if n in installed and n in _backends.candidates(format)), None)


def choose_artifact(manifest: Manifest, *, backend: str = "auto", format: str | None = None,
                    precision: str | None = None, installed: list[str] | None = None) -> tuple[Artifact, str]:
    """Pick ``(artifact, backend name)`` from what the bundle holds and what is installed.

    Order: formats by ``FORMAT_BACKENDS`` (tflite, onnx, openvino), precisions by ``PRECISION_ORDER``;
    ``format``/``precision``/``backend`` narrow the choice. The error lists what the bundle has and what
    is installed, so the fix is obvious.
    """
    if backend != "auto" and backend not in _backends.BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'{suggest(backend, [*_backends.BACKENDS, 'auto'])}")
    if format is not None and format not in _FORMATS:
        raise ConfigError(f"unknown format '{format}'{suggest(format, _FORMATS)}")
    if precision is not None and precision not in PRECISION_ORDER:
        raise ConfigError(f"unknown precision '{precision}'{suggest(precision, PRECISION_ORDER)}")
    installed = _backends.installed_backends() if installed is None else installed
    arts = [a for a in manifest.ok_artifacts()
            if (format is None or a.format == format) and (precision is None or a.precision == precision)]

    def key(a: Artifact):
        fmt = _FORMATS.index(a.format) if a.format in _FORMATS else len(_FORMATS)
        prec = PRECISION_ORDER.index(a.precision) if a.precision in PRECISION_ORDER else len(PRECISION_ORDER)
        return (fmt, prec, a.embedded_preprocess)

    for a in sorted(arts, key=key):
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


class Classifier:
    """Bundle + backend + pre/post-processing. Use ``Classifier.load``; close it (or use ``with``)."""

    def __init__(self, manifest: Manifest, artifact: Artifact, backend: _backends.Backend, *, root: Path,
                 threshold: float | None = None, top_k: int = 5, smoothing: int = 0, smoothing_mode: str = "mean"):
        self.manifest, self.artifact, self.backend, self.root = manifest, artifact, backend, root
        self.labels = manifest.labels
        self.pre = Preprocessor(manifest.input, artifact, batch=1)
        self.post = Postprocessor(manifest.labels, task=manifest.task, output=artifact.output,
                                  threshold=threshold, top_k=top_k)
        self.smoother = Smoother(smoothing, smoothing_mode) if smoothing and smoothing > 1 else None
        self.last_timings_ns = {"preprocess": 0, "inference": 0, "postprocess": 0}
        self._decode = output_decoder(artifact)
        self._softmax = self.post.output != "probabilities" and not self.post.multi
        expected = tuple(self.pre.out.shape[1:])
        got = tuple(backend.input_signature[1:])
        if artifact.embedded_preprocess:  # any frame size: only the channel count is fixed
            expected, got = expected[-1:], got[-1:]
        if len(got) != len(expected) or any(g is not None and g != e for g, e in zip(got, expected)):
            shown = tuple("?" if d is None else d for d in backend.input_signature)
            raise BundleError(
                f"{artifact.key}: the model's input is {shown} but the manifest implies "
                f"(N, {', '.join(map(str, expected))}) ({artifact.layout}, {manifest.input.height}x{manifest.input.width})",
                hint="the manifest does not match its model file; re-export the bundle",
            )
        if backend.input_dtype != self.pre.dtype:
            raise BundleError(
                f"{artifact.key}: the model takes {backend.input_dtype} but the manifest says {artifact.input_dtype}",
                hint="re-export the bundle",
            )

    @classmethod
    def load(cls, bundle: str | Path, *, backend: str = "auto", format: str | None = None,
             precision: str | None = None, threads: int | None = None, device: str | None = None,
             profile: str | None = None, verify: bool = True, threshold: float | None = None,
             top_k: int = 5, smoothing: int = 0, smoothing_mode: str = "mean") -> "Classifier":
        """Verify ``bundle`` (a folder, or a packed ``.edgerec``/``.tar.gz``) and load its best runnable artifact.

        Verification is the schema plus the sha256 of every file.

        ``profile``: a device profile name (``edgerec.devices.profile.load_profile``) whose default
        backend/precision/threads apply where the call leaves them open. ``smoothing``: average (or vote,
        ``smoothing_mode="majority"``) over the last N frames in ``classify``.
        """
        root = Path(bundle)
        unpacked = None
        if is_archive(root):  # a packed bundle (.edgerec / .tar.gz): unpacked safely into a temporary folder
            unpacked = Path(tempfile.mkdtemp(prefix="edgerec-bundle-"))
            try:
                root = unpack(root, unpacked / "bundle")
            except BaseException:
                shutil.rmtree(unpacked, ignore_errors=True)
                raise
        elif root.is_file():
            root = root.parent
        try:
            clf = cls._load(root, backend=backend, format=format, precision=precision, threads=threads, device=device,
                            profile=profile, verify=verify, threshold=threshold, top_k=top_k, smoothing=smoothing,
                            smoothing_mode=smoothing_mode)
        except BaseException:
            if unpacked is not None:
                shutil.rmtree(unpacked, ignore_errors=True)
            raise
        clf._unpacked = unpacked
        return clf

    @classmethod
    def _load(cls, root: Path, *, backend, format, precision, threads, device, profile, verify, threshold, top_k,
              smoothing, smoothing_mode) -> "Classifier":
        manifest = verify_bundle(root) if verify else load_manifest(root)
        attempts = [(backend, precision)]
        if profile:
            from ..devices.profile import load_profile  # only when asked: profiles are package data

            prof = load_profile(profile)
            if threads is None:
                threads = prof.default_threads
            # the profile's backend and precision are preferences: a bundle without them still runs
            attempts = [(backend if backend != "auto" else prof.default_backend or "auto", precision or prof.default_precision),
                        (backend if backend != "auto" else prof.default_backend or "auto", precision),
                        (backend, precision)]
        for i, (be_name, prec) in enumerate(attempts):
            try:
                artifact, name = choose_artifact(manifest, backend=be_name, format=format, precision=prec)
                break
            except (BackendError, ConfigError):
                if i == len(attempts) - 1:
                    raise
        path = root / (artifact.file or (artifact.files[0] if artifact.files else ""))
        if not path.is_file():
            raise BundleError(f"{artifact.key}: model file {path} is missing", hint="copy the whole bundle folder")
        be = _backends.open_backend(path, artifact, backend=name, threads=threads, device=device)
        try:
            return cls(manifest, artifact, be, root=root, threshold=threshold, top_k=top_k,
                       smoothing=smoothing, smoothing_mode=smoothing_mode)
        except Exception:
            be.close()
            raise

    # the four steps, usable one by one (benchmarks time them separately)
    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        """A BGR frame (any size; gray/BGRA converted) -> the model's input tensor (1, ...), reused buffer."""
        return self.pre(frame_bgr)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        return self.backend.invoke(x)

    def postprocess(self, raw: np.ndarray) -> Prediction:
        z = self._decode(raw)  # a new float32 array: softmax runs in place on it
        if not self._softmax:
            probs = self.post.probabilities(z)
        else:
            np.subtract(z, z.max(axis=-1, keepdims=True), out=z)  # postprocess.softmax, in place
            np.exp(z, out=z)
            z /= z.sum(axis=-1, keepdims=True)
            probs = z
        probs = probs[0]
        if self.smoother is not None:
            probs = self.smoother(probs)
        return self.post(probs)

    def classify(self, frame_bgr: np.ndarray) -> Prediction:
        """``postprocess(invoke(prepare(frame)))``; per-step times land in ``last_timings_ns``."""
        t0 = _now()
        x = self.pre(frame_bgr)
        t1 = _now()
        raw = self.backend.invoke(x)
        t2 = _now()
        pred = self.postprocess(raw)
        t3 = _now()
        tm = self.last_timings_ns
        tm["preprocess"], tm["inference"], tm["postprocess"] = t1 - t0, t2 - t1, t3 - t2
        return pred

    def classify_batch(self, frames, *, batch_size: int | None = None) -> list[Prediction]:
        """Many frames; batched when the model takes any batch size, else in chunks of its own.

        Smoothing is not applied (a batch is not a time series).
        """
        frames = list(frames)
        if not frames:
            return []
        if self.backend.dynamic_batch:
            step = batch_size or len(frames)
        else:
            step = int(self.backend.input_shape[0]) or 1
        out: list[Prediction] = []
        for s in range(0, len(frames), step):
            chunk = frames[s:s + step]
            x = self.pre.batch(chunk)
            if x.shape[0] < step and not self.backend.dynamic_batch:  # pad a short last chunk
                x = np.concatenate([x, np.repeat(x[-1:], step - x.shape[0], axis=0)])
            probs = self.post.probabilities(from_model_output(self.backend.invoke(x), self.artifact))
            out.extend(self.post(p) for p in probs[: len(chunk)])
        return out

    def describe(self) -> str:
        return (f"{self.manifest.name} {self.manifest.version}: {self.artifact.key} on {self.backend.version or self.backend.name}"
                f" (threads={self.backend.threads or 'default'}, input {self.manifest.input.width}x{self.manifest.input.height}"
                f" {self.artifact.layout} {self.artifact.input_dtype})")

    def close(self) -> None:
        self.backend.close()
        if getattr(self, "_unpacked", None) is not None:
            shutil.rmtree(self._unpacked, ignore_errors=True)
            self._unpacked = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"Classifier({self.manifest.name!r}, {self.artifact.key}, {self.backend.name})"
