"""hard_vote: each member votes for its most probable class, with its weight."""
from __future__ import annotations

import numpy as np

from trainers.ensemble.combiners._base import Combiner, normalised


class HardVote(Combiner):
    name = "hard_vote"
    uses_weights = True
    tasks = ("classification",)  # over classes: a number has none to vote for or rank

    def combine(self, member_probs, weights=None, state=None):
        """Vote shares. Tie rule (deterministic): among classes with the same vote share, the one with
        the higher mean member probability wins; if that ties too, the lower class index. The
        tie-break is applied as a nudge far below one vote, so the returned shares still sum to 1."""
        w = normalised(len(member_probs), weights)
        n_classes = member_probs.shape[2]
        votes = np.eye(n_classes)[member_probs.argmax(2)]  # (m, n, c) one-hot
        shares = np.einsum("m,mnc->nc", w, votes)
        tie_break = member_probs.mean(0) - np.arange(n_classes) * 1e-9
        nudge = 1e-6 * (tie_break - tie_break.mean(1, keepdims=True))
        winners = (shares + nudge).argmax(1)
        # shares are the answer; make argmax of the returned array equal the tie-broken winner
        out = shares.copy()
        out[np.arange(len(out)), winners] += 1e-9
        return out / out.sum(1, keepdims=True)
