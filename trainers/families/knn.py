"""knn: standardised k-nearest neighbours (scikit-learn; a regression target: their weighted mean), fitted in one go. Brute-force search
keeps the saved model to plain arrays (no tree types to trust on load)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trainers.families._base import Cost
from trainers.families._sklearn import SklearnFamily


class KNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    n_neighbors: int = Field(15, ge=1, le=1000)
    weights: Literal["uniform", "distance"] = "distance"  # distance: nearer rows vote more
    p: int = Field(2, ge=1, le=2)  # Minkowski power: 1 = Manhattan, 2 = Euclidean


class KNNFamily(SklearnFamily):
    name = "knn"
    Params = KNNParams

    def estimator(self, params: KNNParams, seed: int, task: str = "classification"):
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        cls = KNeighborsRegressor if task == "regression" else KNeighborsClassifier
        return make_pipeline(StandardScaler(), cls(n_neighbors=params.n_neighbors, weights=params.weights,
                                                   p=params.p, algorithm="brute"))

    def cost(self, model_cfg, params: KNNParams, rows: int) -> Cost:
        return Cost(size=rows * model_cfg.in_features, work=1)  # the training rows are the model

    def prepare(self, est, y, model_cfg) -> None:
        # a small fold may hold fewer rows than the neighbours asked for: use them all
        est[-1].n_neighbors = min(est[-1].n_neighbors, len(y))
