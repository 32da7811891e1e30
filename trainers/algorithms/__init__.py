"""Search algorithms and their registry. A new algorithm is one module and one line below."""
from __future__ import annotations

from trainers.algorithms._base import SearchAlgorithm
from trainers.algorithms.bayesian import BayesianSearch
from trainers.algorithms.gp import GPSearch
from trainers.algorithms.grid import GridSearch
from trainers.algorithms.random import RandomSearch

ALGORITHMS: dict[str, SearchAlgorithm] = {a.name: a for a in (
    GridSearch(), RandomSearch(), BayesianSearch(), GPSearch(),
)}
DEFAULT_ALGORITHM = RandomSearch.name


def get_algorithm(name: str) -> SearchAlgorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"search.algorithm: one of {sorted(ALGORITHMS)} expected, but got {name!r}") from None


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "SearchAlgorithm", "get_algorithm"]
