"""A small finished sweep on disk, in service.store's layout, for tests of what comes after search.

Real tiny models (FoldTrainer on scikit-learn digits), real fold files, real OOF predictions;
only the search itself is skipped. Rows: the held-out split comes from trainers.data.holdout_split
exactly as the sweep core makes it, and only training-split rows are ever trained on here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sklearn.model_selection import StratifiedKFold

from trainers.loop import torch_threads
from service.spec import SweepSpec
from service.store import Sweep, TrialRecord
from trainers.checkpoint import save_model
from trainers.data import load_dataset, split_indices
from trainers.loop import FoldTrainer
from trainers.train_config import split_params
from trainers.metrics import score

# three MLP trials that differ in shape (so the predictor has more than one vmap group)
TRIALS = ({"lr": 3e-3, "hidden": 32}, {"lr": 1e-2, "hidden": 16}, {"lr": 3e-4, "hidden": 32})


def fake_spec(name: str, mlflow_uri: str | None = None, **sections) -> SweepSpec:
    raw = {"name": name, "data": {"source": "sklearn:digits", "test_fraction": 0.2, "image_shape": [1, 8, 8]},
           "cv": {"folds": 3, "seed": 0},
           "search": {"metric": "accuracy", "fixed": {"epochs": 4, "batch_size": 64}},
           "ensemble": {"top_k": 3, "method": "soft_vote"},
           "distill": {"student": {"hidden": 16}, "epochs": 3},
           "tracking": {"mlflow_uri": mlflow_uri, "experiment": name}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return SweepSpec.model_validate(raw)


def _train_trial(directory: Path, trial_id: str, params: dict, spec: SweepSpec, x: np.ndarray,
                 y: np.ndarray, n_classes: int) -> TrialRecord:
    directory.mkdir(parents=True, exist_ok=True)
    base = spec.base_model_config(x.shape[1], n_classes)
    model_cfg, train_cfg = split_params({**spec.search.fixed, **params}, base)
    metric = spec.search.metric
    fold_scores = []
    splitter = StratifiedKFold(spec.cv.folds, shuffle=True, random_state=spec.cv.seed)
    for k, (fit, val) in enumerate(splitter.split(x, y)):
        trainer = FoldTrainer(model_cfg, train_cfg, x[fit], y[fit], seed=spec.cv.seed * 1000 + k)
        curve = {"epoch": [], "train_loss": [], "val_loss": [], f"val_{metric}": []}
        for epoch in range(train_cfg.epochs):
            loss = trainer.train_epoch()
            proba = trainer.predict_proba(x[val])
            for key, value in (("epoch", epoch + 1), ("train_loss", loss), ("val_loss", score("log_loss", y[val], proba)),
                               (f"val_{metric}", score(metric, y[val], proba))):
                curve[key].append(value)
        save_model(directory / f"fold_{k}.pt", trainer.model, model_cfg, extra={"params": params, "fold": k})
        np.save(directory / f"oof_{k}.npy", proba)
        np.save(directory / f"val_idx_{k}.npy", val)
        (directory / f"curves_{k}.json").write_text(json.dumps(curve))
        fold_scores.append(curve[f"val_{metric}"][-1])
    return TrialRecord(trial_id, dict(params), "TERMINATED", float(np.mean(fold_scores)), fold_scores,
                       epochs=train_cfg.epochs, checkpoint_dir=directory)


def make_fake_sweep(root: Path, spec: SweepSpec, trials=TRIALS, with_mlflow_run: bool = True) -> Sweep:
    """Train `trials` on the training split and return a Sweep over root/<name>."""
    directory = Path(root) / spec.name
    data = load_dataset(spec.data)
    train_idx, test_idx = split_indices(data, spec.data)
    x, y = data.x[train_idx], data.y[train_idx]
    with torch_threads(1):  # as a 1-CPU trial worker; far faster on a busy shared machine
        records = [_train_trial(directory / "trials" / f"t{i}", f"t{i}", p, spec, x, y, data.n_classes)
                   for i, p in enumerate(trials)]
    run_id = experiment_id = None
    if with_mlflow_run:
        from service.tracking import client_for, start_sweep_run

        client = client_for(spec.locations())
        experiment_id, run_id = start_sweep_run(client, spec, spec.locations())
        client.set_terminated(run_id)  # as the sweep core leaves it
    return Sweep(spec.name, directory, spec, train_idx, test_idx, records, run_id, experiment_id, spec.locations())
