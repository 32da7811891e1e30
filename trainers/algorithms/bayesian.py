"""bayesian: Optuna's TPE sampler (a tree-structured Parzen estimator over the trials so far)."""
from __future__ import annotations

from trainers.algorithms._optuna import OptunaAlgorithm


class BayesianSearch(OptunaAlgorithm):
    name = "bayesian"

    def sampler(self, seed: int):
        import optuna

        return optuna.samplers.TPESampler(seed=seed)
