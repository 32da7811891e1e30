"""What the Optuna-backed algorithms share: Ray Tune's OptunaSearch over the space, a define-by-run
(conditional) space when several families are searched, and no grid dimensions."""
from __future__ import annotations

from abc import abstractmethod

from trainers.algorithms._base import SearchAlgorithm, _family, distinct_configs, tune_domains
from trainers.space import Grid


class DefineByRun:
    """Optuna's define-by-run space for a sweep over several families: the family first, then only
    the dimensions that reach it (a conditional space: TPE and GP model each branch's own keys).
    A class, not a closure: Tune pickles the searcher into its experiment state."""

    def __init__(self, search):
        from trainers.families.scope import FAMILY_KEY

        self.search = search
        self.families = list(dict.fromkeys(str(v) for v in search.space[FAMILY_KEY].endpoints()))

    def __call__(self, trial) -> dict:
        from trainers.families.scope import FAMILY_KEY, receivers

        family = trial.suggest_categorical(FAMILY_KEY, self.families)
        for key, dim in self.search.space.items():
            if key != FAMILY_KEY and family in receivers(key, self.families):
                dim.suggest(trial, key)
        return dict(self.search.fixed)


class OptunaAlgorithm(SearchAlgorithm):
    takes_start_points = True  # Optuna enqueues them (Tune's points_to_evaluate), then samples on from them
    def check(self, search) -> None:
        grids = [k for k, d in search.space.items() if isinstance(d, Grid)]
        if grids:
            raise ValueError(f"grid dimensions need algorithm grid or random, but got algorithm={self.name!r} "
                             f"with grid for {grids}")

    @abstractmethod
    def sampler(self, seed: int):
        """The Optuna sampler."""

    def trial_count(self, search) -> int:
        """num_trials, or fewer where the space holds fewer configurations: none is trained twice
        (trainers.algorithms._distinct)."""
        distinct = distinct_configs(search)
        return search.num_trials if distinct is None else min(search.num_trials, distinct)

    def num_samples(self, search) -> int:
        return self.trial_count(search)

    def param_space(self, search) -> dict:
        if _family(search) is not None:
            return dict(search.fixed)  # the searcher holds the space (define-by-run)
        return {**tune_domains(search), **search.fixed}

    def searcher(self, search):
        from ray.tune.search.optuna import OptunaSearch

        from trainers.algorithms._distinct import Distinct

        points = [dict(p) for p in search.start_with] or None
        if _family(search) is not None:
            inner = OptunaSearch(space=DefineByRun(search), metric=search.metric, mode=search.mode,
                                 sampler=self.sampler(search.seed), points_to_evaluate=points)
        else:
            inner = OptunaSearch(sampler=self.sampler(search.seed), points_to_evaluate=points)
        return Distinct(inner, limit=distinct_configs(search))
