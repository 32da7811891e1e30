"""stacking: a scikit-learn logistic regression on the members' out-of-fold probabilities (a regression
target: a ridge regression, its penalty chosen by RidgeCV's leave-one-out, on their predicted values).

Why one OOF block per trial, spread over that trial's members: a trial has one out-of-fold
prediction per training row (each row predicted by the one fold model that did not see it),
not one per fold model. Fitting on k identical copies of that block would only weaken the L2
penalty k-fold. So the regression is fitted on one block per trial, and at prediction time
each of the trial's k fold members gets coef/k on its own probabilities: the sum over the k
members is coef times their mean, i.e. the trial's bagged prediction takes the place of the
OOF prediction it was fitted on (what sklearn's StackingClassifier does with its refit base
models). With `members: refit` a trial has one member and gets its block unchanged.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from trainers.ensemble.combiners._base import Combiner


class Stacking(Combiner):
    name = "stacking"

    def fit(self, oof_blocks, y, members_per_block, task="classification") -> dict:
        if task == "regression":
            return fit_ridge_stacker(oof_blocks, y, members_per_block)
        return fit_stacker(oof_blocks, y, members_per_block)

    def combine(self, member_probs, weights=None, state=None):
        if state is None:
            raise ValueError("method 'stacking' needs a fitted stacker, but got stacker=None")
        if state.get("task") == "regression":
            return _linear(member_probs, state["coef"], state["intercept"])
        return stack(member_probs, state["coef"], state["intercept"])


def _linear(member_probs: np.ndarray, coef, intercept) -> np.ndarray:
    """features @ coef.T + intercept over the concatenated member outputs."""
    features = member_probs.transpose(1, 0, 2).reshape(member_probs.shape[1], -1)
    coef, intercept = np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64)
    if coef.ndim != 2 or coef.shape[1] != features.shape[1]:
        raise ValueError(f"stacker over {features.shape[1]} inputs expected, but got coef of shape {coef.shape}")
    return features @ coef.T + intercept


def stack(member_probs: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """A fitted multinomial logistic regression over the concatenated member probabilities."""
    logits = _linear(member_probs, coef, intercept)
    if logits.shape[1] == 1:  # binary logistic regression keeps one column
        logits = np.concatenate([-logits, logits], 1) / 2
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def _spread(coef: np.ndarray, width: int, members_per_block: Sequence[int]) -> np.ndarray:
    """A trial's coefficients over its block, split evenly over its members (see the module's note)."""
    return np.concatenate([np.tile(coef[:, b * width:(b + 1) * width] / m, (1, m))
                           for b, m in enumerate(members_per_block)], 1)


def _blocks(oof_blocks, members_per_block) -> list[np.ndarray]:
    if len(oof_blocks) != len(members_per_block) or min(members_per_block, default=0) < 1:
        raise ValueError(f"one member count >= 1 per OOF block must hold, but got {len(oof_blocks)} blocks "
                         f"and counts {list(members_per_block)}")
    return [np.asarray(b, dtype=np.float64) for b in oof_blocks]


def fit_ridge_stacker(oof_blocks: Sequence[np.ndarray], y: np.ndarray, members_per_block: Sequence[int]) -> dict:
    """A regression target's stacker: {"coef", "intercept", "task"}, member order as fit_stacker's."""
    from sklearn.linear_model import RidgeCV

    blocks = _blocks(oof_blocks, members_per_block)
    reg = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(np.concatenate(blocks, 1), np.asarray(y, dtype=np.float64))
    coef = np.asarray(reg.coef_, dtype=np.float64).reshape(1, -1)
    return {"coef": _spread(coef, 1, members_per_block), "intercept": np.atleast_1d(reg.intercept_),
            "task": "regression"}


def fit_stacker(oof_blocks: Sequence[np.ndarray], y: np.ndarray, members_per_block: Sequence[int],
                c: float = 1.0) -> dict:
    """Returns {"coef", "intercept"} over the concatenated member probabilities, member order =
    block order with each block's members consecutive (what stack expects)."""
    blocks = _blocks(oof_blocks, members_per_block)
    n_classes = blocks[0].shape[1]
    y = np.asarray(y)
    present = np.unique(y)
    if not np.array_equal(present, np.arange(n_classes)):
        raise ValueError(f"every class 0..{n_classes - 1} in the stacking rows must hold, but got classes "
                         f"{present.tolist()}")
    from sklearn.linear_model import LogisticRegression

    reg = LogisticRegression(C=c, max_iter=5000).fit(np.concatenate(blocks, 1), y)
    coef = np.asarray(reg.coef_)  # (classes, blocks*classes), or (1, ...) when binary
    return {"coef": _spread(coef, n_classes, members_per_block), "intercept": np.asarray(reg.intercept_)}
