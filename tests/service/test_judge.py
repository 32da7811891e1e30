"""Judgement rows: metrics from scikit-learn, latency per sample, the printed tables; a row per
model family and families in the report."""
import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from sklearn.datasets import make_classification
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from fake_sweep import fake_spec
from service.judge import (MIN_REPEATS, WARM_CALLS_BEFORE_EACH, WARMUP_CALLS, judge, judged_trials, latency_per_sample, markdown_table, print_rows, trial_family,
                           trial_predictor)
from trainers.loop import torch_threads
from service.report import write_report
from service.store import Sweep, TrialRecord
from trainers.checkpoint import load_model, save_model
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families import get_family
from trainers.train_config import split_params
from trainers.families.config import ModelConfig
from trainers.families import build_model


def _predictor(n, seed):
    torch.manual_seed(seed)
    cfg = ModelConfig(in_features=4, n_classes=3, hidden=8)
    return EnsemblePredictor([build_model(cfg) for _ in range(n)], [cfg] * n)


def test_rows_match_sklearn_and_have_latency():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.integers(0, 3, 30)
    preds = {"single": _predictor(1, 0), "ensemble": _predictor(4, 1)}
    rows = judge(preds, x, y, repeats=3)
    assert [r.model for r in rows] == ["single", "ensemble"]
    for row, p in zip(rows, preds.values()):
        proba = p.predict_proba(x)
        assert row.accuracy == np.mean(proba.argmax(1) == y)
        assert np.asarray(row.confusion).sum() == 30 and row.n_test == 30
        assert row.latency_ms_b1 > 0 and row.latency_ms_b256 > 0
        assert "confusion" not in row.metrics() and "accuracy" in row.metrics()
    assert rows[1].n_members == 4
    text = markdown_table(rows)
    assert text.count("\n") == 3 and "| ensemble |" in text
    out = io.StringIO()
    print_rows(rows, Console(file=out, width=200))
    assert "ensemble" in out.getvalue()


def test_latency_tiles_rows_up_to_the_batch():
    seen = []
    result = latency_per_sample({"a": lambda rows: seen.append(rows.shape)}, np.zeros((3, 4)), 256, repeats=2)
    assert set(seen) == {(256, 4)} and len(seen) == WARMUP_CALLS + 2  # no untimed calls between repeats at batch 256
    assert result["a"] >= 0


@pytest.mark.parametrize("limit, calls", [(None, 20), (0.0, MIN_REPEATS)])
def test_latency_stops_repeating_once_its_time_is_spent_but_not_before_the_minimum(limit, calls):
    seen = []
    latency_per_sample({"a": lambda rows: seen.append(1), "b": lambda rows: None}, np.zeros((3, 4)), 1, repeats=20,
                       time_limit_s=limit)
    assert len(seen) == WARMUP_CALLS + calls * (1 + WARM_CALLS_BEFORE_EACH)


def test_a_predictor_is_timed_warm_not_straight_after_another_one():
    """A small model whose first call after a big one runs cold (here: 20 ms) is timed as a server
    answering its own stream of requests sees it, not at the cold figure."""
    state = {"cold": True}

    def small(rows):
        if state["cold"]:
            time.sleep(0.02)
        state["cold"] = False

    def big(rows):
        state["cold"] = True

    result = latency_per_sample({"big": big, "small": small}, np.zeros((3, 4)), 1, repeats=5)
    assert result["small"] < 0.01, result


# --- a sweep that searched two families: rows per family, families in the report ---------------

TWO_FAMILIES = {"t0": {"family": "logreg", "C": 1.0}, "t1": {"family": "logreg", "C": 1e-4},
                "t2": {"family": "mlp", "hidden": 16, "epochs": 15, "lr": 1e-2, "batch_size": 32}}


def _fit_trial(directory: Path, trial_id: str, params: dict, x, y) -> TrialRecord:
    """Fold models of any family fitted through its Fit and saved as the sweep core saves them."""
    model_cfg, fit_cfg = split_params(params, ModelConfig(in_features=x.shape[1], n_classes=3))
    family, scores = get_family(model_cfg.family), []
    directory.mkdir(parents=True)
    for k, (fit_rows, val) in enumerate(StratifiedKFold(3, shuffle=True, random_state=0).split(x, y)):
        fit = family.start(model_cfg, fit_cfg, x[fit_rows], y[fit_rows], seed=k)
        for _ in range(fit.rounds):
            fit.advance()
        save_model(directory / f"fold_{k}.pt", fit.model, model_cfg)
        scores.append(float(np.mean(fit.predict_proba(x[val]).argmax(1) == y[val])))
    return TrialRecord(trial_id, dict(params), "TERMINATED", float(np.mean(scores)), scores, checkpoint_dir=directory)


