"""The flat walk of scikit-learn's trees (trainers.families._flat_trees) against scikit-learn's own
predictions, on rows with what a raw table brings: gaps, categories seen, unseen, negative and past a
byte, classes weighted, two and several classes, a number."""
from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, HistGradientBoostingClassifier,
                              HistGradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor)

from trainers.families._flat_trees import FlatBoosted, flat, flat_boosted


def table(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    x[:, 3] = rng.integers(0, 12, rows)  # a category coded 0..11
    x[:, 4] = rng.integers(0, 30, rows)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x


def target(x: np.ndarray, classes: int) -> np.ndarray:
    score = np.nan_to_num(x[:, 0]) + (np.nan_to_num(x[:, 3]) % 3 == 0) + 0.5 * np.nan_to_num(x[:, 1])
    return np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))


def queries() -> np.ndarray:
    x = table(200, 1)
    x[:20, 3] = np.arange(20) - 3  # negative, seen and unseen categories
    x[20:30, 4] = [255, 256, 300, 1e6, -1e6, 0.5, 11.5, 29, 30, 31]  # past a byte, between codes
    return x


@pytest.mark.parametrize("model", [
    RandomForestClassifier(20, random_state=0), RandomForestClassifier(20, class_weight="balanced", random_state=0),
    ExtraTreesClassifier(20, min_samples_leaf=3, random_state=0)], ids=["rf", "rf-balanced", "et"])
@pytest.mark.parametrize("classes", [2, 4])
def test_forest_classifier_matches_scikit_learn(model, classes):
    x = table(600, 0)
    model.fit(x, target(x, classes))
    q = queries()
    np.testing.assert_allclose(flat(model).mean_value(q), model.predict_proba(q), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model", [RandomForestRegressor(15, random_state=0), ExtraTreesRegressor(15, random_state=0)])
def test_forest_regressor_matches_scikit_learn(model):
    x = table(600, 0)
    model.fit(x, 100 * np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 3]).clip(0, 5))
    q = queries()
    np.testing.assert_allclose(flat(model).mean_value(q)[:, 0], model.predict(q), rtol=1e-12)


@pytest.mark.parametrize("categorical", [None, [3], [3, 4]])
@pytest.mark.parametrize("classes", [2, 3])
def test_hist_gb_classifier_matches_scikit_learn(classes, categorical):
    x = table(800, 0)
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, categorical_features=categorical,
                                           random_state=0).fit(x, target(x, classes))
    q = queries()
    found = flat_boosted(model)
    assert isinstance(found, FlatBoosted)
    np.testing.assert_allclose(model._loss.predict_proba(found.raw(model, q)), model.predict_proba(q),
                               rtol=1e-12, atol=1e-12)


def test_hist_gb_regressor_matches_scikit_learn():
    x = table(800, 0)
    model = HistGradientBoostingRegressor(max_iter=30, categorical_features=[3], random_state=0)
    model.fit(x, 10 * np.nan_to_num(x[:, 0]) + (x[:, 3] == 4))
    q = queries()
    raw = flat_boosted(model).raw(model, q)
    np.testing.assert_allclose(model._loss.link.inverse(raw.ravel()), model.predict(q), rtol=1e-12)


def test_a_grown_or_refitted_model_is_flattened_again_and_saving_never_writes_the_flat_form():
    x = table(300, 0)
    y = target(x, 2)
    model = RandomForestClassifier(3, warm_start=True, random_state=0).fit(x, y)
    assert len(flat(model).roots) == 3
    model.n_estimators = 7
    model.fit(x, y)
    assert len(flat(model).roots) == 7
    np.testing.assert_allclose(flat(model).mean_value(x[:5]), model.predict_proba(x[:5]), rtol=1e-12)
    model.set_params(warm_start=False, n_estimators=7, max_depth=2).fit(x, y)  # refitted: the same count
    np.testing.assert_allclose(flat(model).mean_value(x[:5]), model.predict_proba(x[:5]), rtol=1e-12)
    loaded = sio.loads(sio.dumps(model), trusted=["sklearn.tree._tree.Tree"])
    np.testing.assert_allclose(flat(loaded).mean_value(x[:5]), model.predict_proba(x[:5]), rtol=1e-12)
