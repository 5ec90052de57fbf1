"""metrics.json figures against hand-computed values."""

import numpy as np
import pytest

from edgerec.train.metrics import classification_metrics, cv_summary, multilabel_metrics, summary_table


def test_single_label_by_hand():
    labels = ["a", "b", "c"]
    y = np.array([0, 0, 1, 1, 2, 2])
    logits = np.array([[3, 1, 0], [1, 3, 0], [0, 3, 1], [0, 2, 3], [0, 0, 3], [1, 0, 3]], float)
    m = classification_metrics(logits, y, labels)
    # predictions: 0 1 1 2 2 2
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 0, 2]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["c"]["precision"] == pytest.approx(2 / 3)
    # 3 classes: top-k is top-3 = always right
    assert m["top_k"]["k"] == 3 and m["top_k"]["top5"] == 1.0
    assert m["n"] == 6


def test_multilabel_by_hand():
    labels = ["cat", "dog"]
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    logits = np.array([[2, -2], [2, -1], [-2, 2], [-2, -2]], float)  # second row misses "dog"
    m = multilabel_metrics(logits, y, labels)
    assert m["accuracy"] == pytest.approx(3 / 4)  # exact match
    assert m["label_accuracy"] == pytest.approx(7 / 8)
    assert m["per_class"]["cat"]["f1"] == 1.0
    assert m["per_class"]["dog"]["recall"] == pytest.approx(0.5)
    assert m["confusion_matrix"][1] == [[2, 0], [1, 1]]


def test_cv_summary_and_table():
    folds = [{"n": 5, "accuracy": 0.8, "macro_f1": 0.7, "top_k": {"top5": 1.0}},
             {"n": 5, "accuracy": 1.0, "macro_f1": 0.9, "top_k": {"top5": 1.0}}]
    s = cv_summary(folds)
    assert s["accuracy"]["mean"] == pytest.approx(0.9) and s["accuracy"]["std"] == pytest.approx(0.1)
    m = classification_metrics(np.eye(3), np.arange(3), ["a", "b", "c"])
    text = summary_table({"test": {"fp32": m, "int8": m}, "cv": {"k": 2, "summary": s}})
    assert "test" in text and "int8" in text and "100.00" in text and "90.00 +/- 10.00" in text