@pytest.fixture(scope="module")
def two_families(tmp_path_factory):
    x, y = make_classification(240, 8, n_informative=5, n_classes=3, random_state=0)
    x = x.astype(np.float32)
    root = tmp_path_factory.mktemp("two_families")
    with torch_threads(1):
        trials = [_fit_trial(root / tid, tid, p, x[:180], y[:180]) for tid, p in TWO_FAMILIES.items()]
    return sorted(trials, key=lambda t: t.mean_score, reverse=True), x[180:], y[180:]


def test_a_row_per_family_is_its_best_trial_judged_like_single(two_families):
    ranked, x_test, y_test = two_families
    trials = judged_trials(ranked)
    by_id = {t.trial_id: t for t in ranked}
    assert by_id["t0"].mean_score > by_id["t1"].mean_score  # C=1e-4 underfits: t0 is the better logreg
    assert list(trials)[0] == "single" and trials["single"] is ranked[0]
    assert set(trials) == {"single", "best_logreg", "best_mlp"}
    assert trials["best_logreg"] is by_id["t0"] and trials["best_mlp"] is by_id["t2"]
    predictors = {name: trial_predictor(t) for name, t in trials.items()}
    rows = {r.model: r for r in judge(predictors, x_test, y_test, repeats=3, trials=trials)}
    for family in ("logreg", "mlp"):
        row, trial = rows[f"best_{family}"], trials[f"best_{family}"]
        assert (row.family, row.trial_id, row.n_members) == (family, trial.trial_id, 3)
        # its fold models averaged, computed here without the predictor
        proba = np.mean([get_family(family).proba(m, x_test) for m, _, _ in map(load_model, trial.fold_model_paths())],
                        axis=0)
        assert row.accuracy == np.mean(proba.argmax(1) == y_test)
        assert row.log_loss == pytest.approx(log_loss(y_test, proba / proba.sum(1, keepdims=True)))
    assert rows["single"].trial_id == ranked[0].trial_id
    assert rows["single"].accuracy == rows[f"best_{ranked[0].params['family']}"].accuracy
    assert "| best_logreg | logreg | t0 |" in markdown_table(list(rows.values()))


def test_one_family_gets_no_extra_rows_and_family_falls_back_to_the_checkpoint(two_families):
    ranked, _, _ = two_families
    logregs = [t for t in ranked if t.params["family"] == "logreg"]
    assert list(judged_trials(logregs)) == ["single"]
    bare = dataclasses.replace(ranked[-1], params={k: v for k, v in ranked[-1].params.items() if k != "family"})
    assert trial_family(bare) == ranked[-1].params["family"]
    assert trial_family(TrialRecord("t9", {}, "ERROR", float("nan"), [])) is None
    with pytest.raises(ValueError, match="at least one finished trial must hold"):
        judged_trials([])


def test_report_shows_each_members_family(two_families, tmp_path):
    ranked, x_test, y_test = two_families
    trials = judged_trials(ranked)
    members = [trials["best_mlp"], trials["best_logreg"]]
    ensemble = EnsemblePredictor.from_files([p for t in members for p in t.fold_model_paths()])
    predictors = {**{n: trial_predictor(t) for n, t in trials.items()}, "ensemble": ensemble}
    rows = judge(predictors, x_test, y_test, repeats=3, trials=trials)
    assert rows[-1].family == "logreg+mlp" and rows[-1].trial_id is None
    info = {"selection": "top_k", "method": "soft_vote", "members": "folds", "n_members": 6,
            "trials": [{"trial_id": t.trial_id, "weight": 0.5, "n_members": 3, "mean_score": t.mean_score}
                       for t in members]}
    sweep = Sweep("two", tmp_path, fake_spec("two"), np.arange(180), np.arange(180, 240), list(ranked))
    text = write_report(sweep, rows, tmp_path / "report", [0, 1, 2], info).read_text()
    for t in members:  # the ensemble section lists each member with its family
        assert f"| {t.trial_id} | {t.params['family']} | {t.mean_score:.4f} | 0.500 | 3 |" in text
    for t in ranked:  # and so does the search's table, with family out of the params column
        line = next(l for l in text.splitlines() if l.startswith(f"| {t.trial_id} | {t.params['family']} | TERMINATED"))
        assert "family=" not in line
    assert "| best_mlp | mlp |" in text and "| ensemble | logreg+mlp |  |" in text
