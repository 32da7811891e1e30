"""Numeric targets on held-out data: raysemble's ensemble and student beside tuned scikit-learn regressors.

For every dataset and split seed: one mixed-family raysemble sweep (mlp, hist_gb, logreg = ridge for a
number, extra_trees, knn; Optuna TPE, scored by RMSE) through the real pipeline (prepare -> Tune sweep
-> greedy ensemble on out-of-fold RMSE -> distilled student -> judge -> MLflow registry), and
scikit-learn peers (HistGradientBoostingRegressor, RandomForestRegressor, Ridge) grid-searched on the SAME
training split with the SAME CV folds (trainers.kfold.make_folds, stratified on the target's quantile
bins), refitted on the whole training split and scored on the same held-out rows. A raw table's peers
are pipelines whose encoders are fitted inside each CV fold (the classification bench's encoders).

Datasets: scikit-learn's diabetes (442 rows), and raw tables with words and missing values
(bench/tables.py: penguins_mass, salaries, diamonds).

    .venv/bin/python bench/regression.py [--datasets diabetes,salaries] [--seeds 0,1,2] [--trials 20]
                                         [--quick] [--out results.json]

Aims (issue 22), on the mean over seeds: the ensemble's RMSE at or below the best peer's on every
dataset, below its own best single trial on average, the student within 5% RMSE of the ensemble.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/serving.py would shadow serving/

DATASETS = ("diabetes", "penguins_mass", "salaries", "diamonds")
FAMILIES = ("mlp", "hist_gb", "logreg", "extra_trees", "knn")
STUDENT_TOLERANCE = 0.05  # "within 5% RMSE" of the ensemble


def data_section(dataset: str) -> dict:
    if dataset == "diabetes":
        return {"source": "sklearn:diabetes"}
    from tables import prepare  # bench/tables.py

    return prepare(dataset)


def sweep_spec(dataset: str, seed: int, trials: int, quick: bool) -> dict:
    folds, epochs = (3, 10) if quick else (5, 80)
    iters, trees = (30, 30) if quick else (300, 200)
    big = dataset == "diamonds"
    return {
        "name": f"bench-reg-{dataset}-s{seed}",
        "data": {**data_section(dataset), "test_fraction": 0.2, "split_seed": seed, "task": "regression"},
        "cv": {"folds": folds, "stratified": True, "seed": seed},
        "search": {
            "algorithm": "bayesian", "num_trials": trials, "max_concurrent": 2, "metric": "rmse", "seed": seed,
            "checkpoint_every": epochs,
            "space": {
                "family": {"choice": list(FAMILIES)},
                "lr": {"loguniform": [1e-3, 1e-2]},
                "weight_decay": {"loguniform": [1e-5, 1e-2]},
                "mlp.hidden": {"choice": [32, 64, 128, 256]},
                "mlp.depth": {"choice": [1, 2]},
                "mlp.dropout": {"uniform": [0.0, 0.2]},
                "mlp.regression_loss": {"choice": ["mse", "huber"]},
                "hist_gb.learning_rate": {"loguniform": [0.02, 0.2]},
                "hist_gb.max_leaf_nodes": {"choice": [7, 15, 31]},
                "hist_gb.min_samples_leaf": {"choice": [5, 10, 20]},
                "hist_gb.l2_regularization": {"choice": [0.0, 0.1, 1.0]},
                "logreg.C": {"loguniform": [1e-3, 100.0]},
                "extra_trees.max_features": {"uniform": [0.3, 1.0]},
                "extra_trees.min_samples_leaf": {"choice": [1, 2, 4]},
                "knn.n_neighbors": {"choice": [5, 10, 20, 40]},
            },
            "fixed": {"epochs": max(5, epochs // 4) if big else epochs, "batch_size": 128 if big else 32,
                      "hist_gb.max_iter": iters, "hist_gb.rounds": 1,
                      "extra_trees.n_estimators": trees, "extra_trees.rounds": 1},
        },
        "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
        "ensemble": {"selection": "greedy", "top_k": trials, "greedy_rounds": 50, "method": "weighted",
                     "members": "refit"},
        "distill": {"enabled": True, "student": {"family": "mlp", "hidden": 128, "depth": 2}, "alpha": 0.7,
                    "epochs": 10 if quick else (40 if big else 150), "lr": 3e-3, "batch_size": 128 if big else 32},
    }


def run_raysemble(raw: dict) -> dict:
    """What `raysemble run --no-serve` does, in this process on the shared Ray session."""
    from service.postsweep import finish_sweep
    from service.progress import Silent
    from service.spec import parse_spec
    from service.sweep import prepare, run_sweep

    spec = parse_spec(raw)
    start = time.perf_counter()
    sweep = run_sweep(prepare(spec, replace=True), Silent())
    swept = time.perf_counter()
    if not sweep.ranked():
        raise RuntimeError(f"at least one finished trial must hold, but sweep {spec.name!r} has none")
    result = finish_sweep(sweep, use_ray=False, latency_repeats=20)
    rows = {r["model"]: {k: r[k] for k in ("rmse", "mae", "r2", "family", "latency_ms_b1", "n_members")}
            for r in result["rows"]}
    return {"rows": rows, "trials": len(sweep.trials), "finished": len(sweep.ranked()),
            "ensemble": [{k: m[k] for k in ("family", "weight", "mean_score")} for m in result["ensemble"]["trials"]],
            "split": (np.asarray(sweep.train_idx), np.asarray(sweep.test_idx)),
            "sweep_s": round(swept - start, 1), "postsweep_s": round(time.perf_counter() - swept, 1)}


def peer_grids(x_train, quick: bool) -> dict:
    """name -> (estimator, grid); a raw table's peers encode it inside each fold."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    from trainers.tables import is_table

    boost = HistGradientBoostingRegressor(max_iter=30 if quick else 300, early_stopping=False, random_state=0)
    forest = RandomForestRegressor(n_estimators=30 if quick else 200, random_state=0, n_jobs=1)
    if is_table(x_train):
        numeric, categorical = x_train.schema.names("numeric"), x_train.schema.names("categorical")
        onehot = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
            ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                                  OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=32)), categorical)],
            sparse_threshold=0)
        ordinal = ColumnTransformer([
            ("num", "passthrough", numeric),
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                   encoded_missing_value=np.nan), categorical)])
        boost.set_params(categorical_features=list(range(len(numeric), len(numeric) + len(categorical))))
        filled = ColumnTransformer([("num", SimpleImputer(strategy="median"), numeric),
                                    ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                                                          OrdinalEncoder()), categorical)])
        linear, trees, native = (Pipeline([("enc", onehot), ("m", Ridge())]), Pipeline([("enc", filled), ("m", forest)]),
                                 Pipeline([("enc", ordinal), ("m", boost)]))
    else:
        linear = Pipeline([("enc", StandardScaler()), ("m", Ridge())])
        trees, native = Pipeline([("enc", "passthrough"), ("m", forest)]), Pipeline([("enc", "passthrough"), ("m", boost)])
    if quick:
        return {"ridge": (linear, {"m__alpha": [1.0]}), "hist_gb": (native, {"m__learning_rate": [0.1]}),
                "random_forest": (trees, {"m__max_features": [1.0]})}
    return {"ridge": (linear, {"m__alpha": list(np.logspace(-3, 3, 13))}),
            "hist_gb": (native, {"m__learning_rate": [0.03, 0.1], "m__max_leaf_nodes": [7, 31],
                                 "m__min_samples_leaf": [5, 20]}),
            "random_forest": (trees, {"m__max_features": [0.33, 1.0], "m__min_samples_leaf": [1, 5]})}


