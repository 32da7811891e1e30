"""Judgement on the held-out test rows: best single trial (and, when the sweep tried several model
families, the best trial of each) vs ensemble vs student, side by side."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel

from trainers.checkpoint import load_model
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.metrics import all_scores, confusion
from trainers.tables import Table, is_table

# the columns printed and logged per task, in order; confusion and bookkeeping are kept beside them
TASK_COLUMNS = {"classification": ("accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss"),
                "regression": ("rmse", "mae", "r2")}
METRIC_COLUMNS = TASK_COLUMNS["classification"]
LATENCY_BATCHES = (1, 256)
WARMUP_CALLS = 2  # untimed calls per predictor first: the first pays one-off allocations a server pays once
MIN_REPEATS = 3  # timed calls a predictor gets however long it takes
# untimed calls of a predictor right before each timed one at batch 1: a server answers request after
# request with the same model, its code and data in cache; timed straight after another predictor (an
# 8-member ensemble) a table student ran cold and read ~0.1 ms slower, 1.7x its warm time. A fixed cost:
# at batch 256 it is shared by the rows, and the forests' calls there are the judge's slowest
WARM_CALLS_BEFORE_EACH = 1
# seconds of repeats (timed calls and the untimed ones before them) per batch size, all predictors
# together: a 300-tree forest bagged over 5 folds answers one row in 0.1-0.5 s, and 50 repeats of every
# row of the table cost minutes of a run's budget
LATENCY_TIME_S = 10.0


class JudgeRow(BaseModel):
    model: str  # single | best_<family> | ensemble | student
    task: str = "classification"  # trainers.task: which metrics the row has
    accuracy: float | None = None
    precision_macro: float | None = None
    recall_macro: float | None = None
    f1_macro: float | None = None
    log_loss: float | None = None
    roc_auc: float | None = None
    rmse: float | None = None  # a regression target's
    mae: float | None = None
    r2: float | None = None
    latency_ms_b1: float  # in-process milliseconds per sample at batch 1 (median of repeats)
    latency_ms_b256: float  # the same at batch 256
    n_members: int
    n_test: int
    confusion: list[list[int]] | None = None  # classes only
    predicted: list[float] | None = None  # a regression target's predictions on the test rows (the plots')
    family: str | None = None  # the members' families, "+"-joined when they differ (logreg+mlp)
    trial_id: str | None = None  # the trial a single/best_<family> row is

    def columns(self) -> tuple[str, ...]:
        return TASK_COLUMNS[self.task]

    def metrics(self) -> dict[str, float]:
        """The numbers worth logging (no confusion matrix, no NaN)."""
        keys = (*self.columns(), "roc_auc", "latency_ms_b1", "latency_ms_b256")
        return {k: float(getattr(self, k)) for k in keys
                if getattr(self, k) is not None and np.isfinite(getattr(self, k))}


def trial_family(trial) -> str | None:
    """A trial's model family: params["family"] (every trial records it), else the family in the
    config of its first fold model (sweeps from before families); None for a trial with neither
    (one that failed before writing a fold model)."""
    family = trial.params.get("family")
    if family is None and trial.checkpoint_dir is not None:
        paths = [p for p in trial.fold_model_paths() if p.is_file()]
        family = load_model(paths[0])[1].family if paths else None
    return family


def judged_trials(ranked: Sequence) -> dict:
    """The single trials worth a row, by row name: "single" (the best finished trial) and, when the
    finished trials span two families or more, "best_<family>" for the best of each (a sweep of
    one family would get its "single" row twice). `ranked`: finished trials, best first."""
    if not ranked:
        raise ValueError("at least one finished trial must hold, but got none")
    best: dict[str, object] = {}
    for trial in ranked:
        best.setdefault(trial_family(trial), trial)
    rows = {"single": ranked[0]}
    if len(best) > 1:
        rows.update((f"best_{family}", trial) for family, trial in best.items())
    return rows


def trial_predictor(trial, classes: list | None = None) -> EnsemblePredictor:
    """A trial as its k fold models soft-voted, the way it was scored in the search."""
    return EnsemblePredictor.from_files(trial.fold_model_paths(), classes=classes, kind="single")


def latency_per_sample(predicts: dict[str, Callable[[np.ndarray], object]], x: np.ndarray, batch: int,
                       repeats: int, time_limit_s: float | None = None) -> dict[str, float]:
    """Median seconds per sample of each predict() on `batch` rows, over `repeats` timed calls each, or
    fewer (MIN_REPEATS at least) once the calls have taken `time_limit_s`.

    Rows are tiled when the test split is smaller than the batch (latency does not depend on
    which rows). Every predictor is warmed up first (first calls pay one-off allocations that a
    server pays once per process), then timed round-robin, one timed call each per repeat (at batch 1
    after WARM_CALLS_BEFORE_EACH untimed ones, as a busy server's would follow its own previous call), so
    load from other processes on a shared machine hits all of them alike.
    """
    rows = x[np.resize(np.arange(len(x)), batch)] if is_table(x) else \
        np.resize(np.asarray(x, dtype=np.float32), (batch, x.shape[1]))
    for predict in predicts.values():
        for _ in range(WARMUP_CALLS):
            predict(rows)
    times: dict[str, list[float]] = {name: [] for name in predicts}
    warm = WARM_CALLS_BEFORE_EACH if batch == 1 else 0
    began = time.perf_counter()
    for done in range(repeats):
        if done >= MIN_REPEATS and time_limit_s is not None and time.perf_counter() - began >= time_limit_s:
            break
        for name, predict in predicts.items():
            for _ in range(warm):
                predict(_as_request(rows))
            given = _as_request(rows)
            start = time.perf_counter()
            predict(given)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) / batch for name, t in times.items()}


def _as_request(rows):
    """A table's rows as a new request brings them: nothing read from them by an earlier call."""
    return Table(rows.frame, rows.schema) if is_table(rows) else rows


def judge(predictors: dict[str, EnsemblePredictor], x_test: np.ndarray, y_test: np.ndarray,
          repeats: int = 50, trials: dict | None = None,
          time_limit_s: float | None = LATENCY_TIME_S) -> list[JudgeRow]:
    """One row per predictor, in the dict's order (single, best_<family>..., ensemble, student).
    `repeats`: timed calls at batch 1; batch 256 gets a fifth of them (at least 3); either stops early
    once its repeats took `time_limit_s` (latency_per_sample). `trials`: row
    name -> the trial that row is (judged_trials()), for its trial_id."""
    if len(x_test) != len(y_test) or len(x_test) == 0:
        raise ValueError(f"as many test labels as test rows (>= 1) must hold, but got {len(x_test)} rows "
                         f"and {len(y_test)} labels")
    predicts = {name: p.predict_proba for name, p in predictors.items()}
    latency = {b: latency_per_sample(predicts, x_test, b, repeats if b == 1 else max(3, repeats // 5), time_limit_s)
               for b in LATENCY_BATCHES}
    rows = []
    for name, predictor in predictors.items():
        proba = predictor.predict_proba(x_test)
        task = predictor.task.name
        scores = all_scores(y_test, proba, task)
        roc = scores.get("roc_auc")
        if task == "regression":
            fields = {**scores, "predicted": proba[:, 0].tolist()}
        else:
            fields = {**{k: scores[k] for k in TASK_COLUMNS[task]}, "confusion": confusion(y_test, proba),
                      "roc_auc": None if roc is None or not np.isfinite(roc) else roc}
        rows.append(JudgeRow(model=name, task=task, **fields,
                             latency_ms_b1=1e3 * latency[1][name], latency_ms_b256=1e3 * latency[256][name],
                             n_members=len(predictor.models), n_test=len(y_test),
                             family="+".join(sorted({c.family for c in predictor.configs})),
                             trial_id=getattr((trials or {}).get(name), "trial_id", None)))
    return rows


def header(rows: list[JudgeRow]) -> tuple[str, ...]:
    columns = rows[0].columns() if rows else METRIC_COLUMNS
    return ("model", "family", "trial", *columns, "ms/sample b1", "ms/sample b256", "members")


def _cells(r: JudgeRow) -> list[str]:
    return [r.model, r.family or "", r.trial_id or "", *(f"{getattr(r, k):.4f}" for k in r.columns()),
            f"{r.latency_ms_b1:.3f}", f"{r.latency_ms_b256:.4f}", str(r.n_members)]


def rows_table(rows: list[JudgeRow], title: str = "held-out test split"):
    from rich.table import Table

    table = Table(title=title)
    for col in header(rows):
        table.add_column(col, justify="left" if col in ("model", "family", "trial") else "right")
    for r in rows:
        table.add_row(*_cells(r))
    return table


def print_rows(rows: list[JudgeRow], console=None) -> None:
    from rich.console import Console

    (console or Console()).print(rows_table(rows))


def markdown_table(rows: list[JudgeRow]) -> str:
    head = header(rows)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)
