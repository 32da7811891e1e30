"""Classification metrics, all from scikit-learn."""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# name -> mode; the spec's metric must be one of these
METRICS = {"accuracy": "max", "precision_macro": "max", "recall_macro": "max", "f1_macro": "max",
           "log_loss": "min", "roc_auc": "max"}


def score(name: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    n_classes = proba.shape[1]
    pred = proba.argmax(1)
    if name == "accuracy":
        return float(skm.accuracy_score(y_true, pred))
    if name in ("precision_macro", "recall_macro", "f1_macro"):
        fn = {"precision_macro": skm.precision_score, "recall_macro": skm.recall_score,
              "f1_macro": skm.f1_score}[name]
        return float(fn(y_true, pred, average="macro", labels=np.arange(n_classes), zero_division=0))
    if name == "log_loss":
        p = np.clip(proba, 1e-15, 1.0)
        return float(skm.log_loss(y_true, p / p.sum(1, keepdims=True), labels=np.arange(n_classes)))
    if name == "roc_auc":
        if len(np.unique(y_true)) < n_classes:
            return float("nan")  # undefined when a class is absent from y_true
        if n_classes == 2:
            return float(skm.roc_auc_score(y_true, proba[:, 1]))
        p = proba / proba.sum(1, keepdims=True)
        return float(skm.roc_auc_score(y_true, p, multi_class="ovr", labels=np.arange(n_classes)))
    raise ValueError(f"metric one of {sorted(METRICS)} expected, but got {name!r}")


def all_scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    return {name: score(name, y_true, proba) for name in METRICS}


def confusion(y_true: np.ndarray, proba: np.ndarray) -> list[list[int]]:
    return skm.confusion_matrix(y_true, proba.argmax(1), labels=np.arange(proba.shape[1])).tolist()
