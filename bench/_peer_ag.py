"""Runs in the AutoGluon venv (.bench-data/ag, bench/tabular.py makes it): one peer on one split, one
JSON line on stdout. Not imported by raysemble.

    python bench/_peer_ag.py TRAIN.csv TEST.csv TARGET SECONDS autogluon:medium_quality|autogluon:best_quality|catboost
"""
import json
import statistics
import sys
import tempfile
import time

import numpy as np
import pandas as pd


def latency_ms(predict, row, repeats: int = 20) -> float:
    predict(row)  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(row)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    train_path, test_path, target, seconds, peer = sys.argv[1:6]
    train, test = pd.read_csv(train_path), pd.read_csv(test_path)
    y_test = test[target].astype(str).to_numpy()
    began = time.time()
    if peer.startswith("autogluon:"):
        from autogluon.tabular import TabularPredictor

        train[target] = train[target].astype(str)
        predictor = TabularPredictor(label=target, eval_metric="accuracy", path=tempfile.mkdtemp(), verbosity=0)
        predictor.fit(train, time_limit=float(seconds), presets=peer.split(":", 1)[1], num_cpus=2, num_gpus=0)
        fit_s = time.time() - began
        features = test.drop(columns=[target])
        predicted = predictor.predict(features).astype(str).to_numpy()
        predictor.persist()  # models in memory: the fastest it predicts
        latency = latency_ms(predictor.predict, features.iloc[:1])
    else:
        from catboost import CatBoostClassifier

        x, y = train.drop(columns=[target]), train[target].astype(str)
        cats = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
        prep = lambda f: f.assign(**{c: f[c].fillna("<missing>").astype(str) for c in cats})  # noqa: E731
        model = CatBoostClassifier(thread_count=2, cat_features=cats, verbose=0, random_seed=0,
                                   allow_writing_files=False)
        model.fit(prep(x), y)
        fit_s = time.time() - began
        features = prep(test.drop(columns=[target]))
        predicted = np.asarray(model.predict(features)).reshape(-1).astype(str)
        latency = latency_ms(model.predict, features.iloc[:1])
    print(json.dumps({"accuracy": float((predicted == y_test).mean()), "fit_s": fit_s, "latency_ms_b1": latency}))


if __name__ == "__main__":
    main()
