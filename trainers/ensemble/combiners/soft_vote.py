"""soft_vote: the mean of the members' probabilities."""
from __future__ import annotations

import numpy as np

from trainers.ensemble.combiners._base import Combiner, normalised


def average(member_probs: np.ndarray, weights=None) -> np.ndarray:
    """(Weighted) mean of member probabilities; one member unweighted is a copy."""
    if len(member_probs) == 1 and weights is None:  # a student: a copy, not a weighted sum of one
        return member_probs[0].copy()
    return np.einsum("m,mnc->nc", normalised(len(member_probs), weights), member_probs)


class SoftVote(Combiner):
    name = "soft_vote"
    # greedy selection with replacement defines the ensemble as the average of a multiset, so its soft
    # vote is the count-weighted mean: stored as `weighted` so the counts are not dropped
    under_greedy = "weighted"
    averages = True

    def combine(self, member_probs, weights=None, state=None):
        return average(member_probs)
