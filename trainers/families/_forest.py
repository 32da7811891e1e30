"""What random_forest and extra_trees share: trees added a block per round (warm_start)."""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from trainers.families._base import Cost
from trainers.families._flat_trees import FLAT_MAX_ROWS, flat
from trainers.families._sklearn import SklearnFamily


class ForestParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    n_estimators: int = Field(200, ge=1, le=10_000)  # trees in all
    max_depth: int | None = Field(None, ge=1, le=128)  # None = grow until leaves are pure
    min_samples_leaf: int = Field(1, ge=1, le=100_000)
    max_features: float = Field(1.0, gt=0.0, le=1.0)  # fraction of features per split; 1.0 = all
    class_weight: str | None = Field(None, pattern="^balanced$")  # "balanced" for skewed classes
    rounds: int = Field(4, ge=1, le=1000)  # reports to the scheduler: trees are added in this many blocks


class ForestFamily(SklearnFamily):
    Params = ForestParams
    trusted = ("sklearn.tree._tree.Tree",)
    # class names in sklearn.ensemble, imported when a model is made: a spec parses without scikit-learn
    estimator_class: str
    regressor_class: str  # for a regression target

    def estimator(self, params: ForestParams, seed: int, task: str = "classification"):
        from sklearn import ensemble

        common = dict(n_estimators=1, max_depth=params.max_depth, min_samples_leaf=params.min_samples_leaf,
                      max_features=params.max_features, warm_start=True, n_jobs=1, random_state=seed)
        if task == "regression":
            if params.class_weight is not None:
                raise ValueError(f"class_weight: None for a regression target expected, but got "
                                 f"{params.class_weight!r}")
            return getattr(ensemble, self.regressor_class)(**common)
        return getattr(ensemble, self.estimator_class)(class_weight=params.class_weight, **common)

    def cost(self, model_cfg, params: ForestParams, rows: int) -> Cost:
        # a tree has at most 2 x (rows / min_samples_leaf) nodes, and 2 ** (max_depth + 1) when depth-bound
        nodes = 2 * max(1, rows // params.min_samples_leaf)
        if params.max_depth is not None:
            nodes = min(nodes, 2 ** min(params.max_depth + 1, 62))
        return Cost(size=params.n_estimators * nodes, work=params.n_estimators)

    def predict_raw(self, model, x, regressor: bool):
        if len(x) > FLAT_MAX_ROWS:
            return super().predict_raw(model, x, regressor)
        out = flat(model).mean_value(x)
        return out[:, 0] if regressor else out

    def fit_rounds(self, params: ForestParams) -> int:
        return min(params.rounds, params.n_estimators)

    def grow(self, est, params: ForestParams, done: int, rounds: int) -> None:
        est.n_estimators = math.ceil(params.n_estimators * done / rounds)
