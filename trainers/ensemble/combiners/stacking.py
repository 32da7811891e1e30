"""stacking: a scikit-learn logistic regression on the members' out-of-fold probabilities.

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
from sklearn.linear_model import LogisticRegression

from trainers.ensemble.combiners._base import Combiner


class Stacking(Combiner):
    name = "stacking"

    def fit(self, oof_blocks, y, members_per_block) -> dict:
        return fit_stacker(oof_blocks, y, members_per_block)

    def combine(self, member_probs, weights=None, state=None):
        if state is None:
            raise ValueError("method 'stacking' needs a fitted stacker, but got stacker=None")
        return stack(member_probs, state["coef"], state["intercept"])


def stack(member_probs: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """A fitted multinomial logistic regression over the concatenated member probabilities."""
    features = member_probs.transpose(1, 0, 2).reshape(member_probs.shape[1], -1)
    coef, intercept = np.asarray(coef), np.asarray(intercept)
    if coef.shape[1] != features.shape[1]:
        raise ValueError(f"stacker over {features.shape[1]} inputs expected, but got coef of shape {coef.shape}")
    logits = features @ coef.T + intercept
    if logits.shape[1] == 1:  # binary logistic regression keeps one column
        logits = np.concatenate([-logits, logits], 1) / 2
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def fit_stacker(oof_blocks: Sequence[np.ndarray], y: np.ndarray, members_per_block: Sequence[int],
                c: float = 1.0) -> dict:
    """Returns {"coef", "intercept"} over the concatenated member probabilities, member order =
    block order with each block's members consecutive (what stack expects)."""
    if len(oof_blocks) != len(members_per_block) or min(members_per_block, default=0) < 1:
        raise ValueError(f"one member count >= 1 per OOF block must hold, but got {len(oof_blocks)} blocks "
                         f"and counts {list(members_per_block)}")
    blocks = [np.asarray(b, dtype=np.float64) for b in oof_blocks]
    n_classes = blocks[0].shape[1]
    y = np.asarray(y)
    present = np.unique(y)
    if not np.array_equal(present, np.arange(n_classes)):
        raise ValueError(f"every class 0..{n_classes - 1} in the stacking rows must hold, but got classes "
                         f"{present.tolist()}")
    reg = LogisticRegression(C=c, max_iter=5000).fit(np.concatenate(blocks, 1), y)
    coef = np.asarray(reg.coef_)  # (classes, blocks*classes), or (1, ...) when binary
    spread = [np.tile(coef[:, b * n_classes:(b + 1) * n_classes] / m, (1, m))
              for b, m in enumerate(members_per_block)]
    return {"coef": np.concatenate(spread, 1), "intercept": np.asarray(reg.intercept_)}
