"""xgboost: XGBoost's depth-wise histogram boosting, native categorical splits on a table's category
codes, on the GPU when the trial reserved one, saved as XGBoost's own UBJSON model."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainers.families._booster import BoosterFamily


class XGBoostParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    learning_rate: float = Field(0.1, gt=0.0, le=1.0)
    n_estimators: int = Field(300, ge=1, le=10_000)  # boosting iterations in all
    max_depth: int = Field(6, ge=1, le=16)
    min_child_weight: float = Field(1.0, ge=0.0, le=1e6)  # hessian a leaf needs
    subsample: float = Field(1.0, gt=0.0, le=1.0)  # rows drawn per iteration
    colsample_bytree: float = Field(1.0, gt=0.0, le=1.0)  # features drawn per tree
    reg_lambda: float = Field(1.0, ge=0.0, le=1e6)  # L2 on leaf values
    reg_alpha: float = Field(0.0, ge=0.0, le=1e6)  # L1 on leaf values
    gamma: float = Field(0.0, ge=0.0, le=1e6)  # loss reduction a split needs
    max_cat_to_onehot: int = Field(4, ge=1, le=256)  # categories below this split one-vs-rest, above by partition
    rounds: int = Field(10, ge=1, le=1000)  # reports to the scheduler: n_estimators are grown in this many blocks


class XGBoostFamily(BoosterFamily):
    name = "xgboost"
    Params = XGBoostParams

    def max_leaves(self, params: XGBoostParams) -> int:
        return 2 ** params.max_depth

    def dataset(self, model_cfg, x, y, weight=None):
        import xgboost as xgb

        cats = set(model_cfg.table.categorical_columns) if model_cfg.table is not None else set()
        types = ["c" if j in cats else "q" for j in range(x.shape[1])]
        return xgb.DMatrix(x, label=y, weight=weight, feature_types=types, enable_categorical=bool(cats), nthread=1)

    def trees(self, model) -> int:
        return 0 if model is None else model.num_boosted_rounds()

    def objective(self, model_cfg) -> dict:
        if model_cfg.task == "regression":
            return {"objective": "reg:squarederror"}
        if model_cfg.n_classes == 2:
            return {"objective": "binary:logistic"}
        return {"objective": "multi:softprob", "num_class": model_cfg.n_classes}

    def grow(self, model, model_cfg, params: XGBoostParams, data, more, seed, threads, gpu):
        import xgboost as xgb

        p = {**self.objective(model_cfg), "eta": params.learning_rate, "max_depth": params.max_depth,
             "min_child_weight": params.min_child_weight, "subsample": params.subsample,
             "colsample_bytree": params.colsample_bytree, "lambda": params.reg_lambda, "alpha": params.reg_alpha,
             "gamma": params.gamma, "max_cat_to_onehot": params.max_cat_to_onehot, "tree_method": "hist",
             "seed": seed, "nthread": threads, "device": "cuda" if gpu else "cpu"}
        if model is not None:
            model.set_param(p)  # a loaded booster continues with this block's seed and threads
        model = xgb.train(p, data, num_boost_round=more, xgb_model=model)
        model.set_attr(raysemble_task=model_cfg.task)  # saved with the model: a value or class 1's probability
        return model

    def raw_predict(self, model, x):
        # predictions on the CPU, one thread: a served member must not reach for a GPU or every core
        model.set_param({"nthread": 1, "device": "cpu"})
        return model.inplace_predict(x)

    def is_regressor(self, model) -> bool:
        return model.attr("raysemble_task") == "regression"

    def dump(self, model) -> dict:
        return {"xgboost": bytes(model.save_raw("ubj"))}

    def load(self, model_cfg, payload: dict) -> Any:
        import xgboost as xgb

        raw = self.payload_model(payload, bytes, "UBJSON")
        model = xgb.Booster()
        model.load_model(bytearray(raw))
        model.set_attr(raysemble_task=model_cfg.task)
        return model
