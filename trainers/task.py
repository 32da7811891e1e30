"""What differs between predicting a class and predicting a number, in one place.

Everything downstream of the data passes one array kind around: (rows, outputs) float64 predictions,
where outputs are the class probabilities (classification) or the one predicted value in the
target's own units (regression, outputs = 1). Folds, combiners, the judge and serving ask the Task
what those numbers mean.

`data.task: auto` decides from the target column (detect): text or booleans are classes; a number
is a regression target when it has a value that is not a whole number, or more than
MAX_INTEGER_CLASSES distinct whole values. Fewer distinct whole numbers (0/1, ratings 1-5, digit
codes) stay classes; `data.task` overrides the rule either way.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from trainers.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

MAX_INTEGER_CLASSES = 20  # distinct whole-number targets beyond this are a regression target under auto
MAX_STRATA = 10  # quantile bins a regression target is stratified on (folds, held-out split)


class Task(ABC):
    name: ClassVar[str]
    metrics: ClassVar[dict[str, str]]  # metric name -> mode the search may use
    default_metric: ClassVar[str]  # search.metric when the spec names none
    loss_metric: ClassVar[str]  # the curves' val_loss, and greedy selection's tie-break

    @abstractmethod
    def outputs(self, logits):
        """A torch net's raw outputs (rows, k) as predictions: probabilities, or the values as they are."""

    @abstractmethod
    def strata(self, y: np.ndarray, groups: int) -> np.ndarray:
        """What a stratified split keeps in proportion, for a split into `groups` parts."""

    def n_outputs(self, n_classes: int) -> int:
        return n_classes


class Classification(Task):
    name = "classification"
    metrics = CLASSIFICATION_METRICS
    default_metric = "accuracy"
    loss_metric = "log_loss"

    def outputs(self, logits):
        import torch

        return torch.softmax(logits, -1)

    def strata(self, y, groups):
        return np.asarray(y)


class Regression(Task):
    name = "regression"
    metrics = REGRESSION_METRICS
    default_metric = "rmse"
    loss_metric = "rmse"

    def outputs(self, logits):
        return logits

    def strata(self, y, groups):
        """Equal-count bins of the target's rank order: each of at most MAX_STRATA bins holds at least
        `groups` rows, so StratifiedKFold can put some of every bin in every fold."""
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        bins = max(1, min(MAX_STRATA, len(y) // max(groups, 1)))
        order = np.argsort(y, kind="stable")
        out = np.empty(len(y), dtype=np.int64)
        out[order] = np.arange(len(y)) * bins // max(len(y), 1)
        return out

    def n_outputs(self, n_classes: int) -> int:
        return 1


TASKS: dict[str, Task] = {t.name: t for t in (Classification(), Regression())}
TASK_NAMES = tuple(TASKS)


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"task one of {list(TASKS)} expected, but got {name!r}") from None


def task_of_metric(metric: str) -> str:
    return "regression" if metric in REGRESSION_METRICS else "classification"


def detect(values: np.ndarray, many: bool = False) -> str:
    """The task `data.task: auto` picks for these (checked) target values; many: more distinct values
    were seen than were kept (a sample's bounded count), which only a number can be."""
    values = np.asarray(values)
    if values.dtype.kind == "b" or values.dtype.kind in "OSU" or values.size == 0:
        return "classification"
    if values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
        return "regression"
    return "regression" if many or len(np.unique(values)) > MAX_INTEGER_CLASSES else "classification"
