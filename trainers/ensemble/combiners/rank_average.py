"""rank_average: a Borda count. Each member ranks the classes of a row by its probabilities (ties share
their average rank); the members' ranks are averaged (with weights) and scaled to sum to 1. Unlike a
soft vote, one member's overconfident probabilities cannot outvote the others: only its ordering
counts. The result orders classes, it is not calibrated: judge it by accuracy, not log loss."""
from __future__ import annotations

import numpy as np

from trainers.ensemble.combiners._base import Combiner, normalised


class RankAverage(Combiner):
    name = "rank_average"
    uses_weights = True
    tasks = ("classification",)  # over classes: a number has none to vote for or rank

    def combine(self, member_probs, weights=None, state=None):
        from scipy.stats import rankdata

        n_classes = member_probs.shape[2]
        ranks = rankdata(member_probs, method="average", axis=2) - 1.0  # 0 = the member's least likely class
        mean = np.einsum("m,mnc->nc", normalised(len(member_probs), weights), ranks)
        return mean / (n_classes * (n_classes - 1) / 2)
