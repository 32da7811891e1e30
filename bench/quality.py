"""Quality on the held-out split: raysemble's best single trial / ensemble / student beside tuned
scikit-learn peers (an RBF SVC and a logistic regression, each grid-searched on the sweep's own
CV folds of the training split, then refitted on all of it).

    .venv/bin/python bench/quality.py [--spec examples/digits.yaml] [--json]

Uses the spec's sweep under RAYSEMBLE_HOME (default ./.raysemble) as `raysemble run` left it;
whatever is missing is done first: the sweep (on a local Ray) and/or the post-sweep steps.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.judge import latency_per_sample  # noqa: E402
from trainers.metrics import METRICS, all_scores, confusion  # noqa: E402

SKLEARN_SCORING = {"accuracy": "accuracy", "precision_macro": "precision_macro", "recall_macro": "recall_macro",
                   "f1_macro": "f1_macro", "log_loss": "neg_log_loss", "roc_auc": "roc_auc_ovr"}
COLUMNS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss")


def peers():
    """(name, estimator, grid). Scaling inside the pipeline: fitted on each CV training part only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return [
        ("sklearn SVC (RBF)", make_pipeline(StandardScaler(), SVC(kernel="rbf", random_state=0)),
         {"svc__C": [1, 3, 10, 30, 100], "svc__gamma": ["scale", 0.003, 0.01, 0.03]}),
        ("sklearn logistic regression", make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
         {"logisticregression__C": [0.01, 0.03, 0.1, 0.3, 1, 3, 10]}),
    ]


def fit_peer(estimator, grid: dict, x, y, folds: list[np.ndarray], metric: str):
    """Grid search on the given validation folds, then refit the best on all training rows.
    Returns (fitted model, model for probabilities, best params, best CV score): an SVC has no
    probabilities of its own, so they come from a sigmoid-calibrated copy (scikit-learn's
    replacement for SVC(probability=True)); its class decisions stay the SVC's."""
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import GridSearchCV

    everything = np.arange(len(y))
    cv = [(np.setdiff1d(everything, val), val) for val in folds]
    search = GridSearchCV(estimator, grid, scoring=SKLEARN_SCORING[metric], cv=cv, refit=False, n_jobs=1)
    search.fit(x, y)
    best = clone(estimator).set_params(**search.best_params_).fit(x, y)
    proba_model = best
    if not hasattr(best, "predict_proba") or "svc__C" in grid:
        proba_model = CalibratedClassifierCV(clone(best), ensemble=False).fit(x, y)
    return best, proba_model, search.best_params_, float(search.best_score_)


def peer_row(name: str, model, proba_model, x_test, y_test) -> dict:
    from sklearn import metrics as skm

    proba = proba_model.predict_proba(x_test)
    pred = model.predict(x_test)  # the SVC's own decision, not the argmax of calibrated probabilities
    scores = all_scores(y_test, proba)
    scores["accuracy"] = float(skm.accuracy_score(y_test, pred))
    for key, fn in (("precision_macro", skm.precision_score), ("recall_macro", skm.recall_score),
                    ("f1_macro", skm.f1_score)):
        scores[key] = float(fn(y_test, pred, average="macro", zero_division=0))
    latency = {b: latency_per_sample({"m": proba_model.predict_proba}, x_test, b, 50 if b == 1 else 10)["m"]
               for b in (1, 256)}
    return {"model": name, **{k: scores[k] for k in COLUMNS}, "latency_ms_b1": 1e3 * latency[1],
            "latency_ms_b256": 1e3 * latency[256], "confusion": confusion(y_test, proba)}


def ensure_sweep(spec_path: Path):
    """The finished, post-processed sweep of this spec; runs what is missing."""
    from service.postsweep import finish_sweep
    from service.spec import load_spec
    from service.store import SweepNotFound, load_sweep

    spec = load_spec(spec_path)
    try:
        sweep = load_sweep(spec.name)
        finished = bool(sweep.ranked())
    except SweepNotFound:
        sweep, finished = None, False
    if not finished:
        from service.progress import SweepProgress
        from service.sweep import prepare, ray_init, run_sweep

        if sweep is None:
            prepare(spec)
        ray_init(None)
        sweep = run_sweep(spec, SweepProgress(), resume=True)
    state = Path(sweep.dir) / "postsweep" / "state.json"
    result = json.loads(state.read_text()) if state.exists() else finish_sweep(sweep, use_ray=False)
    return sweep, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=Path("examples/digits.yaml"))
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)

    from trainers.kfold import make_folds

    sweep, result = ensure_sweep(args.spec)
    spec, data = sweep.spec, sweep.dataset()
    x_train, y_train = data.x[sweep.train_idx], data.y[sweep.train_idx]
    x_test, y_test = data.x[sweep.test_idx], data.y[sweep.test_idx]
    folds = make_folds(y_train, spec.cv.folds, spec.cv.stratified, spec.cv.seed)  # the sweep's own folds
    rows = [{k: r[k] for k in ("model", *COLUMNS, "latency_ms_b1", "latency_ms_b256")} for r in result["rows"]]
    tuned = {}
    for name, estimator, grid in peers():
        start = time.perf_counter()
        model, proba_model, params, cv_score = fit_peer(estimator, grid, x_train, y_train, folds,
                                                        spec.search.metric)
        tuned[name] = {"params": params, f"cv_{spec.search.metric}": cv_score,
                       "search_s": round(time.perf_counter() - start, 1)}
        row = peer_row(name, model, proba_model, x_test, y_test)
        rows.append({k: row[k] for k in ("model", *COLUMNS, "latency_ms_b1", "latency_ms_b256")})

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{sweep.name}: held-out test split ({len(y_test)} rows), "
                        f"{spec.cv.folds}-fold CV on {len(y_train)} training rows")
    for col in ("model", *COLUMNS, "ms/sample b1", "ms/sample b256"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r["model"], *(f"{r[k]:.4f}" for k in COLUMNS), f"{r['latency_ms_b1']:.3f}",
                      f"{r['latency_ms_b256']:.4f}")
    Console(stderr=args.json, width=160).print(table)
    if args.json:
        print(json.dumps({"sweep": sweep.name, "rows": rows, "peers": tuned,
                          "metric": spec.search.metric, "mode": METRICS[spec.search.metric]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
