"""Scores -> an answer: softmax or sigmoid, top-k, a confidence threshold ("unknown"), temporal smoothing."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, suggest

__all__ = ["Prediction", "UNKNOWN", "softmax", "sigmoid", "Postprocessor", "Smoother", "SMOOTHING_MODES"]

UNKNOWN = "unknown"
SMOOTHING_MODES = ("mean", "majority")
_F32 = np.dtype(np.float32)
_FULL_SORT_MAX = 64  # up to this many classes top-k is a plain Python sort of one list


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float32)
    e = np.subtract(z, z.max(axis=-1, keepdims=True))  # a new array: exp and the division run in place on it
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(z, np.float32)))).astype(np.float32)


@dataclass
class Prediction:
    """One frame's answer.

    ``label``/``score``: the top class and its probability, or ``"unknown"`` (with the top score) when
    it is under the threshold. ``top_k``: ``[(label, score), ...]`` best first. ``labels``: for
    multi-label bundles every label over its threshold (for single-label: ``[label]`` unless unknown).
    ``scores``: all class probabilities (float32).
    """

    label: str
    score: float
    index: int
    top_k: list[tuple[str, float]]
    scores: np.ndarray = field(repr=False)
    labels: list[str] = field(default_factory=list)
    unknown: bool = False

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "score": round(float(self.score), 5),
            "top_k": [[lab, round(float(s), 5)] for lab, s in self.top_k],
            "labels": list(self.labels),
        }


class Postprocessor:
    """Raw float outputs (logits or probabilities) -> ``Prediction``."""

    def __init__(self, labels, *, task: str = "single_label", output: str = "logits",
                 threshold: float | None = None, top_k: int = 5):
        self.labels = tuple(labels)
        self.multi = task == "multi_label"
        self.output = output
        default = 0.5 if self.multi else 0.0
        self.threshold = default if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be between 0 and 1, got {threshold}")
        self.n = len(self.labels)
        self.k = max(1, min(int(top_k), self.n))

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, np.float32)
        if self.output == "probabilities":
            return raw
        return sigmoid(raw) if self.multi else softmax(raw)

    def __call__(self, probs: np.ndarray) -> Prediction:
        """``probs`` for ONE frame (C,) -> Prediction (apply ``probabilities`` first)."""
        if type(probs) is not np.ndarray or probs.dtype is not _F32 or probs.ndim != 1:
            probs = np.asarray(probs, np.float32).reshape(-1)
        if probs.shape[0] != self.n:
            raise ValueError(f"the model gives {probs.shape[0]} scores but the bundle has {self.n} labels")
        labels = self.labels
        if self.n <= _FULL_SORT_MAX:  # few classes: plain Python on one list beats several numpy calls
            values = probs.tolist()
            order = sorted(range(self.n), key=values.__getitem__, reverse=True)[: self.k]  # stable, as argsort
            top = [(labels[j], values[j]) for j in order]
        else:
            order = np.argsort(-probs, kind="stable")[: self.k].tolist()
            top = list(zip(map(labels.__getitem__, order), probs[order].tolist()))
        i = order[0]
        score = top[0][1]
        if self.multi:
            over_idx = np.flatnonzero(probs >= self.threshold)
            over = [labels[j] for j in over_idx[np.argsort(-probs[over_idx], kind="stable")].tolist()]
            unknown = not over
        else:
            unknown = score < self.threshold
            over = [] if unknown else [labels[i]]
        return Prediction(UNKNOWN if unknown else labels[i], score, i, top, probs, over, unknown)


class Smoother:
    """Temporal smoothing over the last ``n`` frames so a label does not flicker.

    ``mean``: moving average of the probability vectors (a ring buffer with a running sum).
    ``majority``: the most frequent top-1 class of the last ``n`` frames (ties: the most recent);
    its probability is averaged over the frames that voted for it.
    """

    def __init__(self, n: int, mode: str = "mean"):
        if mode not in SMOOTHING_MODES:
            raise ConfigError(f"unknown smoothing mode '{mode}'{suggest(mode, SMOOTHING_MODES)}")
        if n < 1:
            raise ConfigError(f"smoothing window must be at least 1 frame, got {n}")
        self.n, self.mode = int(n), mode
        self._ring: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._count = 0
        self._votes: deque[int] = deque(maxlen=self.n)

    def reset(self) -> None:
        self._ring, self._sum, self._count = None, None, 0
        self._votes.clear()

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        """Feed this frame's probabilities; returns the smoothed probability vector."""
        probs = np.asarray(probs, np.float32).reshape(-1)
        if self._ring is None or self._ring.shape[1] != probs.shape[0]:
            self._ring = np.zeros((self.n, probs.shape[0]), np.float64)
            self._sum = np.zeros(probs.shape[0], np.float64)
            self._count = 0
        slot = self._count % self.n
        self._sum += probs - self._ring[slot]
        self._ring[slot] = probs
        self._count += 1
        filled = min(self._count, self.n)
        if self.mode == "mean":
            return (self._sum / filled).astype(np.float32)
        self._votes.append(int(np.argmax(probs)))
        counts = Counter(self._votes)
        best = max(counts.values())
        winner = next(v for v in reversed(self._votes) if counts[v] == best)
        out = (self._sum / filled).astype(np.float32)
        # the winner's score: its mean probability over the frames that voted for it
        rows = [(slot - k) % self.n for k in range(filled)]
        voted = [r for r, v in zip(rows, reversed(self._votes)) if v == winner]
        out_w = float(np.mean(self._ring[voted, winner]))
        out[:] = np.minimum(out, np.nextafter(np.float32(out_w), np.float32(0)))  # nobody else outranks the elected class
        out[winner] = out_w
        return out
