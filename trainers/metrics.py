"""Metrics, all from scikit-learn, on (rows, outputs) predictions: class probabilities, or one column
of predicted values for a regression target (trainers.task)."""
from __future__ import annotations

import numpy as np

# name -> mode, per task; the spec's metric must be one of its task's
CLASSIFICATION_METRICS = {"accuracy": "max", "precision_macro": "max", "recall_macro": "max", "f1_macro": "max",
                          "log_loss": "min", "roc_auc": "max"}
REGRESSION_METRICS = {"rmse": "min", "mae": "min", "r2": "max"}
METRICS = {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}


def _regression(name: str, y_true: np.ndarray, pred: np.ndarray) -> float:
    from sklearn import metrics as skm

    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)[:, 0]
    y_true = np.asarray(y_true, dtype=np.float64)
    if not np.isfinite(pred).all():
        return float("nan")
    if name == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y_true, pred)))
    if name == "mae":
        return float(skm.mean_absolute_error(y_true, pred))
    if len(y_true) < 2:
        return float("nan")  # R² needs the target's spread
    return float(skm.r2_score(y_true, pred))


def score(name: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    if name in REGRESSION_METRICS:
        return _regression(name, y_true, proba)
    from sklearn import metrics as skm  # here: the names above are what a spec's parse needs

    n_classes = proba.shape[1]
    pred = proba.argmax(1)
    if name == "accuracy":
        y_true = np.asarray(y_true)
        if y_true.dtype.kind in "iu" and y_true.shape == pred.shape and len(pred):
            # class indices, as every internal caller passes: the same fraction without sklearn's target-type
            # checks, which cost ~1.2 ms a call and greedy selection calls this thousands of times
            return float(np.mean(pred == y_true))
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


def all_scores(y_true: np.ndarray, proba: np.ndarray, task: str = "classification") -> dict[str, float]:
    names = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    return {name: score(name, y_true, proba) for name in names}


def confusion(y_true: np.ndarray, proba: np.ndarray) -> list[list[int]]:
    from sklearn import metrics as skm

    return skm.confusion_matrix(y_true, proba.argmax(1), labels=np.arange(proba.shape[1])).tolist()
