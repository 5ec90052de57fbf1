"""PNG figures of a run: learning curves and confusion matrices (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_curves", "plot_confusion"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never opens a window
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path: Path) -> Path:
    """Train/val loss and val accuracy per epoch; the QAT phase is shaded."""
    plt = _plt()
    ep = np.arange(1, len(history) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(ep, [h["train_loss"] for h in history], label="train (augmented, smoothed labels)")
    ax1.plot(ep, [h.get("val_loss", np.nan) for h in history], label="val")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(ep, [100 * h.get("val_accuracy", np.nan) for h in history], label="val accuracy", color="C2")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy %")
    for ax in (ax1, ax2):
        phases = [h.get("phase", "fp32") for h in history]
        for i, ph in enumerate(phases):
            if ph in ("head", "qat"):
                ax.axvspan(i + 0.5, i + 1.5, color={"head": "C7", "qat": "C1"}[ph], alpha=0.15, lw=0)
        ax.grid(alpha=0.3)
    ax2.set_title("shaded: head-only (grey), QAT (orange)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(cm: Sequence[Sequence[int]], labels: Sequence[str], path: Path, *, title: str) -> Path:
    """Row-normalised confusion matrix with counts in the cells (up to 30 classes labelled)."""
    plt = _plt()
    cm = np.asarray(cm)
    n = len(labels)
    size = min(12, 2.5 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
