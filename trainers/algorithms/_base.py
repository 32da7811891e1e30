"""What every search algorithm is to the rest of raysemble: which spaces it takes, how many trials a
space gives, and the Tune param_space and searcher that run it. The spec's search.algorithm names one
(trainers.algorithms.ALGORITHMS); trainers.search and the spec checks use only this interface."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from trainers.space import Grid


class SearchAlgorithm(ABC):
    name: ClassVar[str]
    # the spec field that decides how many trials run (what a budget's refusal names)
    trials_field: ClassVar[str] = "search.num_trials"
    takes_start_points: ClassVar[bool] = False  # search.start_with: given first trials, then its own

    def check(self, search) -> None:
        """ValueError naming what does not suit this algorithm in search.space (run by the schema)."""

    def family_problem(self, search) -> str | None:
        """Why this algorithm cannot search the space's `family` dimension as given, or None."""
        return None

    def trial_count(self, search) -> int:
        """Trials Tune will run: num_trials samples of each combination of the grid axes."""
        return search.num_trials if _family(search) is not None else search.num_trials * grid_axes(search, search.space)

    def num_samples(self, search) -> int:
        return search.num_trials

    @abstractmethod
    def param_space(self, search) -> dict:
        """Tune's param_space: the space's domains (those a searcher does not hold) plus search.fixed."""

    @abstractmethod
    def searcher(self, search) -> Any:
        """Tune's search_alg (None: Tune's own variant generator over param_space)."""


def _family(search):
    from trainers.families.scope import FAMILY_KEY

    return search.space.get(FAMILY_KEY)


def distinct_configs(search) -> int | None:
    """How many different configurations the space holds (None: unbounded, a continuous dimension
    reaches some family). Several families: the sum over families of the combinations of the
    dimensions that reach each."""
    from trainers.families.scope import FAMILY_KEY, receivers

    family = _family(search)
    if family is None:
        return _product(d.size() for d in search.space.values())
    families = list(dict.fromkeys(str(v) for v in family.endpoints()))
    counts = [_product(d.size() for k, d in search.space.items() if k != FAMILY_KEY and f in receivers(k, families))
              for f in families]
    return None if None in counts else sum(counts)


def _product(sizes) -> int | None:
    sizes = list(sizes)
    return None if None in sizes else math.prod(sizes)


def grid_axes(search, keys, choices_too: bool = False) -> int:
    """Combinations of the grid dimensions among `keys` (and of the choices, with choices_too)."""
    return math.prod(len(d.grid) if isinstance(d, Grid) else len(d.choice) for k, d in search.space.items()
                     if k in keys and (isinstance(d, Grid) or (choices_too and hasattr(d, "choice"))))


def branches(search, grid: bool) -> list[dict]:
    """One mapping per searched family: its name and the dimensions that reach it (grid: choices too
    become grid axes)."""
    from ray import tune

    from trainers.families.scope import FAMILY_KEY, receivers

    families = [str(v) for v in search.space[FAMILY_KEY].endpoints()]
    out = []
    for family in dict.fromkeys(families):
        branch = {FAMILY_KEY: family}
        for key, dim in search.space.items():
            if key != FAMILY_KEY and family in receivers(key, families):
                branch[key] = tune.grid_search(dim.choice) if grid and not isinstance(dim, Grid) else dim.to_tune()
        out.append(branch)
    return out


def tune_domains(search) -> dict:
    return {key: dim.to_tune() for key, dim in search.space.items()}
