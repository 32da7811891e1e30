"""trainers.task: what data.task auto decides, and the regression target's stratified splits (folds,
held-out split, the student's validation split) keep every part of the target's range in every part."""
from __future__ import annotations

import numpy as np
import pytest

from trainers.data import holdout_split
from trainers.distill import validation_split
from trainers.kfold import make_folds
from trainers.task import MAX_INTEGER_CLASSES, MAX_STRATA, detect, get_task


@pytest.mark.parametrize("values, task", [
    (np.array(["cat", "dog", "cat"], dtype=object), "classification"),
    (np.array([True, False, True]), "classification"),
    (np.array([0.0, 1.0, 1.0, 0.0]), "classification"),  # whole numbers, two of them: classes
    (np.arange(MAX_INTEGER_CLASSES) % MAX_INTEGER_CLASSES, "classification"),  # at the limit
    (np.arange(MAX_INTEGER_CLASSES + 1), "regression"),  # one past it
    (np.array([1.5, 2.0, 3.0]), "regression"),  # a value that is not whole
    (np.array([1, 2, 3]), "classification"),
])
def test_auto_decides_by_the_values(values, task):
    assert detect(values) == task


def test_a_sample_that_saw_more_distinct_numbers_than_it_kept_is_regression():
    assert detect(np.array([1, 2, 3]), many=True) == "regression"
    assert detect(np.array(["a", "b"], dtype=object), many=True) == "classification"


def test_strata_are_equal_count_bins_of_the_rank_order():
    rng = np.random.default_rng(0)
    y = rng.lognormal(size=1000)  # skewed: equal-width bins would leave the tail nearly empty
    bins = get_task("regression").strata(y, groups=5)
    counts = np.bincount(bins)
    assert len(counts) == MAX_STRATA and counts.min() == counts.max() == 100
    # bins follow the target: every value of bin b is below every value of bin b + 1
    assert all(y[bins == b].max() <= y[bins == b + 1].min() for b in range(MAX_STRATA - 1))
    # a small target: fewer bins, each still holding `groups` rows
    assert np.bincount(get_task("regression").strata(y[:12], groups=5)).min() >= 5


def test_regression_folds_each_span_the_target():
    rng = np.random.default_rng(1)
    y = rng.lognormal(size=500)
    folds = make_folds(y, 5, True, seed=0, task="regression")
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
    bins = get_task("regression").strata(y, 5)
    for f in folds:  # every decile in every fold, in the same share
        assert np.bincount(bins[f], minlength=MAX_STRATA).min() == 10
    plain = make_folds(y, 5, False, seed=0, task="regression")
    assert [len(f) for f in plain] == [100] * 5


def test_regression_holdout_and_validation_splits_are_stratified_on_the_target():
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    train, test = holdout_split(y, 0.2, seed=0, task="regression")
    assert len(test) == 80 and not np.intersect1d(train, test).size
    bins = get_task("regression").strata(y, 5)
    assert np.bincount(bins[test], minlength=MAX_STRATA).min() == 8
    fit, val = validation_split(y, 0.25, seed=0, task="regression")
    assert len(val) == 100 and np.bincount(bins[val], minlength=MAX_STRATA).min() >= 9
