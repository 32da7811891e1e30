"""svc: a standardised RBF support-vector classifier with probabilities from sigmoid calibration
(scikit-learn's replacement for the deprecated SVC(probability=True)); for a regression target, support
vector regression (SVR) on the standardised target (its epsilon tube is then in standard deviations)."""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainers.families._base import Cost
from trainers.families._sklearn import SklearnFamily


class SVCParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    C: float = Field(1.0, gt=0.0, le=1e6)
    # RBF width; "scale" = 1 / (features * variance); a number must be positive (scikit-learn
    # would refuse it only at fit time, inside a trial)
    gamma: Annotated[float, Field(gt=0.0, le=1e6)] | Literal["scale"] = "scale"
    kernel: Literal["rbf", "linear", "poly"] = "rbf"
    calibration_folds: int = Field(3, ge=2, le=10)  # internal CV of the probability calibration


class SVCFamily(SklearnFamily):
    name = "svc"
    Params = SVCParams
    trusted = ("sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration")

    def cost(self, model_cfg, params: SVCParams, rows: int) -> Cost:
        # support vectors are training rows, kept whole; a fit per calibration fold plus the final one
        work = 1 if model_cfg.task == "regression" else params.calibration_folds + 1
        return Cost(size=rows * model_cfg.in_features, work=work)

    def estimator(self, params: SVCParams, seed: int, task: str = "classification"):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC, SVR

        if task == "regression":
            svr = make_pipeline(StandardScaler(), SVR(C=params.C, gamma=params.gamma, kernel=params.kernel))
            return TransformedTargetRegressor(regressor=svr, transformer=StandardScaler())
        svc = SVC(C=params.C, gamma=params.gamma, kernel=params.kernel, random_state=seed)
        return make_pipeline(StandardScaler(), CalibratedClassifierCV(svc, cv=params.calibration_folds,
                                                                      ensemble=False))

    def prepare(self, est, y, model_cfg) -> None:
        if model_cfg.task == "regression":
            return  # no calibration
        # the calibration's stratified folds need that many rows of every class: a fold of a small
        # dataset may hold fewer, so use fewer calibration folds rather than fail the trial
        rarest = int(np.bincount(y)[np.unique(y)].min())
        if rarest < 2:
            raise ValueError(f"family svc: at least 2 training rows of every class present must hold for "
                             f"probability calibration, but a class has {rarest}")
        calibrated = est[-1]
        calibrated.cv = min(calibrated.cv, rarest)
