"""Batch-1 latency of one member of each family on a raw table, and of five such members together.

    .venv/bin/python bench/member_latency.py

The table is serving.demo.people() (numbers with gaps, words, a flag, a 3-class word target). Each
family is fitted with its defaults on the whole table, then timed through an EnsemblePredictor, on
one thread (as the judge and a serving replica run): median ms of 30 calls, each on a new Table built
from a one-row DataFrame (as a request brings it). The five members are one model five times: one
table encoding, which the predictor runs once per call.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAMILIES = ("logreg", "lightgbm", "xgboost", "catboost", "hist_gb", "random_forest", "extra_trees", "knn", "svc",
            "mlp")


def median_ms(fn, calls: int = 30) -> float:
    fn()
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> None:
    import torch

    from serving.demo import people
    from trainers.data import DataConfig, load_dataset
    from trainers.ensemble.predictor import EnsemblePredictor
    from trainers.families import start_fit
    from trainers.families.config import ModelConfig
    from trainers.train_config import split_params

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp())
    frame = people()
    frame.to_csv(work / "people.csv", index=False)
    data = load_dataset(DataConfig(source=str(work / "people.csv"), target="label"))
    base = ModelConfig(in_features=data.x.shape[1], n_classes=data.n_classes)
    row = frame.iloc[:1].drop(columns=["label"])
    print(f"{'family':14s} {'1 member':>9s} {'5 members':>10s}  (ms per row, batch 1)")
    for name in FAMILIES:
        cfg, fit_cfg = split_params({"family": name}, base)
        fit = start_fit(cfg, fit_cfg, data.x, data.y, 0)
        for _ in range(fit.rounds):
            fit.advance()
        one = EnsemblePredictor([fit.model], [fit.model_cfg], classes=data.classes)
        five = EnsemblePredictor([fit.model] * 5, [fit.model_cfg] * 5, classes=data.classes)
        print(f"{name:14s} {median_ms(lambda: one.predict_proba(row)):9.2f} "
              f"{median_ms(lambda: five.predict_proba(row)):10.2f}", flush=True)


if __name__ == "__main__":
    main()
