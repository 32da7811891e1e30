"""grid: every combination of the space's grid and choice dimensions, exactly once (each searched
family's own combinations: a branch per family, not their product)."""
from __future__ import annotations

from trainers.algorithms._base import SearchAlgorithm, _family, branches, grid_axes
from trainers.space import Grid


class GridSearch(SearchAlgorithm):
    name = "grid"
    trials_field = "search.space"

    def check(self, search) -> None:
        others = [k for k, d in search.space.items() if not isinstance(d, Grid) and not hasattr(d, "choice")]
        if others:
            raise ValueError(f"algorithm grid needs grid or choice dimensions only, but got {others}")

    def trial_count(self, search) -> int:
        family = _family(search)
        if family is None:
            return grid_axes(search, search.space, choices_too=True)
        from trainers.families.scope import FAMILY_KEY, receivers

        names = [str(v) for v in dict.fromkeys(family.endpoints())]
        # each family's branch is its own grid: the axes that reach it, no others
        return sum(grid_axes(search, [k for k in search.space if k != FAMILY_KEY and f in receivers(k, names)],
                             choices_too=True) for f in names)

    def num_samples(self, search) -> int:
        return 1

    def param_space(self, search) -> dict:
        from ray import tune

        from trainers.families.scope import BRANCH_KEY

        if _family(search) is not None:
            return {BRANCH_KEY: tune.grid_search(branches(search, grid=True)), **search.fixed}
        # choices become grid axes too: "grid" means every combination exactly once
        space = {k: d.to_tune() if isinstance(d, Grid) else tune.grid_search(d.choice) for k, d in search.space.items()}
        return {**space, **search.fixed}

    def searcher(self, search):
        return None
