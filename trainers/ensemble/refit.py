"""`members: refit`: one model per chosen trial, retrained with its own hyperparameters on the
whole training split (instead of its k fold models). In-process, or inside one Ray Train run
for all trials (one worker-group start, not one per trial: fixed start-up dominates small models).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from torch import nn

from trainers.checkpoint import load_model
from trainers.ensemble.select import TrialLike
from trainers.loop import MODEL_KEYS, FoldTrainer, TrainConfig, pick_device, split_params
from trainers.models import ModelConfig, build_model
from trainers.raytrain import run_on_ray_train, state_from_numpy, state_to_numpy


def trial_configs(params: dict, fixed: dict, fold_model_cfg: ModelConfig) -> tuple[ModelConfig, TrainConfig]:
    """The trial's (ModelConfig, TrainConfig): fixed spec values overlaid by the trial's own.

    Keys that are neither model shape nor TrainConfig fields (bookkeeping a searcher may add)
    are dropped rather than rejected: they never reached the trial's training either.
    """
    known = set(MODEL_KEYS) | set(TrainConfig.model_fields)
    merged = {k: v for k, v in {**fixed, **params}.items() if k in known}
    return split_params(merged, fold_model_cfg)


def refit_all(payload: dict) -> list[dict[str, np.ndarray]]:
    """The work itself, the same in-process and in a Ray Train worker: payload {"jobs": [{"model",
    "train"} as dicts], "x", "y", "seed"} -> one state_dict (as numpy arrays) per job."""
    device = pick_device()
    states = []
    for job in payload["jobs"]:
        train_cfg = TrainConfig.model_validate(job["train"])
        trainer = FoldTrainer(ModelConfig.model_validate(job["model"]), train_cfg, payload["x"], payload["y"],
                              seed=payload["seed"], device=device)
        for _ in range(train_cfg.epochs):
            trainer.train_epoch()
        states.append(state_to_numpy(trainer.model.state_dict()))
    return states


class Refitter:
    """Callable for build_ensemble: chosen trials -> [(model, ModelConfig)], one per trial."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, fixed: dict, seed: int,
                 ray_options: dict | None = None):
        # ray_options: None = in-process; else keyword arguments of run_on_ray_train (name, storage_path, ...)
        self.x, self.y, self.fixed, self.seed, self.ray_options = x_train, y_train, dict(fixed), seed, ray_options

    def __call__(self, trials: Sequence[TrialLike]) -> list[tuple[nn.Module, ModelConfig]]:
        configs = [trial_configs(t.params, self.fixed, _fold_config(t.fold_model_paths())) for t in trials]
        payload = {"jobs": [{"model": m.model_dump(mode="json"), "train": tr.model_dump(mode="json")}
                            for m, tr in configs],
                   "x": np.asarray(self.x, dtype=np.float32), "y": np.asarray(self.y, dtype=np.int64),
                   "seed": self.seed}
        if self.ray_options is None:
            states = refit_all(payload)
        else:
            states = run_on_ray_train(refit_all, payload, **self.ray_options)
        out = []
        for (model_cfg, _), state in zip(configs, states):
            model = build_model(model_cfg)
            model.load_state_dict(state_from_numpy(state))
            out.append((model.eval(), model_cfg))
        return out


def _fold_config(paths: Sequence[Path]) -> ModelConfig:
    """The trial's model config (with in_features, n_classes, image_shape) as its fold model saved it."""
    if not paths:
        raise ValueError("a trial with at least one fold model must hold, but got none")
    return load_model(paths[0])[1]
