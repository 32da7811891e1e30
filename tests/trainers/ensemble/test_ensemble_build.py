"""Building an EnsemblePredictor from a (small, real) finished sweep's trials."""
import numpy as np
import pytest

from fake_sweep import fake_spec, make_fake_sweep
from trainers.config import EnsembleConfig
from trainers.ensemble.build import build_ensemble
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.ensemble.refit import Refitter


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return make_fake_sweep(tmp_path_factory.mktemp("sweeps"), fake_spec("build"), with_mlflow_run=False)


@pytest.fixture(scope="module")
def split(sweep):
    data = sweep.dataset()
    return data.x[sweep.train_idx], data.y[sweep.train_idx], data.x[sweep.test_idx]


def _build(sweep, split, refit=None, **cfg):
    return build_ensemble(sweep.ranked(), EnsembleConfig(**cfg), y_train=split[1], metric="accuracy", mode="max",
                          classes=sweep.dataset().classes, refit=refit)


def test_top_k_soft_vote_is_the_mean_of_fold_models(sweep, split):
    predictor, info = _build(sweep, split, top_k=2)
    ranked = sweep.ranked()
    assert [t["trial_id"] for t in info["trials"]] == [ranked[0].trial_id, ranked[1].trial_id]
    assert predictor.method == "soft_vote" and len(predictor.models) == 2 * 3
    x = split[2][:20]
    by_trial = [EnsemblePredictor.from_files(t.fold_model_paths()).predict_proba(x) for t in ranked[:2]]
    np.testing.assert_allclose(predictor.predict_proba(x), np.mean(by_trial, 0), atol=1e-6)


def test_greedy_weights_spread_over_fold_members(sweep, split):
    predictor, info = _build(sweep, split, selection="greedy", top_k=3, greedy_rounds=7)
    assert predictor.method == "weighted"  # soft vote over a multiset = count-weighted mean
    weights = {t["trial_id"]: t["weight"] for t in info["trials"]}
    assert abs(sum(weights.values()) - 1) < 1e-12 and all(w > 0 for w in weights.values())
    assert all(abs(w * 7 - round(w * 7)) < 1e-9 for w in weights.values())  # counts / rounds
    expected = [w / 3 for t in info["trials"] for w in [t["weight"]] * 3]
    np.testing.assert_allclose(predictor.weights, expected)


def test_weighted_with_top_k_fits_weights_on_oof(sweep, split):
    predictor, info = _build(sweep, split, method="weighted", top_k=3)
    assert predictor.method == "weighted" and abs(sum(predictor.weights) - 1) < 1e-9


def test_hard_vote_and_stacking(sweep, split):
    hard, _ = _build(sweep, split, method="hard_vote", top_k=2)
    assert hard.weights == pytest.approx([1 / 6] * 6)
    shares = hard.predict_proba(split[2][:10])
    np.testing.assert_allclose(shares.sum(1), 1)
    stacked, _ = _build(sweep, split, method="stacking", top_k=2)
    assert np.asarray(stacked.stacker["coef"]).shape == (10, 6 * 10)
    np.testing.assert_allclose(stacked.predict_proba(split[2][:10]).sum(1), 1)


def test_refit_members_one_per_trial_in_process(sweep, split):
    x, y, x_test = split
    refit = Refitter(x, y, {**sweep.spec.search.fixed, "epochs": 2}, seed=0)
    a, info = _build(sweep, split, refit=refit, members="refit", top_k=2)
    b, _ = _build(sweep, split, refit=refit, members="refit", top_k=2)
    assert len(a.models) == 2 and [t["n_members"] for t in info["trials"]] == [1, 1]
    np.testing.assert_array_equal(a.predict_proba(x_test), b.predict_proba(x_test))  # seeded
    with pytest.raises(ValueError, match="members 'refit' needs a refit function"):
        _build(sweep, split, members="refit")
