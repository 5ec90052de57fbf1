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
from ..bundle import Artifact, Manifest, bundle_path, load_manifest, verify_bundle
from ..errors import BundleError
from . import backends as _backends
from .adapters import output_decoder
from .choice import ACCURACY_TOLERANCE, PRECISION_ORDER, Candidate, Choice, choose, choose_artifact
from .postprocess import Postprocessor, Prediction, Smoother
from .preprocess import Preprocessor

__all__ = ["Classifier", "choose_artifact", "PRECISION_ORDER"]

_now = time.perf_counter_ns


class Classifier:
    """Bundle + backend + pre/post-processing. Use ``Classifier.load``; close it (or use ``with``)."""

    choice: Choice | None = None  # which artifact runs and why (set by ``load``)

    def __init__(self, manifest: Manifest, artifact: Artifact, backend: _backends.Backend, *, root: Path,
                 threshold: float | None = None, top_k: int = 5, smoothing: int = 0, smoothing_mode: str = "mean",
                 roi=None):
        self.manifest, self.artifact, self.backend, self.root = manifest, artifact, backend, root
        self.labels = manifest.labels
        self.pre = Preprocessor(manifest.input, artifact, batch=1, roi=roi)
        self.post = Postprocessor(manifest.labels, task=manifest.task, output=artifact.output,
                                  threshold=threshold, top_k=top_k)
        self.smoother = Smoother(smoothing, smoothing_mode) if smoothing and smoothing > 1 else None
        self.last_timings_ns = {"preprocess": 0, "inference": 0, "postprocess": 0}
        self._decode = output_decoder(artifact, calibrated=True)  # the bundle's confidence temperature applied
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
             top_k: int = 5, smoothing: int = 0, smoothing_mode: str = "mean", roi=None,
             accuracy_tolerance: float = ACCURACY_TOLERANCE, deploy_profile=None, bench_store=None,
             choice_cache: bool = True, self_test: bool = False) -> "Classifier":
        """Verify ``bundle`` (a folder, or a packed ``.edgerec``/``.tar.gz``) and load the artifact that runs
        fastest here among the accurate ones; ``clf.choice`` says which and why.

        Verification is the schema plus the sha256 of every file.

        ``format``/``precision``/``backend``: ``"auto"`` (or None) or a name; both format and precision given
        pin the artifact, one alone narrows the choice. Otherwise, first that applies
        (``edgerec.runtime.choice``): the bundle's ``deploy-profile.yaml`` (``deploy_profile``: a path, or
        False to ignore it), a bench result store measured on this kind of device (``bench_store``: paths,
        or False; default ``edgerec-bench.jsonl`` in the bundle folder and the current folder), the device
        ``profile``, a few timed calls at load (cached outside the bundle unless ``choice_cache=False``);
        always among artifacts whose recorded accuracy is within ``accuracy_tolerance`` of the best.

        ``profile``: a device profile name (``edgerec.devices.device_profile.load_profile``) whose default
        backend/precision/threads apply where the call leaves them open. ``smoothing``: average (or vote,
        ``smoothing_mode="majority"``) over the last N frames in ``classify``. ``roi``: the region of each frame
        to classify, ``"x,y,w,h"`` in pixels or fractions of the frame (``"0.125,0,0.75,1"``), a 4-sequence or an
        ``edgerec.runtime.roi.Roi``; a deploy-time setting (the bundle does not change), checked on the first frame.

        ``self_test``: before returning, run the chosen artifact on the bundle's check images and compare its
        outputs with those recorded at export (``edgerec.runtime.selftest``); ``BundleError`` when they differ.
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
                            smoothing_mode=smoothing_mode, roi=roi, accuracy_tolerance=accuracy_tolerance,
                            deploy_profile=deploy_profile, bench_store=bench_store, choice_cache=choice_cache,
                            self_test=self_test)
        except BaseException:
            if unpacked is not None:
                shutil.rmtree(unpacked, ignore_errors=True)
            raise
        clf._unpacked = unpacked
        return clf

    @classmethod
    def _load(cls, root: Path, *, backend, format, precision, threads, device, profile, verify, threshold, top_k,
              smoothing, smoothing_mode, roi=None, accuracy_tolerance=ACCURACY_TOLERANCE, deploy_profile=None,
              bench_store=None, choice_cache=True, self_test=False) -> "Classifier":
        manifest = verify_bundle(root) if verify else load_manifest(root)
        prof = None
        if profile:
            from ..devices.device_profile import load_profile  # only when asked: profiles are package data

            prof = load_profile(profile)

        def open_candidate(c: Candidate, t) -> "Classifier":
            # inside the bundle even with verify=False; with it, the file's hash was just checked
            a = c.artifact
            path = bundle_path(root, a.file or (a.files[0] if a.files else ""), what=f"{a.key} file")
            if not path.is_file():
                raise BundleError(f"{a.key}: model file {path} is missing", hint="copy the whole bundle folder")
            be = _backends.open_backend(path, a, backend=c.backend, threads=t, device=device)
            try:
                return cls(manifest, a, be, root=root, threshold=threshold, top_k=top_k,
                           smoothing=smoothing, smoothing_mode=smoothing_mode, roi=roi)
            except Exception:
                be.close()
                raise

        choice = choose(root, manifest, open_candidate=open_candidate, backend=backend, format=format,
                        precision=precision, threads=threads, device=device, profile=prof, deploy_profile=deploy_profile,
                        store=bench_store, accuracy_tolerance=accuracy_tolerance, cache=choice_cache)
        artifact = next(a for a in manifest.ok_artifacts() if a.key == choice.artifact)
        if self_test:
            from .selftest import self_test as run_self_test

            bad = [r for r in run_self_test(root, keys=[artifact.key], threads=choice.threads, manifest=manifest,
                                            skip_missing_backends=False) if not r.passed]
            if bad:
                raise BundleError(f"self-test failed: {artifact.key}: {bad[0].reason}",
                                  hint="this artifact does not answer as it did at export: re-export the bundle, or "
                                       "compare runtime versions (edgerec bundle verify --run BUNDLE)")
        clf = open_candidate(Candidate(artifact, choice.backend), choice.threads)
        clf.choice = choice
        return clf

    # the four steps, usable one by one (benchmarks time them separately)
    def prepare(self, frame_bgr: np.ndarray, roi=None) -> np.ndarray:
        """A BGR frame (any size; gray/BGRA converted) -> the model's input tensor (1, ...), reused buffer."""
        return self.pre(frame_bgr, roi)

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

    def classify(self, frame_bgr: np.ndarray, roi=None) -> Prediction:
        """``postprocess(invoke(prepare(frame)))``; per-step times land in ``last_timings_ns``.

        ``roi`` (as in ``load``) replaces the loaded ROI for this frame; ``last_roi`` is the region used.
        """
        t0 = _now()
        x = self.pre(frame_bgr, roi)
        t1 = _now()
        raw = self.backend.invoke(x)
        t2 = _now()
        pred = self.postprocess(raw)
        t3 = _now()
        tm = self.last_timings_ns
        tm["preprocess"], tm["inference"], tm["postprocess"] = t1 - t0, t2 - t1, t3 - t2
        return pred

    def classify_batch(self, frames, *, batch_size: int | None = None, roi=None) -> list[Prediction]:
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
            x = self.pre.batch(chunk, roi)
            if x.shape[0] < step and not self.backend.dynamic_batch:  # pad a short last chunk
                x = np.concatenate([x, np.repeat(x[-1:], step - x.shape[0], axis=0)])
            probs = self.post.probabilities(self._decode(self.backend.invoke(x)))
            out.extend(self.post(p) for p in probs[: len(chunk)])
        return out

    @property
    def last_roi(self) -> tuple[int, int, int, int] | None:
        """``(x, y, w, h)`` in pixels of the region the last frame was classified on; None for the whole frame."""
        return self.pre.last_roi

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
