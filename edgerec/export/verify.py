"""Parity checks: every artifact runs through its own runtime backend on the held-out images.

The tensors are built by ``edgerec.runtime.adapters`` (the runtime's own math), so a verified artifact is
verified exactly as the device will feed it. Figures per artifact: accuracy, top-1 agreement with the
PyTorch fp32 model and the largest absolute logit difference (after dequantization).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bundle import InputSpec, Verification
from ..runtime.selftest import run_artifact  # noqa: F401  (re-exported: the runtime owns it)

__all__ = ["Thresholds", "torch_logits", "run_artifact", "measure", "with_calibration", "judge", "accuracy", "decisions"]


@dataclass(frozen=True)
class Thresholds:
    """When an artifact fails verification."""

    min_agreement: float = 0.99  # fp32/fp16: top-1 agreement with PyTorch, 0..1
    max_int8_drop: float = 1.5  # int8: accuracy points (percent, as typed) below the PyTorch fp32 model


def torch_logits(model, images: np.ndarray, spec: InputSpec, *, batch: int = 64) -> np.ndarray:
    """PyTorch logits for uint8 RGB images (N, H, W, 3), normalised with the runtime's own math."""
    import torch

    from ..runtime.adapters import normalize

    outs = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = normalize(images[i:i + batch], spec).transpose(0, 3, 1, 2)
            outs.append(model(torch.from_numpy(np.ascontiguousarray(x))).float().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def decisions(scores: np.ndarray, task: str) -> np.ndarray:
    """Top-1 class (single-label) or the 0/1 label matrix at logit 0 = probability 0.5 (multi-label)."""
    if task == "multi_label":
        return (scores > 0).astype(np.int64)
    return scores.argmax(axis=1)


def accuracy(scores: np.ndarray, labels: np.ndarray, task: str) -> float:
    """Top-1 accuracy (single-label) or per-label accuracy (multi-label), a fraction 0..1."""
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(decisions(scores, task) == np.asarray(labels)))


def measure(scores: np.ndarray, reference: np.ndarray, labels: np.ndarray, task: str, *,
            reference_accuracy: float) -> Verification:
    """Verification figures of ``scores`` against the PyTorch ``reference`` logits."""
    if scores.shape != reference.shape:
        raise ValueError(f"output shape {scores.shape} differs from the PyTorch model's {reference.shape}")
    acc = accuracy(scores, labels, task)
    agree = float(np.mean(decisions(scores, task) == decisions(reference, task)))
    diff = float(np.max(np.abs(scores.astype(np.float64) - reference))) if scores.size else 0.0
    return Verification(
        n_images=int(len(scores)),
        accuracy=round(acc, 6),
        agreement=round(agree, 6),
        max_abs_logit_diff=round(diff, 6),
        accuracy_delta=round(acc - reference_accuracy, 6),
        passed=True,
    )


def with_calibration(v: Verification, scores: np.ndarray, labels: np.ndarray, task: str,
                     temperature: float | None) -> Verification:
    """``v`` plus the expected calibration error of ``scores`` at temperature 1 and at ``temperature``."""
    import dataclasses

    from ..train.calibration import expected_calibration_error as ece

    if len(scores) == 0:
        return v
    before = round(ece(scores, labels, task), 6)
    after = round(ece(scores, labels, task, temperature=temperature), 6) if temperature else None
    return dataclasses.replace(v, ece=before, ece_calibrated=after)


def judge(v: Verification, precision: str, th: Thresholds) -> str | None:
    """``None`` when ``v`` passes, else the reason it does not (a sentence for the user)."""
    if precision in ("fp32", "fp16") and v.agreement < th.min_agreement:
        return (f"{precision} agrees with PyTorch on only {v.agreement:.1%} of {v.n_images} images "
                f"(needs {th.min_agreement:.0%}); max logit difference {v.max_abs_logit_diff:.4g}")
    if precision == "int8" and -100.0 * v.accuracy_delta > th.max_int8_drop + 1e-9:
        return (f"int8 accuracy {v.accuracy:.2%} is {-100 * v.accuracy_delta:.2f} points under PyTorch fp32 "
                f"(bound {th.max_int8_drop:g}); train with --qat or calibrate on more images (--calib)")
    return None