def run_peers(x_train, y_train, x_test, y_test, folds, quick: bool) -> dict:
    from sklearn.model_selection import GridSearchCV
    from threadpoolctl import threadpool_limits

    from trainers.metrics import all_scores
    from trainers.tables import is_table

    grids = peer_grids(x_train, quick)
    if is_table(x_train):
        x_train, x_test = x_train.frame, x_test.frame
    everything = np.arange(len(y_train))
    cv = [(np.setdiff1d(everything, val), val) for val in folds]
    out = {}
    for name, (estimator, grid) in grids.items():
        start = time.perf_counter()
        search = GridSearchCV(estimator, grid, scoring="neg_root_mean_squared_error", cv=cv, refit=True, n_jobs=2)
        with threadpool_limits(limits=1):
            search.fit(x_train, y_train)
        scores = all_scores(y_test, search.predict(x_test).reshape(-1, 1), "regression")
        out[name] = {**scores, "cv_rmse": float(-search.best_score_), "seconds": round(time.perf_counter() - start, 1)}
    return out


def run_one(dataset: str, seed: int, trials: int, quick: bool) -> dict:
    from trainers.data import DataConfig, holdout_split, load_dataset
    from trainers.kfold import make_folds

    raw = sweep_spec(dataset, seed, trials, quick)
    data = load_dataset(DataConfig(**raw["data"]))
    ours = run_raysemble(raw)
    train_idx, test_idx = holdout_split(data.y, 0.2, seed, "regression")
    sweep_train, sweep_test = ours.pop("split")
    if not (np.array_equal(sweep_train, train_idx) and np.array_equal(sweep_test, test_idx)):
        raise RuntimeError("the same training and held-out rows for sweep and peers must hold, but they differ")
    y_train = data.y[train_idx]
    folds = make_folds(y_train, raw["cv"]["folds"], True, seed, "regression")
    peers = run_peers(data.x[train_idx], y_train, data.x[test_idx], data.y[test_idx], folds, quick)
    return {"dataset": dataset, "seed": seed, "n_train": len(train_idx), "n_test": len(test_idx),
            "target_std": float(np.std(data.y[test_idx])), "raysemble": ours, "peers": peers}


