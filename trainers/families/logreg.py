"""logreg: standardised multinomial logistic regression (scikit-learn), fitted in one go; for a
regression target its linear counterpart, ridge regression with alpha = 1 / C (the same L2 knob)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trainers.families._base import Cost
from trainers.families._sklearn import SklearnFamily


class LogRegParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    C: float = Field(1.0, gt=0.0, le=1e6)  # inverse L2 strength
    max_iter: int = Field(2000, ge=10, le=100_000)
    class_weight: str | None = Field(None, pattern="^balanced$")


class LogRegFamily(SklearnFamily):
    name = "logreg"
    Params = LogRegParams

    def cost(self, model_cfg, params: LogRegParams, rows: int) -> Cost:
        # fitted in one go (L-BFGS converges long before max_iter on standardised features)
        return Cost(size=(model_cfg.in_features + 1) * model_cfg.n_classes, work=1)

    def estimator(self, params: LogRegParams, seed: int, task: str = "classification"):
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if task == "regression":
            return make_pipeline(StandardScaler(), Ridge(alpha=1.0 / params.C))
        return make_pipeline(StandardScaler(), LogisticRegression(C=params.C, max_iter=params.max_iter,
                                                                  class_weight=params.class_weight))
