"""Classification metrics (scikit-learn) in the shape ``metrics.json`` stores them, and the summary table.

>>> m = classification_metrics(logits, targets, labels)      # doctest: +SKIP
>>> m["accuracy"], m["top_k"]["top5"], m["per_class"]["3"]["f1"]   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["classification_metrics", "multilabel_metrics", "compute_metrics", "summary_table", "cv_summary"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def classification_metrics(logits: np.ndarray, targets: np.ndarray, labels: Sequence[str], *, k: int = 5) -> dict:
    """Single-label: accuracy, top-k, macro F1, per-class precision/recall/F1/support, confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

    logits = np.asarray(logits, np.float64)
    targets = np.asarray(targets, np.int64)
    n_cls = len(labels)
    pred = logits.argmax(1)
    ids = list(range(n_cls))
    p, r, f, s = precision_recall_fscore_support(targets, pred, labels=ids, zero_division=0)
    k = min(k, n_cls)
    if not len(targets):
        topk = 0.0
    elif k >= n_cls:
        topk = 1.0  # the true class is always among all classes
    else:
        topk = float(top_k_accuracy_score(targets, _softmax(logits), k=k, labels=ids))
    return {
        "n": int(len(targets)),
        "accuracy": float(accuracy_score(targets, pred)) if len(targets) else 0.0,
        "top_k": {"top5": topk, "k": k},
        "macro_f1": float(np.mean(f)),
        "per_class": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(targets, pred, labels=ids).tolist(),
    }


def multilabel_metrics(logits: np.ndarray, targets: np.ndarray, labels: Sequence[str], *, threshold: float = 0.5) -> dict:
    """Multi-label (sigmoid per label): exact-match accuracy, per-label P/R/F1/AP, micro/macro F1, mAP."""
    from sklearn.metrics import average_precision_score, multilabel_confusion_matrix, precision_recall_fscore_support

    logits = np.asarray(logits, np.float64)
    targets = np.asarray(targets).astype(np.int64)
    prob = 1.0 / (1.0 + np.exp(-logits))
    pred = (prob >= threshold).astype(np.int64)
    p, r, f, s = precision_recall_fscore_support(targets, pred, zero_division=0)
    micro = precision_recall_fscore_support(targets, pred, average="micro", zero_division=0)
    ap = []
    for i in range(len(labels)):
        has_pos = targets[:, i].any()
        ap.append(float(average_precision_score(targets[:, i], prob[:, i])) if has_pos else float("nan"))
    valid_ap = [a for a in ap if a == a]
    return {
        "n": int(len(targets)),
        "accuracy": float((pred == targets).all(1).mean()) if len(targets) else 0.0,  # exact match
        "label_accuracy": float((pred == targets).mean()) if len(targets) else 0.0,
        "threshold": threshold,
        "micro_f1": float(micro[2]),
        "macro_f1": float(np.mean(f)),
        "mAP": float(np.mean(valid_ap)) if valid_ap else 0.0,
        "per_class": {
            lab: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
                "average_precision": None if ap[i] != ap[i] else ap[i],
            }
            for i, lab in enumerate(labels)
        },
        # one [[tn, fp], [fn, tp]] per label
        "confusion_matrix": multilabel_confusion_matrix(targets, pred).tolist(),
    }


def compute_metrics(logits, targets, labels, *, task: str = "single_label", threshold: float = 0.5) -> dict:
    if task == "multi_label":
        return multilabel_metrics(logits, targets, labels, threshold=threshold)
    return classification_metrics(logits, targets, labels)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:6.2f}"


def summary_table(metrics: dict, *, task: str = "single_label") -> str:
    """Plain-text table: one row per (split, precision) with the headline figures."""
    extra = ("top5", "macro F1") if task == "single_label" else ("mAP", "macro F1")
    rows = [("split", "precision", "n", "accuracy %", *(f"{e} %" for e in extra))]
    for split in ("val", "test", "data"):
        for prec, m in metrics.get(split, {}).items():
            if not isinstance(m, dict) or "accuracy" not in m:
                continue
            first = m["top_k"]["top5"] if task == "single_label" else m.get("mAP")
            rows.append((split, prec, str(m["n"]), _pct(m["accuracy"]), _pct(first), _pct(m.get("macro_f1"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if j >= 2 else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    cv = metrics.get("cv")
    if cv:
        lines.append("")
        lines.append(f"{cv['k']}-fold cross-validation on train+val (mean +/- std):")
        for name, stat in cv["summary"].items():
            lines.append(f"  {name:<10} {100 * stat['mean']:6.2f} +/- {100 * stat['std']:.2f} %")
    if metrics.get("warnings"):
        from .monitor import format_warnings

        lines.append("")
        lines += format_warnings(metrics["warnings"])
    return "\n".join(lines)


def cv_summary(fold_metrics: list[dict], keys=("accuracy", "macro_f1", "top5")) -> dict:
    """Mean and (population) standard deviation over folds of the headline figures."""
    out = {}
    for key in keys:
        vals = [m["top_k"]["top5"] if key == "top5" else m.get(key) for m in fold_metrics]
        vals = [v for v in vals if v is not None]
        if vals:
            out[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "values": [float(v) for v in vals]}
    return out
