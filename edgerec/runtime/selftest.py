"""The self-test: every artifact re-run on the bundle's check images, against the outputs recorded at export.

The hash check (``edgerec.bundle.verify_bundle``) proves the files are the ones exported; this proves they
still *answer* as they did: a model swapped for another valid one with recomputed hashes, a runtime whose
kernels changed, or a board that computes differently is caught here, before it serves a frame. Export records,
per artifact, the full output vector of every check image (``reference.artifact_check_outputs``) and a
tolerance (``reference.artifact_check_tolerance``): for int8 a few output quantization steps, for fp32/fp16 a
share of the output's magnitude.

>>> from edgerec.runtime.selftest import self_test
>>> [(r.key, r.passed, r.max_abs_diff) for r in self_test("bundles/digits")]   # doctest: +SKIP
[('tflite-fp32', True, 1.2e-06), ('tflite-int8', True, 0.0)]

Used by ``edgerec bundle verify --run``, ``Classifier.load(..., self_test=True)`` and the board before a deploy
switches (``edgerec.devices.board.bundle_problem``). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bundle import Artifact, InputSpec, Manifest, load_manifest

__all__ = ["SelfTestResult", "self_test", "self_test_problem", "run_artifact", "check_inputs", "output_tolerance",
           "INT8_STEPS", "RELATIVE_TOLERANCE"]

# int8: integer kernels round differently per CPU architecture, a step here and there per layer. Measured: the same
# ONNX int8 digits model on ONNX Runtime for aarch64 (emulated Cortex-A72) was up to 0.52 from x86's outputs, about
# 5 steps of its output range, with every top-1 the same. A different model is off by tens of steps.
INT8_STEPS = 8
RELATIVE_TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2}  # of max(1, largest |output|); fp16 may run in half on ARM


def run_artifact(path: str | Path, artifact: Artifact, images: np.ndarray, spec: InputSpec, *,
                 threads: int | None = 2, batch: int = 32) -> np.ndarray:
    """Float scores of ``artifact`` (its own backend) for uint8 RGB images (N, H, W, 3)."""
    from .adapters import from_model_output, to_model_input
    from .backends import open_backend

    outs = []
    with open_backend(path, artifact, threads=threads) as be:
        step = batch if be.dynamic_batch else 1  # TFLite files and fixed-batch graphs: one image at a time
        for i in range(0, len(images), step):
            x = to_model_input(images[i:i + step], spec, artifact)
            outs.append(from_model_output(be.invoke(x), artifact))
    return np.concatenate(outs).reshape(len(images), -1)


def check_inputs(root: str | Path, m: Manifest) -> np.ndarray:
    """The bundle's check images as the model sees them: uint8 RGB (N, H, W, 3), through the runtime's reader."""
    from .image import model_image, read_image_bgr

    imgs = np.stack([model_image(read_image_bgr(Path(root) / rel), m.input) for rel in m.check_images])
    if m.input.color_order.upper() == "RGB":
        imgs = np.ascontiguousarray(imgs[..., ::-1])  # a handful of images: the slow numpy swap is fine
    return imgs


def output_tolerance(artifact: Artifact, outputs: np.ndarray) -> dict:
    """How far a board's outputs may be from ``outputs`` (this artifact's, at export) and still pass.

    int8: ``INT8_STEPS`` steps of the output's quantization (its own scale when the output is integer; else the
    recorded outputs' range / 255, the step of an int8 last layer calibrated on that range). Float:
    ``RELATIVE_TOLERANCE`` of max(1, largest |output|).
    """
    peak = float(np.max(np.abs(outputs))) if outputs.size else 0.0
    if artifact.precision == "int8":
        if artifact.output_quant is not None and artifact.output_dtype in ("int8", "uint8"):
            step, basis = float(artifact.output_quant.scale), "output scale"
        else:
            span = float(outputs.max() - outputs.min()) if outputs.size else 0.0
            step, basis = max(span, 1e-6) / 255.0, "output range / 255"
        return {"abs": round(INT8_STEPS * step, 8), "basis": f"{INT8_STEPS} quantization steps ({basis} {step:.4g})"}
    rel = RELATIVE_TOLERANCE.get(artifact.precision, RELATIVE_TOLERANCE["fp16"])
    return {"abs": round(rel * max(1.0, peak), 8), "basis": f"{rel:g} x max(1, largest |output| {peak:.4g})"}


@dataclass(frozen=True)
class SelfTestResult:
    key: str
    n: int
    passed: bool
    same_top1: float | None = None  # share of check images with the top-1 recorded at export
    max_abs_diff: float | None = None  # largest |output - recorded output|, None where nothing was recorded
    tolerance: float | None = None
    agreement: float | None = None  # share with PyTorch fp32's top-1 (as recorded at export)
    accuracy: float | None = None  # share with the check images' folder labels
    skipped: str | None = None  # why it did not run here (its backend is not installed)
    reason: str | None = None  # why it failed, with the numbers

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def self_test(bundle: str | Path, *, keys: list[str] | None = None, threads: int | None = 2,
              manifest: Manifest | None = None, skip_missing_backends: bool = True) -> list[SelfTestResult]:
    """Run each ok artifact of ``bundle`` (a folder; ``keys`` narrows) on its check images and compare.

    An artifact passes when its outputs are within the recorded tolerance of the recorded outputs on every
    check image (older bundles without recorded outputs: when it gives the recorded top-1 on each). With
    ``skip_missing_backends`` an artifact whose backend is not installed here is reported as skipped, not
    failed: it cannot run here either.
    """
    from .backends import candidates, installed_backends

    root = Path(bundle)
    m = manifest or load_manifest(root)
    if not m.check_images:
        return []
    imgs = check_inputs(root, m)
    ref = m.reference or {}
    outputs, tolerances = ref.get("artifact_check_outputs", {}), ref.get("artifact_check_tolerance", {})
    top1s = ref.get("artifact_check_top1", {})
    here = set(installed_backends())
    results = []
    for art in m.ok_artifacts():
        if keys is not None and art.key not in keys:
            continue
        n = int(len(imgs))
        if skip_missing_backends and not here & set(candidates(art.format)):
            results.append(SelfTestResult(art.key, n, passed=True,
                                          skipped=f"no backend for {art.format} here ({', '.join(candidates(art.format))})"))
            continue
        scores = run_artifact(root / art.file, art, imgs, m.input, threads=threads)
        top1 = scores.argmax(axis=1) if m.task == "single_label" else None
        same = agreement = acc = diff = tol = None
        problems = []
        if top1 is not None and art.key in top1s:
            same = float(np.mean(top1 == np.asarray(top1s[art.key])))
        if top1 is not None and ref.get("check_top1") is not None:
            agreement = float(np.mean(top1 == np.asarray(ref["check_top1"])))
        if top1 is not None and ref.get("check_labels") is not None:
            acc = float(np.mean(top1 == np.asarray(ref["check_labels"])))
        if art.key in outputs:
            expected = np.asarray(outputs[art.key], np.float64)
            if expected.shape != scores.shape:
                problems.append(f"outputs {scores.shape} where export recorded {expected.shape}")
            else:
                diff = float(np.max(np.abs(scores - expected)))
                tol = float(tolerances.get(art.key, {}).get("abs", 0.0))
                if diff > tol:
                    worst = int(np.argmax(np.abs(scores - expected).max(axis=1)))
                    problems.append(f"outputs differ from export's by up to {diff:.4g} (tolerance {tol:.4g}; worst on "
                                    f"{m.check_images[worst]})")
        elif same is None:  # a hand-made or early bundle: it ran, and there is nothing to hold it to
            results.append(SelfTestResult(art.key, n, passed=True, agreement=agreement, accuracy=acc,
                                          skipped="export recorded no outputs to compare with (re-export to record them)"))
            continue
        if same is not None and same < 1.0:
            problems.append(f"top-1 as at export on {same:.0%} of {n} check images")
        results.append(SelfTestResult(art.key, n, passed=not problems, same_top1=same, max_abs_diff=diff, tolerance=tol,
                                      agreement=agreement, accuracy=acc, reason="; ".join(problems) or None))
    return results


def self_test_problem(bundle: str | Path, **kw) -> str | None:
    """``self_test`` as one sentence naming every failing artifact with its numbers, or None when all pass."""
    bad = [r for r in self_test(bundle, **kw) if not r.passed]
    if not bad:
        return None
    return "self-test failed: " + "; ".join(f"{r.key}: {r.reason}" for r in bad)
