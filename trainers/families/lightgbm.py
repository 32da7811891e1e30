"""lightgbm: LightGBM's leaf-wise gradient boosting, native categorical splits on a table's category
codes, saved as LightGBM's own text model."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainers.families._booster import BoosterFamily


class LightGBMParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    learning_rate: float = Field(0.05, gt=0.0, le=1.0)
    n_estimators: int = Field(300, ge=1, le=10_000)  # boosting iterations in all
    num_leaves: int = Field(31, ge=2, le=4096)
    max_depth: int | None = Field(None, ge=1, le=64)  # None = unlimited (num_leaves bounds the trees)
    min_child_samples: int = Field(20, ge=1, le=100_000)  # rows a leaf needs
    subsample: float = Field(1.0, gt=0.0, le=1.0)  # rows drawn per iteration (bagging)
    colsample_bytree: float = Field(1.0, gt=0.0, le=1.0)  # features drawn per tree
    reg_lambda: float = Field(0.0, ge=0.0, le=1e6)  # L2 on leaf values
    reg_alpha: float = Field(0.0, ge=0.0, le=1e6)  # L1 on leaf values
    min_data_per_group: int = Field(100, ge=1, le=100_000)  # rows a category group needs (categorical splits)
    cat_smooth: float = Field(10.0, ge=0.0, le=1e6)  # shrinks a category's statistics toward the mean
    rounds: int = Field(10, ge=1, le=1000)  # reports to the scheduler: n_estimators are grown in this many blocks


STUDENT_LEARNING_RATE = 0.1  # a student's few trees take bigger steps than a trial's hundreds


class LightGBMFamily(BoosterFamily):
    name = "lightgbm"
    Params = LightGBMParams
    student_keys = ("trees", "leaves")  # a distillation student (trainers.distill_trees)

    def student_options(self, shape: dict) -> dict:
        """ModelConfig.options of a student of this shape (StudentConfig.shape())."""
        return LightGBMParams(n_estimators=shape["trees"], num_leaves=shape["leaves"],
                              learning_rate=STUDENT_LEARNING_RATE, min_child_samples=5).model_dump(mode="json")

    def max_leaves(self, params: LightGBMParams) -> int:
        return params.num_leaves

    def dataset(self, model_cfg, x, y, weight=None):
        import lightgbm as lgb

        cats = model_cfg.table.categorical_columns if model_cfg.table is not None else []
        # free_raw_data=False: a later block (init_model) predicts on these rows to continue from
        return lgb.Dataset(x, label=y, weight=weight, categorical_feature=cats or "auto", free_raw_data=False,
                           params={"verbose": -1, "max_bin": 255})

    def trees(self, model) -> int:
        return 0 if model is None else model.current_iteration()

    def objective(self, model_cfg) -> dict:
        if model_cfg.task == "regression":
            return {"objective": "regression"}
        if model_cfg.n_classes == 2:
            return {"objective": "binary"}
        return {"objective": "multiclass", "num_class": model_cfg.n_classes}

    def grow(self, model, model_cfg, params: LightGBMParams, data, more, seed, threads, gpu):
        import lightgbm as lgb

        p = {**self.objective(model_cfg), "learning_rate": params.learning_rate, "num_leaves": params.num_leaves,
             "max_depth": params.max_depth or -1, "min_child_samples": params.min_child_samples,
             "bagging_fraction": params.subsample, "bagging_freq": 1 if params.subsample < 1 else 0,
             "feature_fraction": params.colsample_bytree, "lambda_l2": params.reg_lambda,
             "lambda_l1": params.reg_alpha, "min_data_per_group": params.min_data_per_group,
             "cat_smooth": params.cat_smooth, "seed": seed, "num_threads": threads, "deterministic": True,
             "force_col_wise": True, "verbose": -1}
        # the pip wheel has no CUDA build: a trial that reserved a GPU still boosts on its CPUs
        return lgb.train(p, data, num_boost_round=more, init_model=model, keep_training_booster=True)

    def raw_predict(self, model, x):
        return model.predict(x, num_threads=1)

    def is_regressor(self, model) -> bool:
        return model.params.get("objective") == "regression"

    def dump(self, model) -> dict:
        return {"lightgbm": model.model_to_string()}

    def load(self, model_cfg, payload: dict) -> Any:
        import lightgbm as lgb

        text = self.payload_model(payload, str, "text")
        model = lgb.Booster(model_str=text)
        model.params = {**model.params, **self.objective(model_cfg)}
        return model

