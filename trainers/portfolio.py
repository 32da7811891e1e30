"""The tabular preset: a portfolio of strong, diverse configurations tried first (cheapest family first,
so a short time budget still ends with a few good members), then the searcher continues from them in a
space around them. The configurations follow AutoGluon 1.x's default zoo
(autogluon/tabular/configs/hyperparameter_configs.py: GBM, GBMLarge, XGB, RF, XT, NN_TORCH, LR) and the
libraries' own defaults; TabRepo (Salinas et al. 2023) found such a fixed portfolio beats a search
started from scratch at the same time."""
from __future__ import annotations

PRESETS = ("auto", "tabular", "none")

# the first trials, in this order (scoped keys: trainers.families.scope)
PORTFOLIO: list[dict] = [
    {"family": "logreg", "logreg.C": 1.0},
    {"family": "lightgbm", "lightgbm.learning_rate": 0.05, "lightgbm.num_leaves": 31,  # LightGBM / GBM
     "lightgbm.min_child_samples": 20, "lightgbm.colsample_bytree": 1.0},
    {"family": "hist_gb", "hist_gb.learning_rate": 0.1, "hist_gb.max_leaf_nodes": 31},  # scikit-learn's default
    {"family": "xgboost", "xgboost.learning_rate": 0.1, "xgboost.max_depth": 6,  # XGBoost's default / XGB
     "xgboost.colsample_bytree": 1.0},
    {"family": "extra_trees", "extra_trees.min_samples_leaf": 1},  # XT
    {"family": "random_forest", "random_forest.min_samples_leaf": 1},  # RF
    {"family": "lightgbm", "lightgbm.learning_rate": 0.03, "lightgbm.num_leaves": 127,  # GBMLarge
     "lightgbm.min_child_samples": 5, "lightgbm.colsample_bytree": 0.9},
    {"family": "mlp", "mlp.lr": 3e-3, "mlp.hidden": 128},  # NN_TORCH-like
]

# where the searcher goes on from the portfolio (every portfolio value lies inside)
SPACE: dict[str, dict] = {
    "family": {"choice": ["logreg", "lightgbm", "hist_gb", "xgboost", "extra_trees", "random_forest", "mlp"]},
    "logreg.C": {"loguniform": [0.01, 100.0]},
    "lightgbm.learning_rate": {"loguniform": [0.01, 0.2]},
    "lightgbm.num_leaves": {"choice": [15, 31, 63, 127]},
    "lightgbm.min_child_samples": {"choice": [5, 10, 20, 50]},
    "lightgbm.colsample_bytree": {"uniform": [0.5, 1.0]},
    "hist_gb.learning_rate": {"loguniform": [0.02, 0.3]},
    "hist_gb.max_leaf_nodes": {"choice": [15, 31, 63]},
    "xgboost.learning_rate": {"loguniform": [0.01, 0.3]},
    "xgboost.max_depth": {"choice": [4, 6, 8, 10]},
    "xgboost.colsample_bytree": {"uniform": [0.5, 1.0]},
    "extra_trees.min_samples_leaf": {"choice": [1, 2, 5]},
    "random_forest.min_samples_leaf": {"choice": [1, 2, 5]},
    "mlp.lr": {"loguniform": [1e-3, 1e-2]},
    "mlp.hidden": {"choice": [64, 128, 256]},
}

FIXED: dict = {"lightgbm.n_estimators": 300, "xgboost.n_estimators": 300, "hist_gb.max_iter": 300,
               "extra_trees.n_estimators": 300, "random_forest.n_estimators": 300, "mlp.epochs": 40}

TRIALS = len(PORTFOLIO) + 16  # num_trials when the spec sets none: the portfolio, then the searcher's own
BUDGET_TRIALS = 500  # ... and with a time budget, which is then what ends the search


def tabular(search: dict) -> dict:
    """A raw search section (what the spec gave) with the preset filled in where the spec left it out."""
    out = dict(search)
    out["space"] = dict(SPACE)
    out["fixed"] = {**FIXED, **(search.get("fixed") or {})}
    out.setdefault("start_with", [dict(p) for p in PORTFOLIO])
    out.setdefault("algorithm", "bayesian")
    out.setdefault("num_trials", BUDGET_TRIALS if search.get("time_budget_s") is not None else TRIALS)
    return out
