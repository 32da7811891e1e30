"""catboost: CatBoost's symmetric (oblivious) trees with its ordered target statistics on a table's
categories, on the GPU when the trial reserved one, saved as CatBoost's own binary model (.cbm bytes)."""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainers.families._base import class_columns
from trainers.families._booster import BoosterFamily

MISSING_CATEGORY = -1  # CatBoost takes categories as integers or strings, never NaN: a gap is its own category


class CatBoostParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    learning_rate: float = Field(0.05, gt=0.0, le=1.0)  # AutoGluon's CatBoost default
    n_estimators: int = Field(500, ge=1, le=10_000)  # boosting iterations in all
    depth: int = Field(6, ge=1, le=12)  # every tree is this deep (2**depth leaves)
    l2_leaf_reg: float = Field(3.0, ge=0.0, le=1e6)  # L2 on leaf values
    random_strength: float = Field(1.0, ge=0.0, le=100.0)  # noise on split scores (against overfitting)
    subsample: float = Field(0.8, gt=0.0, le=1.0)  # rows drawn per iteration (Bernoulli bootstrap)
    colsample_bylevel: float = Field(1.0, gt=0.0, le=1.0)  # features drawn per tree level (CPU only)
    one_hot_max_size: int = Field(2, ge=1, le=255)  # categories up to this many split one-hot, above: statistics
    rounds: int = Field(10, ge=1, le=1000)  # reports to the scheduler: n_estimators are grown in this many blocks


class CatBoostFamily(BoosterFamily):
    name = "catboost"
    Params = CatBoostParams

    def max_leaves(self, params: CatBoostParams) -> int:
        return 2 ** params.depth

    def dataset(self, model_cfg, x, y, weight=None):
        from catboost import Pool

        cats = list(model_cfg.table.categorical_columns) if model_cfg.table is not None else []
        return Pool(_frame(x, cats), label=y, weight=weight, cat_features=cats or None)

    def trees(self, model) -> int:
        return 0 if model is None else int(model.tree_count_)

    def objective(self, model_cfg) -> dict:
        if model_cfg.task == "regression":
            return {"loss_function": "RMSE"}
        # no class_names: naming a class the rows lack breaks continued training (an infinite prior);
        # proba() puts the classes a fold saw among all of them instead
        return {"loss_function": "Logloss" if model_cfg.n_classes == 2 else "MultiClass"}

    def grow(self, model, model_cfg, params: CatBoostParams, data, more, seed, threads, gpu):
        from catboost import CatBoost

        p = {**self.objective(model_cfg), "iterations": more, "learning_rate": params.learning_rate,
             "depth": params.depth, "l2_leaf_reg": params.l2_leaf_reg, "random_strength": params.random_strength,
             "bootstrap_type": "Bernoulli", "subsample": params.subsample,
             "one_hot_max_size": params.one_hot_max_size, "random_seed": seed, "thread_count": threads,
             "verbose": False, "allow_writing_files": False}
        if gpu:
            p.update(task_type="GPU", devices="0")
        else:
            p["rsm"] = params.colsample_bylevel
        if model is not None:
            # CatBoost continues an in-memory booster differently from the same booster read back from its
            # file; a resumed trial has only the file, so every block continues from the file's form
            model = self.load(model_cfg, self.dump(model))
        grown = CatBoost(p)
        grown.fit(data, init_model=model)  # a new booster holding the old one's trees and `more` after them
        grown.raysemble_n_classes = model_cfg.n_classes
        return grown

    def proba(self, model, x):
        out = super().proba(model, x)
        if self.is_regressor(model):
            return out
        return class_columns(out, model.classes_, getattr(model, "raysemble_n_classes", None) or out.shape[1])

    def raw_predict(self, model, x):
        kind = "RawFormulaVal" if self.is_regressor(model) else "Probability"
        # one thread: a served member must not reach for every core
        return model.predict(_frame(x, model.get_cat_feature_indices()), prediction_type=kind, thread_count=1)

    def is_regressor(self, model) -> bool:
        # asked twice per prediction; get_all_params serialises every parameter (~0.15 ms): once per model
        found = getattr(model, "raysemble_regressor", None)
        if found is None:
            found = model.raysemble_regressor = model.get_all_params().get("loss_function") == "RMSE"
        return found

    def dump(self, model) -> dict:
        # CatBoost writes its binary format to a file only (the in-memory writer is private API)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.cbm")
            model.save_model(path, format="cbm")
            with open(path, "rb") as f:
                return {"catboost": f.read()}

    def load(self, model_cfg, payload: dict) -> Any:
        from catboost import CatBoost, CatBoostError

        raw = self.payload_model(payload, bytes, "binary")
        model = CatBoost()
        try:
            # from a file: a model read from an in-memory blob crashed (SIGFPE) or hung a later continued
            # fit of another fold in the same process, at random rounds (CatBoost 1.2.10)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.cbm")
                with open(path, "wb") as f:
                    f.write(raw)
                model.load_model(path, format="cbm")
        except CatBoostError as e:
            raise ValueError(f"a 'catboost' binary model must hold in the {self.name} payload, but got "
                             f"{len(raw)} bytes CatBoost refused ({str(e)[:120]})") from None
        model.raysemble_n_classes = model_cfg.n_classes
        return model


def _frame(x: np.ndarray, cats):
    """The rows as CatBoost reads them: a category code as an integer (a gap: MISSING_CATEGORY)."""
    x = np.asarray(x, dtype=np.float32)
    if not len(cats):
        return x
    import pandas as pd

    cats = set(int(j) for j in cats)
    return pd.DataFrame({j: (np.where(np.isnan(x[:, j]), MISSING_CATEGORY, x[:, j]).astype(np.int64)
                             if j in cats else x[:, j]) for j in range(x.shape[1])})
