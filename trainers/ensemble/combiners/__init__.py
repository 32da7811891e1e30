"""Ways to combine ensemble members, and their registry. A new combiner is one module and one line below."""
from __future__ import annotations

import numpy as np

from trainers.ensemble.combiners._base import Combiner
from trainers.ensemble.combiners.hard_vote import HardVote
from trainers.ensemble.combiners.rank_average import RankAverage
from trainers.ensemble.combiners.soft_vote import SoftVote
from trainers.ensemble.combiners.stacking import Stacking
from trainers.ensemble.combiners.weighted import Weighted

COMBINERS: dict[str, Combiner] = {c.name: c for c in (
    HardVote(), SoftVote(), Weighted(), Stacking(),
    RankAverage(),
)}
DEFAULT_COMBINER = SoftVote.name  # ensemble.method when a spec names none; a one-member bundle's (a student)


def get_combiner(name: str) -> Combiner:
    try:
        return COMBINERS[name]
    except KeyError:
        raise ValueError(f"method one of {list(COMBINERS)} expected, but got {name!r}") from None


def combine(method: str, member_probs: np.ndarray, weights=None, state: dict | None = None) -> np.ndarray:
    return get_combiner(method).combine(member_probs, weights, state)


__all__ = ["COMBINERS", "DEFAULT_COMBINER", "Combiner", "combine", "get_combiner"]
