"""ensemble.stacking / ensemble.single: if_better. Greedy selection, a stacking layer or the best single
trial, whichever scores best on rows that none of them was fitted on.

All are chosen on the same out-of-fold predictions, so comparing their scores on those rows would favour the
most flexible: with more coefficients than greedy's pick counts a stacker fits the rows' noise better
(stacked overfitting), and greedy selection, which starts from the best single trial and adds a member only
when the OOF score rises, can never score below it there. So the comparison is itself cross-validated inside
the training split: the OOF rows are cut into folds; on each, greedy selection and the stacker are fitted and
the best single candidate picked on the other folds, and each predicts the held-out fold; the concatenated
held-out predictions are scored with the search's metric. Greedy selection stays unless a contender scores
strictly better: on a tie the ensemble the spec asked for stays.
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
GREEDY, SINGLE = "greedy", "single"


@dataclass
class GuardReport:
    kept: str  # GREEDY, Stacking.name or SINGLE
    metric: str
    greedy_score: float | None  # held-out, cross-validated within the OOF rows
    stacking_score: float | None  # None: stacking was not a contender (or could not be fitted)
    why: str
    single_score: float | None = None  # None: the best single trial was not a contender


def _sign(mode: str) -> float:
    """Scores times this: larger is better."""
    return 1.0 if mode == "max" else -1.0


def _fold_predictions(blocks: list[np.ndarray], y: np.ndarray, fit: np.ndarray, val: np.ndarray, metric: str,
                      mode: str, rounds: int, task: str, contenders: Sequence[str]) -> dict[str, np.ndarray]:
    """Each contender fitted (or picked) on rows `fit`, predicting rows `val`."""
    out = {}
    for name in contenders:
        if name == GREEDY:
            weights = greedy_selection([b[fit] for b in blocks], y[fit], metric, rounds, mode)
            out[name] = average(np.stack([b[val] for b in blocks]), weights)
        elif name == SINGLE:
            best = int(np.argmax([_sign(mode) * score(metric, y[fit], b[fit]) for b in blocks]))  # first of equals
            out[name] = blocks[best][val]
        else:
            state = Stacking().fit([b[fit] for b in blocks], y[fit], [1] * len(blocks), task)
            out[name] = Stacking().combine(np.stack([b[val] for b in blocks]), None, state)
    return out


def held_out_choice(oof_blocks: Sequence[np.ndarray], y: np.ndarray, metric: str, mode: str, rounds: int,
                    task: str = "classification", *, stacking: bool = True, single: bool = False,
                    folds: int = GUARD_FOLDS) -> GuardReport:
    """oof_blocks: each candidate trial's (rows, outputs) OOF predictions, ranked best first; y: the rows'
    targets (class indices, or numbers). Greedy selection runs `rounds` rounds, as the ensemble's does;
    `stacking`, `single`: whether a stacking layer, the best single candidate, contend with it."""
    blocks = [np.asarray(b, dtype=np.float64) for b in oof_blocks]
    y = np.asarray(y)
    if task == "classification":
        folds = min(folds, int(np.bincount(y.astype(np.int64)).min()))
    if folds < 2 or len(blocks) < 2:
        why = (f"a comparison needs >= 2 candidates and >= 2 rows of every class, but got {len(blocks)} "
               f"candidates and {folds} rows of the rarest class")
        return GuardReport(GREEDY, metric, None, None, why)
    contenders = [GREEDY, *([Stacking.name] if stacking else []), *([SINGLE] if single else [])]
    preds = {name: np.zeros_like(blocks[0]) for name in contenders}
    every = np.arange(len(y))
    for val in make_folds(y, folds, True, GUARD_SEED, task):
        try:
            fold = _fold_predictions(blocks, y, np.setdiff1d(every, val), val, metric, mode, rounds, task, contenders)
        except ValueError as e:  # e.g. a class missing from the stacker's fitting rows
            return GuardReport(GREEDY, metric, None, None, f"a contender could not be fitted: {e}")
        for name, pred in fold.items():
            preds[name][val] = pred
    scores = {name: score(metric, y, pred) for name, pred in preds.items()}
    kept = max(contenders, key=lambda name: (_sign(mode) * scores[name], name == GREEDY))  # a tie keeps greedy
    listed = ", ".join(f"{name} {scores[name]:.5g}" for name in contenders)
    why = (f"held-out {metric} over {folds} folds of the OOF rows: {listed} "
           f"({'max' if mode == 'max' else 'min'} wins; a tie keeps greedy)")
    return GuardReport(kept, metric, scores[GREEDY], scores.get(Stacking.name), why, scores.get(SINGLE))


def as_info(report: GuardReport) -> dict:
    return asdict(report)
