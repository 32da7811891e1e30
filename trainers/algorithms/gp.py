"""gp: Optuna's Gaussian-process sampler (a real GP over the trials so far)."""
from __future__ import annotations

from trainers.algorithms._optuna import OptunaAlgorithm


class GPSearch(OptunaAlgorithm):
    name = "gp"

    def sampler(self, seed: int):
        import optuna

        return optuna.samplers.GPSampler(seed=seed)
