"""Ensemble choices compared on the same trials: one sweep per (table, seed), its ensemble built several ways.

    .venv/bin/python bench/ensemble_variants.py [--tables males,benefits,flchain] [--seeds 0,1,2] [--budget 120]

Each (table, split seed) runs one tabular-preset sweep of `--budget` seconds (bench/tabular.py's split and
spec), then builds its ensemble from the same finished trials as the preset does (greedy selection on the
search metric, stacking if better, refits) and with one thing changed: greedy selection on the log loss, fold
members instead of refits, the best single trial as a contender of the held-out choice or not. Also the best
trial's own fold bag (the judge's "single" row). Paired on one sweep, the search's own noise cancels out of the
differences.
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

import tabular  # bench/tabular.py: the split and the tables

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


VARIANTS = {"preset": {}, "log_loss_selection": {"selection_metric": "log_loss"}, "fold_members": {"members": "folds"},
            "single_if_better": {"single": "if_better"}, "preset_without_single": {"single": "off"}}


def paired(name: str, seed: int, budget: float, home: Path) -> dict:
    from service.postsweep import PostSweep
    from service.progress import Silent
    from service.sweep import prepare, run_sweep
    from trainers.ensemble.build import build_ensemble
    from trainers.ensemble.predictor import EnsemblePredictor
    from trainers.ensemble.refit import Refitter

    train, test, target = tabular.split(name, seed, home)
    spec = tabular.spec_for(f"{name}-{seed}-variants", budget, train, test, target)
    sweep = run_sweep(prepare(spec, replace=True), Silent())
    post = PostSweep(sweep, use_ray=False)
    search = spec.search

    def accuracy(predictor) -> float:
        return float((predictor.predict_proba(post.x_test).argmax(1) == post.y_test).mean())

    def build(cfg) -> tuple[float, dict]:
        refit = Refitter(post.x_train, post.y_train, search.fixed, spec.cv.seed)
        began = time.perf_counter()
        predictor, info = build_ensemble(post.ranked, cfg, y_train=post.y_train, metric=search.metric,
                                         mode=search.mode, classes=post.classes, refit=refit, task=post.task)
        return accuracy(predictor), {**info, "build_s": round(time.perf_counter() - began, 1)}

    results, info = {}, {}
    for variant, change in VARIANTS.items():
        results[variant], info[variant] = build(spec.ensemble.model_copy(update=change))
    best = post.ranked[0]
    results["single"] = accuracy(EnsemblePredictor.from_files(best.fold_model_paths(), classes=post.classes,
                                                              kind="single"))
    preset = info["preset"]
    weights: dict[str, float] = {}
    for t in preset["trials"]:
        weights[t["family"]] = round(weights.get(t["family"], 0.0) + t["weight"], 3)
    return {"table": name, "seed": seed, "trials": len(sweep.trials), "method": preset["method"],
            "weights": weights, "best_family": best.params.get("family"), **results,
            "build_s": {k: v["build_s"] for k, v in info.items()},
            "kept": {k: v.get("stacking_guard", {}).get("kept") for k, v in info.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default="males,benefits,flchain")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="raysemble-variants-"))
    os.environ["RAYSEMBLE_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    results = []
    try:
        for name in args.tables.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                results.append(paired(name, seed, args.budget, home))
                print(json.dumps(results[-1]), flush=True)
                if args.out:
                    args.out.write_text(json.dumps(results, indent=1))
    finally:
        ray.shutdown()
        shutil.rmtree(home, ignore_errors=True)
    for key in (*VARIANTS, "single"):
        print(f"{key}: mean {np.mean([r[key] for r in results]):.4f}, minus preset "
              f"{np.mean([r[key] - r['preset'] for r in results]):+.4f} over {len(results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
