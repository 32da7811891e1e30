"""Train the k folds of one trial in lockstep, on one process or spread over Ray Train workers.

A checkpoint directory holds, per fold k: fold_k.pt (model + config), fold_k.state.pt (optimiser,
schedule and data-order state, to continue exactly), oof_k.npy / val_idx_k.npy (out-of-fold
probabilities and their row positions in the training split) and curves_k.json.
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold

from trainers.checkpoint import load_model, save_model
from trainers.families import Fit, get_family, start_fit
from trainers.loop import pick_device
from trainers.train_config import split_params
from trainers.metrics import score
from trainers.task import get_task
from trainers.families.config import ModelConfig

if TYPE_CHECKING:
    from trainers.stream import StreamPlan
    from trainers.tables import Table


def make_folds(y: np.ndarray, folds: int, stratified: bool, seed: int,
               task: str = "classification", repeats: int = 1) -> list[np.ndarray]:
    """Validation positions of each fold, from scikit-learn's splitters; stratified on the classes, or
    on a regression target's quantile bins (trainers.task.Regression.strata). With repeats, the k folds of
    each repeat follow the previous repeat's (scikit-learn's Repeated(Stratified)KFold); the first repeat's
    are the plain k-fold's, so adding repeats keeps the folds a sweep already has."""
    strata = get_task(task).strata(y, folds)
    if repeats == 1:
        splitter = (StratifiedKFold if stratified else KFold)(n_splits=folds, shuffle=True, random_state=seed)
        return [val for _, val in splitter.split(np.zeros(len(y)), strata)]
    return [val for r in range(repeats) for val in make_folds(y, folds, stratified, (seed + r) % 2**32, task)]


@dataclass
class TrialData:
    """What every trial of a sweep shares: the training split only, never the held-out rows."""

    x: "np.ndarray | Table"  # a matrix, or a table's rows (each fold fits its own encoding: trainers.tables)
    y: np.ndarray
    folds: list[np.ndarray]
    base_model: dict  # ModelConfig fields fixed by the spec and the data
    metric: str
    seed: int = 0
    # a checkpoint every this many epochs, at every epoch listed (ASHA's rungs: a stopped trial's
    # last checkpoint is then its last result) and at the last epoch
    checkpoint_every: int = 1
    checkpoint_epochs: tuple[int, ...] = ()
    # set when the rows stream through Ray Data (x is then None: no trial holds a copy)
    stream: "StreamPlan | None" = None
    # the search's deadline (time.time(); SearchConfig.deadlines): trials do not start after it, and every
    # round after it checkpoints, so the round the budget stops a trial at is the one it keeps
    deadline: float | None = None
    patience: int | None = None  # SearchConfig.patience: rounds without a better mean val_loss before a trial ends

    def checkpoints_at(self, epoch: int, last: int) -> bool:
        return (epoch % self.checkpoint_every == 0 or epoch in self.checkpoint_epochs or epoch == last
                or self.past_deadline())

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def fold_seed(self, k: int, params: dict) -> int:
        """Seed of fold k of the trial with these hyperparameters (see derived_seed)."""
        return derived_seed(self.seed, params, k)


