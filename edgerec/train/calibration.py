"""Confidence calibration: one temperature per model, fitted on validation logits (numpy only).

A network trained with cross-entropy is usually over-confident, and its int8 version is confident in a
different way than its float one, so a ``--threshold 0.8`` would mean different things per artifact.
Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017) divides the logits by
one number ``T`` fitted to minimise the validation negative log-likelihood; it never changes the top-1
answer. ``T`` travels in the bundle (``Artifact.temperature``) and the runtime applies it before softmax or
sigmoid. The expected calibration error (ECE) is reported before and after, on data ``T`` was not fitted on.

>>> z = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]]); y = np.array([0, 1, 1, 0])
>>> fit_temperature(z, y) > 1    # half of these confident answers are wrong: soften them
True
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fit_temperature", "expected_calibration_error", "calibration_report"]

_BETA_RANGE = (0.02, 20.0)  # inverse temperature searched: T between 0.05 and 50


def _nll(logits: np.ndarray, targets: np.ndarray, task: str, beta: float) -> float:
    z = logits.astype(np.float64) * beta
    if task == "multi_label":
        y = targets.astype(np.float64)
        # log(1 + exp(-|z|)) + max(z, 0) - y z: the stable binary cross-entropy with logits
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(len(z)), targets.astype(np.int64)]))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, task: str = "single_label", *, iters: int = 60) -> float:
    """The ``T`` minimising the NLL of ``softmax(logits / T)`` (sigmoid for multi-label).

    The NLL is convex in the inverse temperature, so a golden-section search over it finds the optimum
    (no optimiser state, deterministic). Returns 1.0 when there is nothing to fit.
    """
    logits, targets = np.asarray(logits), np.asarray(targets)
    if len(logits) == 0 or not np.all(np.isfinite(logits)):
        return 1.0
    lo, hi = math.log(_BETA_RANGE[0]), math.log(_BETA_RANGE[1])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(logits, targets, task, math.exp(a)), _nll(logits, targets, task, math.exp(b))
    for _ in range(iters):  # on log(beta): the range spans three decades
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(logits, targets, task, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(logits, targets, task, math.exp(b))
    return float(1.0 / math.exp((lo + hi) / 2))


def _probs(logits: np.ndarray, task: str, temperature: float) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    if task == "multi_label":
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(logits: np.ndarray, targets: np.ndarray, task: str = "single_label", *,
                               temperature: float = 1.0, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width confidence bins: the mean |accuracy - confidence|, weighted by bin size.

    Single-label: the top-1 probability against whether top-1 is right. Multi-label: every (image, label)
    decision at 0.5, its confidence ``max(p, 1 - p)``.
    """
    logits, targets = np.asarray(logits), np.asarray(targets)
    if len(logits) == 0:
        return float("nan")
    p = _probs(logits, task, temperature)
    if task == "multi_label":
        conf = np.maximum(p, 1 - p).ravel()
        right = ((p > 0.5) == (targets > 0)).ravel()
    else:
        conf = p.max(axis=1)
        right = p.argmax(axis=1) == targets.astype(np.int64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for k in range(bins):
        sel = which == k
        if sel.any():
            ece += sel.mean() * abs(right[sel].mean() - conf[sel].mean())
    return float(ece)


def calibration_report(fit_logits, fit_targets, eval_logits, eval_targets, task: str, *,
                       fit_split: str = "val", eval_split: str = "test") -> dict:
    """Fit ``T`` on one split, report ECE before/after on another: what ``metrics.json`` records."""
    t = fit_temperature(fit_logits, fit_targets, task)
    out = {"temperature": round(t, 6), "fitted_on": fit_split, "n_fit": int(len(fit_logits))}
    if eval_logits is not None and len(eval_logits):
        out.update({
            "evaluated_on": eval_split, "n_eval": int(len(eval_logits)),
            "ece_before": round(expected_calibration_error(eval_logits, eval_targets, task), 6),
            "ece_after": round(expected_calibration_error(eval_logits, eval_targets, task, temperature=t), 6),
        })
    return out
