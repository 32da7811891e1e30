"""weighted: the members' probabilities averaged with weights fitted on out-of-fold predictions
(greedy selection's pick counts, under either selection)."""
from __future__ import annotations

from trainers.ensemble.combiners._base import Combiner
from trainers.ensemble.combiners.soft_vote import average


class Weighted(Combiner):
    name = "weighted"
    uses_weights = True
    fits_weights = True
    averages = True

    def combine(self, member_probs, weights=None, state=None):
        return average(member_probs, weights)
