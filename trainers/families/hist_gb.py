"""hist_gb: scikit-learn's HistGradientBoostingClassifier, or Regressor for a number (boosting: each
tree fits the previous trees' errors), grown with warm_start a block of iterations per round so ASHA can stop it early."""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from trainers.families._base import Cost
from trainers.families._flat_trees import FLAT_MAX_ROWS, flat_boosted
from trainers.families._sklearn import SklearnFamily


class HistGBParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    learning_rate: float = Field(0.1, gt=0.0, le=1.0)
    max_iter: int = Field(200, ge=1, le=10_000)  # boosting iterations in all
    max_leaf_nodes: int = Field(31, ge=2, le=4096)
    max_depth: int | None = Field(None, ge=1, le=64)  # None = unlimited (leaf count bounds the trees)
    min_samples_leaf: int = Field(20, ge=1, le=100_000)
    l2_regularization: float = Field(0.0, ge=0.0, le=1e6)
    max_features: float = Field(1.0, gt=0.0, le=1.0)  # fraction of features per split
    rounds: int = Field(10, ge=1, le=1000)  # reports to the scheduler: max_iter is grown in this many blocks


class HistGBFamily(SklearnFamily):
    name = "hist_gb"
    Params = HistGBParams
    table_encoding = "ordinal"  # native categorical splits and missing values
    # with native categorical splits the fitted model also holds a partial of scikit-learn's check_array
    trusted = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", "functools.partial",
               "sklearn.utils.validation.check_array")

    def estimator(self, params: HistGBParams, seed: int, task: str = "classification"):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        # no early stopping inside: the iteration budget is the searched knob, ASHA the stopper
        cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
        return cls(
            learning_rate=params.learning_rate, max_iter=1, max_leaf_nodes=params.max_leaf_nodes,
            max_depth=params.max_depth, min_samples_leaf=params.min_samples_leaf,
            l2_regularization=params.l2_regularization, max_features=params.max_features,
            early_stopping=False, warm_start=True, random_state=seed)

    def prepare(self, est, y, model_cfg) -> None:
        if model_cfg.table is not None and model_cfg.table.categorical_columns:
            est.categorical_features = model_cfg.table.categorical_columns

    def cost(self, model_cfg, params: HistGBParams, rows: int) -> Cost:
        # a tree per class per iteration (one for two classes), of at most 2 x max_leaf_nodes nodes
        trees = params.max_iter * (model_cfg.n_classes if model_cfg.n_classes > 2 else 1)
        return Cost(size=trees * 2 * params.max_leaf_nodes, work=params.max_iter)

    def predict_raw(self, model, x, regressor: bool):
        # scikit-learn walks each iteration's trees in its own call (an input check and an OpenMP region
        # each): ~25 ms for one row of a 100-iteration, 3-class model; the flat walk takes well under 1 ms
        flat = flat_boosted(model) if len(x) <= FLAT_MAX_ROWS else None
        if flat is None:
            return super().predict_raw(model, x, regressor)
        raw = flat.raw(model, x)
        return model._loss.link.inverse(raw.ravel()) if regressor else model._loss.predict_proba(raw)

    def fit_rounds(self, params: HistGBParams) -> int:
        return min(params.rounds, params.max_iter)

    def grow(self, est, params: HistGBParams, done: int, rounds: int) -> None:
        est.max_iter = math.ceil(params.max_iter * done / rounds)
