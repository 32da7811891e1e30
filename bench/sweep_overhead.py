"""Sweep overhead: raysemble on Ray (Ray already started) vs a plain in-process Optuna loop.

Fixed workload: digits, 8 trials, 3 folds, 30 epochs, 2 trials at a time, the same torch k-fold
code (trainers.kfold.train_folds) and the same TPE sampler and seed. Run:

    .venv/bin/python bench/sweep_overhead.py [--paths in_trial,ray_train]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# bench/serving.py would shadow the serving package: the project root comes first
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPACE = {"lr": {"loguniform": [1e-3, 1e-2]}, "hidden": {"choice": [128, 256, 512]},
         "dropout": {"uniform": [0.0, 0.3]}}
FIXED = {"epochs": 30, "batch_size": 64}


def spec_dict(name: str, executor: str) -> dict:
    return {"name": name, "data": {"source": "sklearn:digits", "image_shape": [1, 8, 8]},
            "cv": {"folds": 3, "seed": 0},
            "search": {"algorithm": "bayesian", "num_trials": 8, "max_concurrent": 2, "metric": "accuracy",
                       "space": SPACE, "fixed": FIXED},
            "resources": {"workers_per_trial": 1, "cpus_per_worker": 1, "executor": executor}}


def plain_loop() -> tuple[float, float]:
    """Optuna TPE + the same k-fold code in this process, n_jobs=2 threads."""
    import optuna
    import torch

    from service.spec import parse_spec
    from trainers.data import holdout_split, load_dataset
    from trainers.kfold import TrialData, make_folds, train_folds

    torch.set_num_threads(1)
    spec = parse_spec(spec_dict("plain", "in_trial"))
    ds = load_dataset(spec.data)
    tr, _ = holdout_split(ds.y, spec.data.test_fraction, spec.data.split_seed)
    x, y = ds.x[tr], ds.y[tr]
    # the plain loop still writes each trial's final fold models and OOF once, as a sweep must
    data = TrialData(x, y, make_folds(y, 3, True, 0), spec.base_model_config(64, 10).model_dump(mode="json"),
                     "accuracy", checkpoint_every=10**9)

    def objective(trial: optuna.Trial) -> float:
        params = {"lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True),
                  "hidden": trial.suggest_categorical("hidden", [128, 256, 512]),
                  "dropout": trial.suggest_float("dropout", 0.0, 0.3), **FIXED}
        return train_folds(data, params, [0, 1, 2], lambda m, d: None)["accuracy"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    study.optimize(objective, n_trials=8, n_jobs=2)
    return time.perf_counter() - start, study.best_value


def raysemble_sweep(executor: str) -> tuple[float, float, list[float]]:
    """(wall s, best CV score, per trial: seconds from its trial process starting to its Ray Train worker
    starting — the Train run's start-up; empty for in_trial)."""
    from service.progress import Silent
    from service.spec import parse_spec
    from service.sweep import run_sweep

    spec = parse_spec(spec_dict(f"bench-{executor}-{int(time.time())}", executor))
    start = time.perf_counter()
    sweep = run_sweep(spec, Silent())
    return time.perf_counter() - start, sweep.ranked()[0].mean_score, train_startups(sweep.dir / "attempts.jsonl")


def train_startups(attempts_log: Path) -> list[float]:
    import json

    lines = [json.loads(line) for line in attempts_log.read_text().splitlines()]
    started = {a["trial_id"]: a["time"] for a in lines if a["kind"] == "train"}
    return [a["time"] - started[a["trial_id"]] for a in lines if a["kind"] == "worker" and a["trial_id"] in started]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default="in_trial,ray_train")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="raysemble-bench-")
    os.environ["RAYSEMBLE_HOME"] = home
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"

    base, base_best = plain_loop()
    print(f"plain Optuna loop (n_jobs=2):        {base:7.1f} s   best CV accuracy {base_best:.4f}", flush=True)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for path in args.paths.split(","):
            wall, best, startups = raysemble_sweep(path)
            print(f"raysemble sweep, {path:<10} path:   {wall:7.1f} s   best CV accuracy {best:.4f}   "
                  f"ratio {wall / base:.2f}x", flush=True)
            if startups:
                startups.sort()
                print(f"  Ray Train start-up per trial (trial process -> worker running): median "
                      f"{startups[len(startups) // 2]:.1f} s, min {startups[0]:.1f} s, max {startups[-1]:.1f} s "
                      f"over {len(startups)} trials; per-epoch cost of the plain loop: "
                      f"{base / (8 * FIXED['epochs'] / 2):.3f} s (8 trials x {FIXED['epochs']} epochs, 2 at a time)",
                      flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
