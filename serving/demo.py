"""Small ensemble and student bundles on scikit-learn's digits, without a sweep.

For tests, benchmarks, and trying the server: `python -m serving.demo DIR` writes DIR/ensemble
and DIR/student, ready for `raysemble serve DIR/ensemble --student DIR/student`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from trainers.data import DataConfig, load_dataset
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.loop import FoldTrainer, TrainConfig
from trainers.models import ModelConfig


def digits() -> tuple[np.ndarray, np.ndarray, list]:
    data = load_dataset(DataConfig(source="sklearn:digits"))
    return data.x, data.y, data.classes


def _train(cfg: ModelConfig, x: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    trainer = FoldTrainer(cfg, TrainConfig(epochs=epochs, batch_size=64, lr=3e-3), x, y, seed=seed)
    for _ in range(epochs):
        trainer.train_epoch()
    return trainer.model.eval()


def make_bundles(directory: str | Path, members: int = 5, epochs: int = 3, hidden: int = 64,
                 method: str = "soft_vote", seed: int = 0) -> tuple[Path, Path]:
    """(ensemble dir, student dir): `members` MLPs and one narrower student, each a few epochs."""
    directory = Path(directory)
    x, y, classes = digits()
    cfg = ModelConfig(family="mlp", in_features=x.shape[1], n_classes=len(classes), hidden=hidden, depth=2)
    models = [_train(cfg, x, y, epochs, seed + i) for i in range(members)]
    ensemble = EnsemblePredictor(models, [cfg] * members, method=method, classes=classes, kind="ensemble")
    small = cfg.model_copy(update={"hidden": max(8, hidden // 4)})
    student = EnsemblePredictor([_train(small, x, y, epochs, seed + 1000)], [small], method="soft_vote",
                                classes=classes, kind="student")
    return ensemble.save(directory / "ensemble"), student.save(directory / "student")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m serving.demo DIR")
    for path in make_bundles(sys.argv[1]):
        print(path)
