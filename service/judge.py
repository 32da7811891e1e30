"""Judgement on the held-out test rows: best single trial vs ensemble vs student, side by side."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
from pydantic import BaseModel

from trainers.ensemble.predictor import EnsemblePredictor
from trainers.metrics import all_scores, confusion

# the columns printed and logged, in order; confusion and bookkeeping are kept beside them
METRIC_COLUMNS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss")
LATENCY_BATCHES = (1, 256)


class JudgeRow(BaseModel):
    model: str  # single | ensemble | student
    accuracy: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    log_loss: float
    roc_auc: float | None = None
    latency_ms_b1: float  # in-process milliseconds per sample at batch 1 (median of repeats)
    latency_ms_b256: float  # the same at batch 256
    n_members: int
    n_test: int
    confusion: list[list[int]]

    def metrics(self) -> dict[str, float]:
        """The numbers worth logging (no confusion matrix, no NaN)."""
        keys = (*METRIC_COLUMNS, "roc_auc", "latency_ms_b1", "latency_ms_b256")
        return {k: float(getattr(self, k)) for k in keys
                if getattr(self, k) is not None and np.isfinite(getattr(self, k))}


def latency_per_sample(predicts: dict[str, Callable[[np.ndarray], object]], x: np.ndarray, batch: int,
                       repeats: int) -> dict[str, float]:
    """Median seconds per sample of each predict() on `batch` rows.

    Rows are tiled when the test split is smaller than the batch (latency does not depend on
    which rows). Every predictor is warmed up first (first calls pay one-off allocations that a
    server pays once per process), then timed round-robin, one call each per repeat, so load
    from other processes on a shared machine hits all of them alike.
    """
    rows = np.resize(np.asarray(x, dtype=np.float32), (batch, x.shape[1]))
    for predict in predicts.values():
        for _ in range(5):
            predict(rows)
    times: dict[str, list[float]] = {name: [] for name in predicts}
    for _ in range(repeats):
        for name, predict in predicts.items():
            start = time.perf_counter()
            predict(rows)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) / batch for name, t in times.items()}


def judge(predictors: dict[str, EnsemblePredictor], x_test: np.ndarray, y_test: np.ndarray,
          repeats: int = 50) -> list[JudgeRow]:
    """One row per predictor, in the dict's order (single, ensemble, student). `repeats`: timed
    calls at batch 1; batch 256 gets a fifth of them (at least 3)."""
    if len(x_test) != len(y_test) or len(x_test) == 0:
        raise ValueError(f"as many test labels as test rows (>= 1) must hold, but got {len(x_test)} rows "
                         f"and {len(y_test)} labels")
    predicts = {name: p.predict_proba for name, p in predictors.items()}
    latency = {b: latency_per_sample(predicts, x_test, b, repeats if b == 1 else max(3, repeats // 5))
               for b in LATENCY_BATCHES}
    rows = []
    for name, predictor in predictors.items():
        proba = predictor.predict_proba(x_test)
        scores = all_scores(y_test, proba)
        roc = scores.get("roc_auc")
        rows.append(JudgeRow(model=name, **{k: scores[k] for k in METRIC_COLUMNS},
                             roc_auc=None if roc is None or not np.isfinite(roc) else roc,
                             latency_ms_b1=1e3 * latency[1][name], latency_ms_b256=1e3 * latency[256][name],
                             n_members=len(predictor.models), n_test=len(y_test),
                             confusion=confusion(y_test, proba)))
    return rows


HEADER = ("model", *METRIC_COLUMNS, "ms/sample b1", "ms/sample b256", "members")


def _cells(r: JudgeRow) -> list[str]:
    return [r.model, *(f"{getattr(r, k):.4f}" for k in METRIC_COLUMNS), f"{r.latency_ms_b1:.3f}",
            f"{r.latency_ms_b256:.4f}", str(r.n_members)]


def rows_table(rows: list[JudgeRow], title: str = "held-out test split"):
    from rich.table import Table

    table = Table(title=title)
    for col in HEADER:
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(*_cells(r))
    return table


def print_rows(rows: list[JudgeRow], console=None) -> None:
    from rich.console import Console

    (console or Console()).print(rows_table(rows))


def markdown_table(rows: list[JudgeRow]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)
