"""What every way of combining members is to the rest of raysemble: (members, rows, outputs)
predictions in (class probabilities, or a regression target's one value: trainers.task), (rows, outputs) out, with per-member weights and a state fitted on out-of-fold
predictions where it needs them. The spec's ensemble.method names one (COMBINERS); the ensemble
builder, the predictor and serving use only this interface."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Sequence

import numpy as np


class Combiner(ABC):
    name: ClassVar[str]
    uses_weights: ClassVar[bool] = False  # the bundle keeps per-member weights for it
    # its weights are fitted on the out-of-fold predictions (greedy selection) even under top_k selection
    fits_weights: ClassVar[bool] = False
    # what greedy selection (with replacement: a weighted multiset) turns this combiner into; None: itself
    under_greedy: ClassVar[str | None] = None
    # it is a (weighted) mean of the members' outputs, the form greedy selection's multiset takes, so
    # greedy averaging and a stacking layer can be compared for it (ensemble.stacking: if_better)
    averages: ClassVar[bool] = False
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")  # the data's tasks it can combine for

    def fit(self, oof_blocks: Sequence[np.ndarray], y: np.ndarray, members_per_block: Sequence[int],
            task: str = "classification") -> dict | None:
        """State learnt from each chosen trial's out-of-fold predictions (None: nothing to learn)."""
        return None

    @abstractmethod
    def combine(self, member_probs: np.ndarray, weights=None, state: dict | None = None) -> np.ndarray:
        """(members, rows, outputs) -> (rows, outputs) predictions; a new array, the input untouched."""


def normalised(n_members: int, weights) -> np.ndarray:
    w = np.ones(n_members) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n_members,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"{n_members} non-negative weights with a positive sum expected, but got {w.tolist()}")
    return w / w.sum()
