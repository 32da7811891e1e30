"""What the scikit-learn families share: fit a round at a time, probabilities over every class (a
regression target: the predicted value, from the family's regressor), and a skops payload loaded with an explicit list of trusted types (never a pickle)."""
from __future__ import annotations

import functools
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from trainers.families._base import Family, Fit, class_columns, options_split, train_log_loss
from trainers.metrics import score


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController

    # scanning the loaded OpenMP/BLAS libraries costs ~7 ms: once per process (the families'
    # modules imported scikit-learn, so its OpenMP runtime is loaded by now)
    return ThreadpoolController()


def one_thread():
    """Trials run side by side, one CPU each: hist_gb's OpenMP loops (and BLAS) would otherwise take
    every core of the machine, and on a busy one fitting 300 rows took 15x longer than on one thread."""
    return _threadpools().limit(limits=1)


class SklearnFit(Fit):
    def __init__(self, family: "SklearnFamily", model_cfg, params: BaseModel, x: np.ndarray, y: np.ndarray,
                 seed: int):
        self.family, self.params, self.model_cfg, self.n_classes = family, params, model_cfg, model_cfg.n_classes
        self.regression = model_cfg.task == "regression"
        self.x, self.seed = np.asarray(x, dtype=np.float64), seed
        self.y = np.asarray(y, dtype=np.float64 if self.regression else np.int64)
        self.model = family.estimator(params, seed, model_cfg.task)
        family.prepare(self.model, self.y, model_cfg)
        self.model.raysemble_n_classes = self.n_classes  # proba() spreads a fold's seen classes over all
        self.rounds, self.done = family.fit_rounds(params), 0

    def advance(self) -> float:
        self.done += 1
        self.family.grow(self.model, self.params, self.done, self.rounds)
        with one_thread():
            self.model.fit(self.x, self.y)
        if self.regression:
            return score("rmse", self.y, self.predict_proba(self.x))
        return train_log_loss(self.y, self.predict_proba(self.x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.family.proba(self.model, x)

    def restore(self, model: Any, state: dict) -> None:
        # the loaded estimator carries its warm-start state: the next round adds to it
        self.model, self.done = model, int(state["done"])


class SklearnFamily(Family):
    """Subclasses give Params, estimator(), and for warm-started families grow()."""

    # types beyond skops' defaults that this family's fitted estimator holds (checked on load)
    trusted: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def estimator(self, params: BaseModel, seed: int, task: str = "classification") -> Any:
        """An unfitted estimator (single-threaded: trials run side by side): a classifier, or for
        task "regression" the family's regressor."""

    def prepare(self, est: Any, y: np.ndarray, model_cfg) -> None:
        """Adjust an unfitted estimator to the rows it will see (before the first round); model_cfg.table
        is the encoding of a table's rows (its categorical_columns, for native categorical splits)."""

    def grow(self, est: Any, params: BaseModel, done: int, rounds: int) -> None:
        """Before round `done` of `rounds`: set the size the estimator reaches this round (warm start)."""

    def fit_rounds(self, params: BaseModel) -> int:
        return int(getattr(params, "rounds", 1))

    def split(self, flat: dict, base):
        return options_split(self, flat, base)

    def start(self, model_cfg, fit_cfg, x, y, seed, device="cpu", data_parallel=None) -> Fit:
        if data_parallel and data_parallel[1] > 1:
            raise ValueError(f"resources.parallelism 'ddp' needs a torch family, but got family {self.name!r}")
        return SklearnFit(self, model_cfg, fit_cfg, x, y, seed)

    def proba(self, model: Any, x: np.ndarray) -> np.ndarray:
        # one thread here too: the predictor, the judge, the distillation teacher and serving replicas
        # call this in processes where torch's and OpenMP's thread pools would fight over few cores
        from sklearn.base import is_regressor

        regressor = is_regressor(model)
        with one_thread():
            out = self.predict_raw(model, np.asarray(x, dtype=np.float64), regressor)
        if regressor:
            return np.asarray(out, dtype=np.float64).reshape(-1, 1)
        n_classes = getattr(model, "raysemble_n_classes", None) or len(model.classes_)
        return class_columns(out, model.classes_, n_classes)

    def predict_raw(self, model: Any, x: np.ndarray, regressor: bool) -> np.ndarray:
        """The estimator's own output: predict_proba over the classes it saw, or a regressor's predict."""
        return model.predict(x) if regressor else model.predict_proba(x)

    def dump(self, model: Any) -> dict:
        import skops.io as sio

        return {"skops": sio.dumps(model)}

    def load(self, model_cfg, payload: dict) -> Any:
        import skops.io as sio

        model = sio.loads(payload["skops"], trusted=list(self.trusted))
        model.raysemble_n_classes = model_cfg.n_classes
        return model
