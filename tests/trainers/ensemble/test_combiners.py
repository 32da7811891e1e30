"""Every combiner of the registry (trainers.ensemble.combiners), by the properties any way of combining
members must have: a distribution per row, the input left alone, unanimous members win, its state
and weights survive a bundle's save and load, and serving's path (predictor.combine) is predict_proba's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers.ensemble.combiners import COMBINERS, get_combiner
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families import build_model
from trainers.families.config import ModelConfig

N_CLASSES, N_ROWS = 3, 90


def _members(rng, n_members: int = 3, rows: int = N_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(members, rows, classes) probabilities of noisy members that lean towards the true class."""
    y = np.arange(rows) % N_CLASSES
    logits = rng.normal(size=(n_members, rows, N_CLASSES)) + 2.0 * np.eye(N_CLASSES)[y]
    probs = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)
    return probs, y


def _fitted(name: str, rng):
    combiner = get_combiner(name)
    probs, y = _members(rng)
    state = combiner.fit(list(probs), y, [1] * len(probs))
    weights = [0.5, 0.3, 0.2] if combiner.uses_weights else None
    return combiner, state, weights


@pytest.mark.parametrize("name", sorted(COMBINERS))
def test_the_output_is_a_distribution_per_row_and_the_input_is_left_alone(name):
    rng = np.random.default_rng(0)
    combiner, state, weights = _fitted(name, rng)
    probs, _ = _members(rng, rows=20)
    before = probs.copy()
    out = combiner.combine(probs, weights, state)
    assert out.shape == (20, N_CLASSES) and np.isfinite(out).all() and (out >= 0).all()
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(probs, before)
    assert not np.shares_memory(out, probs)


@pytest.mark.parametrize("name", sorted(COMBINERS))
def test_members_that_agree_confidently_decide_the_row(name):
    rng = np.random.default_rng(1)
    combiner, state, weights = _fitted(name, rng)
    target = np.arange(12) % N_CLASSES
    sure = np.full((3, 12, N_CLASSES), 0.02)
    sure[:, np.arange(12), target] = 0.96
    assert combiner.combine(sure, weights, state).argmax(1).tolist() == target.tolist()


@pytest.mark.parametrize("name", sorted(COMBINERS))
def test_a_bundle_keeps_the_combiner_its_weights_and_state(name, tmp_path):
    rng = np.random.default_rng(2)
    combiner, state, weights = _fitted(name, rng)
    torch.manual_seed(0)
    cfg = ModelConfig(in_features=4, n_classes=N_CLASSES, hidden=8, depth=1)
    predictor = EnsemblePredictor([build_model(cfg) for _ in range(3)], [cfg] * 3, method=name, weights=weights,
                                  stacker=state)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    loaded = EnsemblePredictor.load(predictor.save(tmp_path / name))
    assert loaded.method == name
    np.testing.assert_allclose(loaded.predict_proba(x), predictor.predict_proba(x), atol=1e-6)
    np.testing.assert_allclose(loaded.combine(loaded.member_proba(x)), loaded.predict_proba(x))
    if combiner.uses_weights:  # the weights matter: uniform ones give another answer on some row
        uniform = combiner.combine(loaded.member_proba(x), None, state)
        assert not np.allclose(uniform, loaded.predict_proba(x))


def test_an_unknown_combiner_names_the_registry():
    with pytest.raises(ValueError, match=r"method one of \[.*'soft_vote'.*\] expected, but got 'median'"):
        get_combiner("median")


def test_rank_average_counts_orderings_not_confidence():
    """Borda by hand: one overconfident member cannot outvote two that rank the other class first."""
    m = np.array([[[0.99, 0.01, 0.00]],   # ranks 2, 1, 0
                  [[0.30, 0.45, 0.25]],   # ranks 1, 2, 0
                  [[0.30, 0.40, 0.30]]])  # ranks 0.5, 2, 0.5 (a tie shares its average rank)
    out = get_combiner("rank_average").combine(m)
    np.testing.assert_allclose(out, [[3.5 / 9, 5 / 9, 0.5 / 9]])
    assert get_combiner("soft_vote").combine(m).argmax(1).tolist() == [0]  # the mean follows the loud member


# ---- a regression target: (members, rows, 1) predicted values -----------------------------------

REGRESSORS = sorted(n for n, c in COMBINERS.items() if "regression" in c.tasks)


def _values(rng, n_members: int = 3, rows: int = N_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Noisy members around the target, each with its own bias."""
    y = rng.normal(100.0, 20.0, rows)
    members = y[None, :, None] + rng.normal(0, 5, (n_members, rows, 1)) + np.array([-3.0, 0.0, 4.0])[:n_members, None, None]
    return members, y


def test_the_combiners_that_refuse_a_regression_target_are_the_class_ones():
    assert sorted(set(COMBINERS) - set(REGRESSORS)) == ["hard_vote", "rank_average"]


@pytest.mark.parametrize("name", REGRESSORS)
def test_regression_values_in_one_column_out_and_agreeing_members_decide(name, tmp_path):
    rng = np.random.default_rng(3)
    combiner = get_combiner(name)
    members, y = _values(rng)
    state = combiner.fit(list(members), y, [1] * len(members), "regression")
    weights = [0.5, 0.3, 0.2] if combiner.uses_weights else None
    fresh, _ = _values(rng, rows=20)
    before = fresh.copy()
    out = combiner.combine(fresh, weights, state)
    assert out.shape == (20, 1) and np.isfinite(out).all()
    np.testing.assert_array_equal(fresh, before)
    same = np.repeat(np.linspace(50, 150, 12)[None, :, None], 3, 0)  # every member says the same value
    np.testing.assert_allclose(combiner.combine(same, weights, state)[:, 0], same[0, :, 0], rtol=0.05)
    # and a one-output regression bundle keeps it through save and load
    torch.manual_seed(0)
    cfg = ModelConfig(in_features=4, n_classes=1, task="regression", hidden=8, depth=1)
    predictor = EnsemblePredictor([build_model(cfg) for _ in range(3)], [cfg] * 3, method=name, weights=weights,
                                  stacker=state)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    loaded = EnsemblePredictor.load(predictor.save(tmp_path / name))
    assert loaded.classes == [] and loaded.regression
    np.testing.assert_allclose(loaded.predict_proba(x), predictor.predict_proba(x), atol=1e-6)
    assert loaded.predict(x) == pytest.approx(loaded.predict_proba(x)[:, 0].tolist())


def test_ridge_stacking_learns_to_undo_a_members_bias_by_hand():
    """Member 0 is the target plus 10; member 1 is noise. The ridge stacker leans on member 0 and its
    intercept takes the bias back out: far better than the mean of the two."""
    rng = np.random.default_rng(4)
    y = rng.normal(0, 10, 300)
    members = np.stack([y + 10.0, rng.normal(0, 10, 300)])[:, :, None]
    state = get_combiner("stacking").fit(list(members), y, [1, 1], "regression")
    coef = np.asarray(state["coef"])[0]
    assert coef[0] > 0.9 and abs(coef[1]) < 0.1 and state["intercept"][0] == pytest.approx(-10.0 * coef[0], abs=0.5)
    fitted = get_combiner("stacking").combine(members, None, state)[:, 0]
    assert np.sqrt(((fitted - y) ** 2).mean()) < 0.2 * np.sqrt(((members.mean(0)[:, 0] - y) ** 2).mean())
