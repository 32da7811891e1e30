"""random: independent samples of the space; grid dimensions are crossed with num_trials samples each."""
from __future__ import annotations

from trainers.algorithms._base import SearchAlgorithm, _family, branches, tune_domains
from trainers.space import Grid


class RandomSearch(SearchAlgorithm):
    name = "random"

    def family_problem(self, search) -> str | None:
        if any(isinstance(d, Grid) for d in search.space.values()):
            return f"grid dimensions with a searched family need algorithm grid, but got algorithm {self.name!r}"
        return None

    def param_space(self, search) -> dict:
        from ray import tune

        from trainers.families.scope import BRANCH_KEY

        if _family(search) is not None:
            return {BRANCH_KEY: tune.choice(branches(search, grid=False)), **search.fixed}
        return {**tune_domains(search), **search.fixed}

    def searcher(self, search):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # Tune ignores max_concurrent_trials for a generator instance: the generator limits itself
        return BasicVariantGenerator(random_state=search.seed, max_concurrent=search.max_concurrent)
