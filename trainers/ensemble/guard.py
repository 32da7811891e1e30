"""ensemble.stacking: if_better. Greedy selection or a stacking layer, whichever scores better on rows
that neither was fitted on.

Both are fitted on the same out-of-fold predictions, so comparing their scores on those rows would favour
the stacker: with more coefficients than greedy's pick counts it fits the rows' noise better (stacked
overfitting). So the comparison is itself cross-validated inside the training split: the OOF rows are
cut into folds; on each, greedy selection and the stacker are fitted on the other folds and both predict
the held-out fold; the concatenated held-out predictions are scored with the search's metric. Stacking is
kept only when it scores strictly better: on a tie the simpler ensemble stays.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from trainers.ensemble.combiners.soft_vote import average
from trainers.ensemble.combiners.stacking import Stacking
from trainers.ensemble.select import greedy_selection
from trainers.kfold import make_folds
from trainers.metrics import score

GUARD_FOLDS = 5  # folds of the comparison; fewer when the smallest class has fewer rows
GUARD_SEED = 0  # the comparison's fold assignment: fixed, so a rebuilt ensemble makes the same choice


@dataclass
class GuardReport:
    kept: str  # "greedy" or Stacking.name
    metric: str
    greedy_score: float | None  # held-out, cross-validated within the OOF rows
    stacking_score: float | None
    why: str


def stacking_beats_greedy(oof_blocks: Sequence[np.ndarray], y: np.ndarray, metric: str, mode: str, rounds: int,
                          task: str = "classification", folds: int = GUARD_FOLDS) -> GuardReport:
    """oof_blocks: each candidate trial's (rows, outputs) OOF predictions, ranked best first; y: the rows'
    targets (class indices, or numbers). Greedy selection runs `rounds` rounds, as the ensemble's does."""
    blocks = [np.asarray(b, dtype=np.float64) for b in oof_blocks]
    y = np.asarray(y)
    if task == "classification":
        folds = min(folds, int(np.bincount(y.astype(np.int64)).min()))
    if folds < 2 or len(blocks) < 2:
        why = (f"stacking needs >= 2 candidates and >= 2 rows of every class, but got {len(blocks)} "
               f"candidates and {folds} rows of the rarest class")
        return GuardReport("greedy", metric, None, None, why)
    greedy_pred = np.zeros_like(blocks[0])
    stack_pred = np.zeros_like(blocks[0])
    every = np.arange(len(y))
    for val in make_folds(y, folds, True, GUARD_SEED, task):
        fit = np.setdiff1d(every, val)
        weights = greedy_selection([b[fit] for b in blocks], y[fit], metric, rounds, mode)
        greedy_pred[val] = average(np.stack([b[val] for b in blocks]), weights)
        try:
            state = Stacking().fit([b[fit] for b in blocks], y[fit], [1] * len(blocks), task)
        except ValueError as e:  # e.g. a class missing from the fitting rows
            return GuardReport("greedy", metric, None, None, f"the stacker could not be fitted: {e}")
        stack_pred[val] = Stacking().combine(np.stack([b[val] for b in blocks]), None, state)
    greedy_score, stack_score = score(metric, y, greedy_pred), score(metric, y, stack_pred)
    sign = 1.0 if mode == "max" else -1.0
    better = sign * (stack_score - greedy_score) > 0
    why = (f"held-out {metric} over {folds} folds of the OOF rows: stacking {stack_score:.5g} vs greedy "
           f"{greedy_score:.5g} ({'max' if mode == 'max' else 'min'} wins; a tie keeps greedy)")
    return GuardReport(Stacking.name if better else "greedy", metric, greedy_score, stack_score, why)


def as_info(report: GuardReport) -> dict:
    return asdict(report)
