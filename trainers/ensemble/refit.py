"""`members: refit`: one model per chosen trial, retrained with its own hyperparameters on the
whole training split (instead of its k fold models). In-process, or inside one Ray Train run
for all trials (one worker-group start, not one per trial: fixed start-up dominates small models).

Under a time budget the refits stop at a deadline: a trial whose refit has not finished by then keeps
its fold models, which the sweep already trained and whose out-of-fold predictions selection judged.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
from trainers.checkpoint import load_model
from trainers.ensemble.select import TrialLike
from trainers.families import get_family, start_fit
from trainers.families.scope import effective_params
from trainers.kfold import derived_seed
from trainers.loop import pick_device
from trainers.train_config import split_params
from trainers.families.config import ModelConfig
from trainers.raytrain import run_on_ray, state_from_numpy, state_to_numpy
from trainers.tables import is_table


def trial_configs(params: dict, fixed: dict, fold_model_cfg: ModelConfig):
    """The trial's (ModelConfig, fit settings): fixed spec values overlaid by the trial's own.

    Keys the trial's family does not take (bookkeeping a searcher may add) are dropped rather
    than rejected: they never reached the trial's training either.
    """
    flat = effective_params({**fixed, **params}, fold_model_cfg.family)
    family = get_family(flat["family"])
    merged = {k: v for k, v in flat.items() if k == "family" or family.accepts(k)}
    return split_params(merged, fold_model_cfg)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def refit_all(payload: dict) -> list[dict | None]:
    """The work itself, the same in-process and in a Ray Train worker: payload {"jobs": [{"model",
    "params", "seed", "rounds" (None: all)}], "x", "y", "deadline" (time.time() value or None)} -> per job
    {"dump": Family.dump (tensors as numpy arrays), "config": the ModelConfig that rebuilds it (a table's
    encoding fitted on these rows included)}, or None where the deadline came first (checked between rounds)."""
    device = pick_device()
    return [_refit_one(job, payload, device) for job in payload["jobs"]]


def _refit_one(job: dict, payload: dict, device) -> dict | None:
    deadline = payload.get("deadline")
    if _past(deadline):
        return None
    model_cfg = ModelConfig.model_validate(job["model"])
    model_cfg, fit_cfg = split_params(job["params"], model_cfg)
    family = get_family(model_cfg.family)
    fit = start_fit(model_cfg, fit_cfg, payload["x"], payload["y"], seed=job["seed"], device=device)
    rounds = family.fit_rounds(fit_cfg)
    for _ in range(min(rounds, job.get("rounds") or rounds)):
        if _past(deadline):
            return None  # fewer rounds than the model its out-of-fold score describes: not that model
        fit.advance()
    dump = family.dump(fit.model)
    if "state_dict" in dump:
        dump["state_dict"] = state_to_numpy(dump["state_dict"])
    return {"dump": dump, "config": fit.model_cfg.model_dump(mode="json")}


class Refitter:
    """Callable for build_ensemble: chosen trials -> [(model, ModelConfig) or None], one per trial; None
    where `deadline` (a time.time() value) came before that trial's refit finished."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, fixed: dict, seed: int,
                 ray_options: dict | None = None, deadline: float | None = None):
        # ray_options: None = in-process; else keyword arguments of run_on_ray (name, ray_train, ...)
        self.x, self.y, self.fixed, self.seed, self.ray_options = x_train, y_train, dict(fixed), seed, ray_options
        self.deadline = deadline

    def __call__(self, trials: Sequence[TrialLike]) -> list[tuple[object, ModelConfig] | None]:
        if _past(self.deadline):
            return [None] * len(trials)  # not even a Ray run's start-up
        configs = [trial_configs(t.params, self.fixed, _fold_config(t.fold_model_paths())) for t in trials]
        # each trial's own seed, as its folds had (trainers.kfold.derived_seed): refits of different
        # trials must not all start from the same weights either
        payload = {"jobs": [{"model": m.model_dump(mode="json"),
                             "params": {"family": m.family, **fit.model_dump(mode="json")},
                             "seed": derived_seed(self.seed, t.params, "refit"),
                             # the rounds its folds reached (patience, ASHA or the budget may end a trial
                             # early): the refit is the model the trial's out-of-fold score describes
                             "rounds": int(getattr(t, "epochs", 0) or 0) or None}
                            for t, (m, fit) in zip(trials, configs)],
                   "x": self.x if is_table(self.x) else np.asarray(self.x, dtype=np.float32),
                   "y": np.asarray(self.y, dtype=np.int64), "deadline": self.deadline}
        if self.ray_options is None:
            states = refit_all(payload)
        else:
            states = run_on_ray(refit_all, payload, **self.ray_options)
        out = []
        for state in states:
            if state is None:
                out.append(None)
                continue
            model_cfg, dump = ModelConfig.model_validate(state["config"]), state["dump"]
            if "state_dict" in dump:
                dump = {**dump, "state_dict": state_from_numpy(dump["state_dict"])}
            out.append((get_family(model_cfg.family).load(model_cfg, dump), model_cfg))
        return out


def _fold_config(paths: Sequence[Path]) -> ModelConfig:
    """The trial's model config (with in_features, n_classes, image_shape) as its fold model saved it."""
    if not paths:
        raise ValueError("a trial with at least one fold model must hold, but got none")
    return load_model(paths[0])[1]