def derived_seed(seed: int, params: dict, *salt) -> int:
    """The sweep's cv.seed, a trial's hyperparameters and a salt (the fold) hashed into one seed
    below 2**31 (numpy's and scikit-learn's range). Deterministic: a resumed trial, a rerun sweep and
    a refit draw the same. Different between trials: with the sweep's one seed for all of them, fold
    k of every trial started from the same weights and saw its batches in the same order, so trials
    erred alike and ensembles of them gained little over the best one."""
    text = json.dumps([seed, params, *salt], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFF_FFFF


def _restore(fit: Fit, directory: Path, k: int, device) -> list[dict]:
    model = load_model(directory / f"fold_{k}.pt", map_location=device)[0]
    fit.restore(model, torch.load(directory / f"fold_{k}.state.pt", map_location=device, weights_only=True))
    curves = json.loads((directory / f"curves_{k}.json").read_text())
    return [dict(zip(curves, row)) for row in zip(*curves.values())]


def _write_fold(directory: Path, k: int, fit: Fit, proba: np.ndarray, val_idx: np.ndarray, curve: list[dict],
                params: dict) -> None:
    save_model(directory / f"fold_{k}.pt", fit.model, fit.model_cfg, extra={"params": params, "fold": k})
    torch.save(fit.state(), directory / f"fold_{k}.state.pt")
    np.save(directory / f"oof_{k}.npy", proba)
    np.save(directory / f"val_idx_{k}.npy", val_idx)
    (directory / f"curves_{k}.json").write_text(json.dumps({key: [r[key] for r in curve] for key in curve[0]}))


Reporter = Callable[[dict, "Path | None"], None]
Gather = Callable[[dict], dict]


def train_folds(data: TrialData, params: dict, fold_ids: list[int], report: Reporter,
                gather: Gather = lambda d: d, resume_from: Path | None = None,
                device: torch.device | None = None, data_parallel: tuple[int, int] | None = None) -> dict:
    """Advance the given folds one epoch at a time; after each epoch call
    `report(metrics, checkpoint_dir or None)` with the mean over all folds (`gather` merges
    per-fold results across workers). Returns the last metrics."""
    device = device or pick_device()
    n_classes = int(data.base_model["n_classes"])
    model_cfg, fit_cfg = split_params(params, ModelConfig.model_validate(data.base_model))
    family, loss_metric = get_family(model_cfg.family), get_task(model_cfg.task).loss_metric
    trainers, curves = {}, {}
    for k in fold_ids:
        val = data.folds[k]
        train = np.setdiff1d(np.arange(len(data.y)), val)
        trainers[k] = start_fit(model_cfg, fit_cfg, data.x[train], data.y[train], data.fold_seed(k, params), device,
                                data_parallel)
        curves[k] = _restore(trainers[k], resume_from, k, device) if resume_from else []
    start = min((t.done for t in trainers.values()), default=0)
    rounds = family.fit_rounds(fit_cfg)
    metrics: dict = {}
    # a resumed trial counts afresh: a Train worker's curves hold its own folds only, and every worker must
    # end at the same round
    stop = Patience(data.patience)
    for epoch in range(start, rounds):
        local = {}
        for k, trainer in trainers.items():
            loss = trainer.advance()
            proba = trainer.predict_proba(data.x[data.folds[k]])
            y_val = data.y[data.folds[k]]
            row = {"epoch": epoch + 1, "train_loss": loss, "val_loss": score(loss_metric, y_val, proba),
                   f"val_{data.metric}": score(data.metric, y_val, proba)}
            curves[k].append(row)
            local[k] = (row, proba)
        merged = gather({k: row for k, (row, _) in local.items()})
        metrics = {
            data.metric: float(np.mean([r[f"val_{data.metric}"] for r in merged.values()])),
            "val_loss": float(np.mean([r["val_loss"] for r in merged.values()])),
            "train_loss": float(np.mean([r["train_loss"] for r in merged.values()])),
            "epoch": epoch + 1,
            "fold_scores": [merged[k][f"val_{data.metric}"] for k in sorted(merged)],
            "n_classes": n_classes,
        }
        ended = stop.ends_after(metrics["val_loss"]) and epoch + 1 < rounds
        if ended:
            metrics["stopped_early"] = True  # what the trial keeps is this round: the last it reports
        if not (ended or data.checkpoints_at(epoch + 1, rounds)):
            report(metrics, None)
            continue
        with tempfile.TemporaryDirectory(prefix="raysemble-ckpt-") as tmp:
            for k, (row, proba) in local.items():
                _write_fold(Path(tmp), k, trainers[k], proba, data.folds[k], curves[k], params)
            report(metrics, Path(tmp))
        if ended:
            break
    return metrics


class Patience:
    """Early stopping on the folds' mean validation loss: ends_after(loss) is True once `patience` rounds
    in a row brought no loss below the best so far (None: never)."""

    def __init__(self, patience: int | None):
        self.patience, self.best, self.stale = patience, math.inf, 0

    def ends_after(self, loss: float) -> bool:
        if loss < self.best:
            self.best, self.stale = loss, 0
        else:
            self.stale += 1
        return self.patience is not None and self.stale >= self.patience
