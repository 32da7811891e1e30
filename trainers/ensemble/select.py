"""Choosing ensemble members from finished trials: the top k, or Caruana's greedy selection.

Both work on what the sweep already computed (mean CV scores, out-of-fold probabilities), so
selection never needs rows outside the training split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, TypeVar

import numpy as np

from trainers.metrics import METRICS, score
from trainers.task import get_task, task_of_metric


class TrialLike(Protocol):
    """What the ensemble layer needs of a finished trial (service.store.TrialRecord has it)."""

    trial_id: str
    params: dict
    mean_score: float

    def fold_model_paths(self) -> list[Path]: ...

    def oof(self) -> np.ndarray: ...


T = TypeVar("T")


def top_k(trials: Sequence[T], k: int) -> list[T]:
    """The first k of `trials`, which come ranked best first (Sweep.ranked()); fewer if fewer exist."""
    if k < 1:
        raise ValueError(f"k >= 1 must hold, but got k={k}")
    if not trials:
        raise ValueError("at least one finished trial must hold, but got none")
    return list(trials[:k])


def _as_stack(oof_probs_list: Sequence[np.ndarray], y: np.ndarray) -> np.ndarray:
    if not len(oof_probs_list):
        raise ValueError("at least one candidate must hold, but got none")
    probs = np.stack([np.asarray(p, dtype=np.float64) for p in oof_probs_list])
    if probs.ndim != 3 or probs.shape[1] != len(y):
        raise ValueError(f"candidates of shape (rows={len(y)}, outputs) must hold, but got stacked shape "
                         f"{probs.shape}")
    return probs


def greedy_selection(oof_probs_list: Sequence[np.ndarray], y: np.ndarray, metric: str, rounds: int,
                     mode: str | None = None) -> np.ndarray:
    """Greedy ensemble selection with replacement (Caruana et al., ICML 2004).

    Start from an empty ensemble; each round adds (again, if it is already in) the candidate
    whose addition gives the best `metric` of the averaged out-of-fold probabilities. After
    `rounds` rounds, weight_i = times_chosen_i / rounds, so the ensemble is the plain average
    of the chosen multiset. Like auto-sklearn, all rounds are kept (no back-off to the best
    prefix): with replacement the late rounds mostly re-add good members, smoothing weights.

    Ties on `metric` go to the candidate whose addition gives the lower log loss (a regression target's:
    the lower RMSE), then to the lowest index (callers pass candidates ranked best first). Accuracy ties constantly on small data, and a
    tie kept going to the best single trial, so the ensemble stayed that one trial; the log loss
    prefers the member that fixes confident mistakes the argmax does not show yet. A metric that is
    undefined (NaN) counts as worst.
    Returns weights of shape (candidates,), summing to 1.
    """
    if rounds < 1:
        raise ValueError(f"rounds >= 1 must hold, but got rounds={rounds}")
    mode = mode or METRICS.get(metric)
    if mode not in ("min", "max"):
        raise ValueError(f"mode 'min' or 'max' must hold, but got {mode!r}")
    y = np.asarray(y)
    probs = _as_stack(oof_probs_list, y)
    sign = 1.0 if mode == "max" else -1.0
    tie_metric = get_task(task_of_metric(metric)).loss_metric
    counts = np.zeros(len(probs), dtype=np.int64)
    total = np.zeros(probs.shape[1:])
    for r in range(rounds):
        gains = np.nan_to_num(np.array([sign * score(metric, y, (total + cand) / (r + 1)) for cand in probs]),
                              nan=-np.inf)
        tied = np.flatnonzero(gains >= gains.max() - 1e-12)
        if len(tied) > 1 and metric != tie_metric:
            losses = [score(tie_metric, y, (total + probs[i]) / (r + 1)) for i in tied]
            best = int(tied[int(np.argmin(np.nan_to_num(losses, nan=np.inf)))])  # argmin: first of equals
        else:
            best = int(tied[0])
        counts[best] += 1
        total += probs[best]
    return counts / counts.sum()
