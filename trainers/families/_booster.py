"""What the gradient-boosting libraries (LightGBM, XGBoost) share: trees added a block at a time on the
library's own booster (so ASHA can stop a trial between blocks and a checkpoint resumes where it
stopped), the trial's CPUs as threads, and the library's own model format as the payload (text or
bytes its loader parses; never a pickle)."""
from __future__ import annotations

import math
import os
from abc import abstractmethod
from typing import Any

import numpy as np
from pydantic import BaseModel

from trainers.families._base import Cost, Family, Fit, options_split, train_log_loss
from trainers.metrics import score


def trial_threads() -> int:
    """The CPUs Ray gave this trial's process (it sets OMP_NUM_THREADS to a task's num_cpus); 1 outside Ray."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


class BoosterFit(Fit):
    def __init__(self, family: "BoosterFamily", model_cfg, params: BaseModel, x: np.ndarray, y: np.ndarray,
                 seed: int, device: Any):
        self.family, self.params, self.model_cfg, self.seed = family, params, model_cfg, seed
        self.regression = model_cfg.task == "regression"
        self.x = np.asarray(x, dtype=np.float32)
        self.y = np.asarray(y, dtype=np.float64 if self.regression else np.int64)
        self.gpu = str(device).startswith("cuda")
        self.data = family.dataset(model_cfg, self.x, self.y)
        self.model = None
        self.rounds, self.done = family.fit_rounds(params), 0

    def advance(self) -> float:
        self.done += 1
        trees = math.ceil(self.params.n_estimators * self.done / self.rounds)
        grown = self.family.trees(self.model)
        # each block its own seed: a resumed fit draws what the uninterrupted one drew
        self.model = self.family.grow(self.model, self.model_cfg, self.params, self.data, trees - grown,
                                      self.seed + self.done, trial_threads(), self.gpu)
        out = self.predict_proba(self.x)
        return score("rmse", self.y, out) if self.regression else train_log_loss(self.y, out)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.family.proba(self.model, x)

    def restore(self, model: Any, state: dict) -> None:
        self.model, self.done = model, int(state["done"])


class BoosterFamily(Family):
    """Subclasses give Params (with n_estimators and rounds) and the library calls below."""

    table_encoding = "ordinal"  # native categorical splits, NaN as missing

    def split(self, flat: dict, base):
        return options_split(self, flat, base)

    def start(self, model_cfg, fit_cfg, x, y, seed, device="cpu", data_parallel=None) -> Fit:
        if data_parallel and data_parallel[1] > 1:
            raise ValueError(f"resources.parallelism 'ddp' needs a torch family, but got family {self.name!r}")
        return BoosterFit(self, model_cfg, fit_cfg, x, y, seed, device)

    def fit_rounds(self, params: BaseModel) -> int:
        return min(params.rounds, params.n_estimators)

    def parameter_count(self, model_cfg) -> int | None:
        """Tree nodes (splits and leaves) at most, from ModelConfig.options: a student's size beside a network's
        parameters."""
        try:
            params = self.Params.model_validate(model_cfg.options)
        except ValueError:
            return None
        trees = params.n_estimators * (model_cfg.n_classes if model_cfg.n_classes > 2 else 1)
        return trees * (2 * self.max_leaves(params) - 1)

    def cost(self, model_cfg, params: BaseModel, rows: int) -> Cost:
        # a tree per class per iteration (one for two classes or a number)
        trees = params.n_estimators * (model_cfg.n_classes if model_cfg.n_classes > 2 else 1)
        return Cost(size=trees * 2 * self.max_leaves(params), work=params.n_estimators)

    def proba(self, model: Any, x: np.ndarray) -> np.ndarray:
        out = np.asarray(self.raw_predict(model, np.asarray(x, dtype=np.float32)), dtype=np.float64)
        if out.ndim == 2:
            return out
        if self.is_regressor(model):
            return out.reshape(-1, 1)
        return np.stack([1.0 - out, out], 1)  # a binary objective gives the second class's probability

    def payload_model(self, payload: dict, kind: type, what: str):
        """The library's model in a dump() payload under the family's name, of this type; ValueError naming it."""
        value = payload.get(self.name)
        if not isinstance(value, kind):
            raise ValueError(f"a '{self.name}' {what} model must hold in the {self.name} payload, but got "
                             f"{type(value).__name__}")
        return value

    @abstractmethod
    def max_leaves(self, params: BaseModel) -> int:
        """An upper bound of one tree's leaves (the cost)."""

    @abstractmethod
    def dataset(self, model_cfg, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> Any:
        """The library's training set for these rows (categorical columns: model_cfg.table), each row
        weighted by `weight` (None: 1)."""

    @abstractmethod
    def trees(self, model: Any) -> int:
        """Boosting iterations a booster holds (0 for None)."""

    @abstractmethod
    def grow(self, model: Any, model_cfg, params: BaseModel, data: Any, more: int, seed: int, threads: int,
             gpu: bool) -> Any:
        """The booster with `more` iterations added (a new one from None)."""

    @abstractmethod
    def raw_predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The library's prediction on one thread: probabilities ((rows,) for two classes) or values."""

    @abstractmethod
    def is_regressor(self, model: Any) -> bool:
        ...