def summarise(runs: list[dict]) -> dict:
    """Means over seeds, and the aims."""
    mean = lambda values: float(np.mean(values))  # noqa: E731
    ours = {n: mean([r["raysemble"]["rows"][n]["rmse"] for r in runs]) for n in runs[0]["raysemble"]["rows"]
            if all(n in r["raysemble"]["rows"] for r in runs)}
    peers = {p: mean([r["peers"][p]["rmse"] for r in runs]) for p in runs[0]["peers"]}
    best_peer = min(peers, key=peers.get)
    ens, single, student = ours["ensemble"], ours["single"], ours.get("student")
    return {"raysemble": ours, "peers": peers, "best_peer": best_peer, "ensemble": ens, "single": single,
            "student": student, "ensemble_le_best_peer": ens <= peers[best_peer] + 1e-12,
            "ensemble_minus_single": ens - single,
            "student_within_5pct": student is not None and student <= ens * (1 + STUDENT_TOLERANCE)}


def print_summary(by_dataset: dict, summaries: dict, console) -> None:
    from rich.table import Table

    table = Table(title="held-out RMSE, mean over seeds (lower is better)")
    for col in ("dataset", "rows train/test", "ensemble", "single", "student", "best peer", "ens <= peer",
                "ens - single", "student within 5%"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    word = lambda ok: "[green]PASS[/green]" if ok else "[red]MISS[/red]"  # noqa: E731
    for dataset, s in summaries.items():
        run = by_dataset[dataset][0]
        table.add_row(dataset, f"{run['n_train']}/{run['n_test']}", f"{s['ensemble']:.4g}", f"{s['single']:.4g}",
                      "" if s["student"] is None else f"{s['student']:.4g}",
                      f"{s['best_peer']} {s['peers'][s['best_peer']]:.4g}", word(s["ensemble_le_best_peer"]),
                      f"{s['ensemble_minus_single']:+.4g}", word(s["student_within_5pct"]))
    console.print(table)
    for dataset, runs in by_dataset.items():
        for r in runs:
            rows = r["raysemble"]["rows"]
            console.print(f"  {dataset} seed {r['seed']}: " + ", ".join(f"{n} {v['rmse']:.4g}" for n, v in rows.items())
                          + "; peers " + ", ".join(f"{p} {v['rmse']:.4g}" for p, v in r["peers"].items())
                          + f"; sweep {r['raysemble']['sweep_s']} s, post-sweep {r['raysemble']['postsweep_s']} s",
                          highlight=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default=None, help="split seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--trials", type=int, default=None, help="trials per sweep (default 20; --quick: 5)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        parser.error(f"--datasets: names from {list(DATASETS)} expected, but got {unknown}")
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else ([0] if args.quick else [0, 1, 2])
    trials = args.trials or (5 if args.quick else 20)
    home = Path(tempfile.mkdtemp(prefix="raysemble-regression-"))
    os.environ.update(RAYSEMBLE_HOME=str(home), MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlflow.db")
    os.environ.pop("RAY_ADDRESS", None)

    import ray
    from rich.console import Console

    console = Console(width=160)
    start = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs = []
    try:
        for dataset in datasets:
            for seed in seeds:
                runs.append(run_one(dataset, seed, trials, args.quick))
                rows = runs[-1]["raysemble"]["rows"]
                console.print(f"{dataset} seed {seed}: ensemble {rows['ensemble']['rmse']:.4g}, single "
                              f"{rows['single']['rmse']:.4g}, student {rows.get('student', {}).get('rmse', np.nan):.4g}; "
                              + ", ".join(f"{p} {v['rmse']:.4g}" for p, v in runs[-1]["peers"].items()), highlight=False)
    finally:
        ray.shutdown()
        shutil.rmtree(home, ignore_errors=True)
    by_dataset = {d: [r for r in runs if r["dataset"] == d] for d in datasets}
    summaries = {d: summarise(rs) for d, rs in by_dataset.items()}
    print_summary(by_dataset, summaries, console)
    gap = float(np.mean([s["ensemble_minus_single"] for s in summaries.values()]))
    console.print(f"ensemble below its best single trial on average ({gap:+.4g} RMSE): {gap < 0}; "
                  f"wall {time.perf_counter() - start:.0f} s", highlight=False)
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "summaries": summaries}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
