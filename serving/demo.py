"""Small ensemble and student bundles on scikit-learn's digits, without a sweep.

For tests, benchmarks, and trying the server: `python -m serving.demo DIR` writes DIR/ensemble
and DIR/student, ready for `raysemble serve DIR/ensemble --student DIR/student`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from trainers.data import DataConfig, load_dataset
from trainers.ensemble.combiners import DEFAULT_COMBINER
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families import get_family
from trainers.families.config import ModelConfig
from trainers.loop import FoldTrainer
from trainers.train_config import TrainConfig, split_params


def digits() -> tuple[np.ndarray, np.ndarray, list]:
    data = load_dataset(DataConfig(source="sklearn:digits"))
    return data.x, data.y, data.classes


def _train(cfg: ModelConfig, x: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    trainer = FoldTrainer(cfg, TrainConfig(epochs=epochs, batch_size=64, lr=3e-3), x, y, seed=seed)
    for _ in range(epochs):
        trainer.train_epoch()
    return trainer.model.eval()


def _fit_other(params: dict, base: ModelConfig, x: np.ndarray, y: np.ndarray, seed: int):
    """A member of another family: flat hyperparameters with its "family" (the rest its defaults)."""
    cfg, fit_cfg = split_params(dict(params), base)
    fit = get_family(cfg.family).start(cfg, fit_cfg, x, y, seed)
    for _ in range(fit.rounds):
        fit.advance()
    return fit.model, cfg


def make_bundles(directory: str | Path, members: int = 5, epochs: int = 3, hidden: int = 64,
                 method: str = DEFAULT_COMBINER, seed: int = 0, others: tuple[dict, ...] = ()) -> tuple[Path, Path]:
    """(ensemble dir, student dir): `members` networks of the default family (an MLP of `hidden` units
    per layer), plus one member per entry of `others` (flat hyperparameters naming their "family": a
    mixed ensemble), and one narrower student, each a few epochs."""
    directory = Path(directory)
    x, y, classes = digits()
    cfg = ModelConfig(in_features=x.shape[1], n_classes=len(classes), hidden=hidden, depth=2)
    models = [_train(cfg, x, y, epochs, seed + i) for i in range(members)]
    configs = [cfg] * members
    for i, params in enumerate(others):
        model, other = _fit_other(params, cfg, x, y, seed + 100 + i)
        models.append(model)
        configs.append(other)
    ensemble = EnsemblePredictor(models, configs, method=method, classes=classes, kind="ensemble")
    small = cfg.model_copy(update={"hidden": max(8, hidden // 4)})
    student = EnsemblePredictor([_train(small, x, y, epochs, seed + 1000)], [small], classes=classes,
                                kind="student")
    return ensemble.save(directory / "ensemble"), student.save(directory / "student")


def people(rows: int = 300, seed: int = 0):
    """A small table as users bring them: numbers with gaps, words, a yes/no flag, a word target."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, rows)
    city = rng.choice(["paris", "rome", "oslo", "lima"], rows)
    member = rng.choice([True, False], rows)
    income = rng.normal(50, 10, rows) + 8 * (city == "oslo")
    label = np.where(age + 10 * (city == "paris") > 45, "buys", np.where(member, "browses", "leaves"))
    frame = pd.DataFrame({"age": age, "city": city, "member": member, "income": income, "label": label})
    frame.loc[::9, "age"] = np.nan
    frame.loc[::13, "city"] = None
    frame.loc[::7, "income"] = np.nan
    return frame


def make_table_bundles(directory: str | Path, members: tuple[dict, ...], seed: int = 0) -> tuple[Path, Path]:
    """(ensemble dir, student dir) on `people()`, a raw table: each member (flat hyperparameters with
    their "family") fits its own encoding of the rows; the student is a small MLP."""
    from trainers.families import start_fit

    directory = Path(directory)
    table_dir = directory / "data"
    table_dir.mkdir(parents=True, exist_ok=True)
    people().to_csv(table_dir / "people.csv", index=False)
    data = load_dataset(DataConfig(source=str(table_dir / "people.csv"), target="label"))
    base = ModelConfig(in_features=data.x.shape[1], n_classes=data.n_classes)
    fitted = []
    for i, params in enumerate((*members, {"hidden": 8, "epochs": 4})):
        cfg, fit_cfg = split_params(dict(params), base)
        fit = start_fit(cfg, fit_cfg, data.x, data.y, seed + i)
        for _ in range(fit.rounds):
            fit.advance()
        fitted.append((fit.model, fit.model_cfg))
    ensemble = EnsemblePredictor([m for m, _ in fitted[:-1]], [c for _, c in fitted[:-1]], classes=data.classes)
    student = EnsemblePredictor([fitted[-1][0]], [fitted[-1][1]], classes=data.classes, kind="student")
    return ensemble.save(directory / "ensemble"), student.save(directory / "student")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m serving.demo DIR")
    for path in make_bundles(sys.argv[1]):
        print(path)
