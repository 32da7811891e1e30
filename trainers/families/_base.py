"""What every model family is to the rest of raysemble: a hyperparameter schema, a way to fit on
one fold's rows a round at a time, probabilities, and a payload that saves and loads without
unpickling. The loop, k-fold, checkpoints, refit, the predictor and the spec use only this.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel


@dataclass(frozen=True)
class Cost:
    """What one fit asks, known from its config before it runs (service.spec.budget sums these)."""

    size: int  # what the fitted model holds: parameters, tree nodes, or training values kept (kernels, neighbours)
    work: int  # passes over the fold's training rows: epochs, boosting iterations, trees (a fit in one go: 1)


class Fit(ABC):
    """One model being fitted on one fold's training rows, one round at a time (an epoch, a block
    of boosting rounds, a block of trees), so the folds of a trial advance in lockstep and a
    scheduler (ASHA) can stop a trial between rounds."""

    rounds: int  # rounds in all
    done: int = 0  # rounds finished
    model: Any  # the fitted model object: what Family.dump saves and Family.proba runs
    model_cfg: Any  # the ModelConfig that rebuilds `model` (with a table's fitted encoding, if any)

    @abstractmethod
    def advance(self) -> float:
        """Fit one more round; returns the training loss (log loss for non-neural families)."""

    @abstractmethod
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(rows, n_classes) float64 probabilities of the model as fitted so far; for a regression
        config (model_cfg.task, n_classes 1) the (rows, 1) predicted values (trainers.task)."""

    def state(self) -> dict:
        """What continuing exactly needs beyond the model (tensors, arrays and plain values only)."""
        return {"done": self.done}

    def restore(self, model: Any, state: dict) -> None:
        """Continue from a checkpoint: the model Family.load rebuilt and this Fit's state()."""
        self.done = int(state["done"])


class Family(ABC):
    """One kind of model. Subclasses are small: a name, a Params schema and the few methods below."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]  # the family's own hyperparameters, each with a commented default
    is_torch: ClassVar[bool] = False  # members are nn.Modules: vectorised prediction, DDP, streaming
    needs_image_shape: ClassVar[bool] = False  # rows must be images (data.image_shape known)
    runs_user_code: ClassVar[bool] = False  # builds from the user's code (model.factory): checked, shipped
    # the shape fields of distill.student this family uses as a student; empty: it cannot be one
    student_keys: ClassVar[tuple[str, ...]] = ()
    # how it takes a table's rows (trainers.tables.encoding): "onehot" (imputed numbers, missing
    # indicators, one 0/1 column per category) or "ordinal" (NaN kept, category codes: native splits)
    table_encoding: ClassVar[str] = "onehot"

    def keys(self) -> set[str]:
        """Flat trial keys this family takes (a sweep searching several families routes each key
        to the families that know it)."""
        return set(self.Params.model_fields)

    def accepts(self, key: str) -> bool:
        return key in self.keys()

    @abstractmethod
    def split(self, flat: dict, base) -> tuple[Any, BaseModel]:
        """Flat trial hyperparameters + the spec's base ModelConfig -> (ModelConfig that rebuilds the
        model, the fit settings). Raises pydantic's ValidationError on a bad value."""

    @abstractmethod
    def start(self, model_cfg, fit_cfg: BaseModel, x: np.ndarray, y: np.ndarray, seed: int,
              device: Any = "cpu", data_parallel: tuple[int, int] | None = None) -> Fit:
        """A Fit on these training rows; nothing is fitted yet."""

    @abstractmethod
    def proba(self, model: Any, x: np.ndarray) -> np.ndarray:
        """(rows, n_classes) float64 probabilities of a fitted model (a regressor's: (rows, 1) values)."""

    @abstractmethod
    def dump(self, model: Any) -> dict:
        """The model as a payload of tensors, arrays, bytes and plain values (torch's weights-only
        loader reads it back); never a pickle of the object."""

    @abstractmethod
    def load(self, model_cfg, payload: dict) -> Any:
        """The model again, from its config and dump(); in eval mode."""

    def parameter_count(self, model_cfg) -> int | None:
        """Trainable parameters, where the family can tell from the config alone."""
        return None

    @abstractmethod
    def cost(self, model_cfg, fit_cfg: BaseModel, rows: int) -> Cost:
        """The size and work of one fit on `rows` training rows (of model_cfg.in_features values each),
        from the config alone: budgets refuse a spec on it before anything trains. Upper bounds."""

    def fit_rounds(self, fit_cfg: BaseModel) -> int:
        """Rounds a fit with these settings reports (the scheduler's time axis)."""
        return int(getattr(fit_cfg, "epochs", getattr(fit_cfg, "rounds", 1)))


def options_split(family: Family, flat: dict, base):
    """split() of a family whose hyperparameters all live in ModelConfig.options (no shape fields)."""
    from trainers.families.config import ModelConfig

    params = family.Params.model_validate(flat)
    model_cfg = ModelConfig.model_validate({**base.model_dump(), "family": family.name,
                                            "options": params.model_dump(mode="json")})
    return model_cfg, params


def class_columns(proba: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """A model fitted on rows that lacked some classes predicts only the classes it saw: put its
    columns where they belong among all n_classes (the missing ones get probability 0)."""
    out = np.zeros((len(proba), n_classes), dtype=np.float64)
    out[:, np.asarray(seen, dtype=np.int64)] = proba
    return out


def train_log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    rows = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    value = 0.0 - float(np.log(rows).mean())  # not -0.0 for a perfect fit (curves show it)
    return value if math.isfinite(value) else float("nan")
