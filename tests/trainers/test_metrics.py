import numpy as np
import pytest

from trainers.metrics import CLASSIFICATION_METRICS, METRICS, all_scores, confusion, score


def test_hand_computed_binary_case():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    s = all_scores(y, p)
    assert s["accuracy"] == 0.75
    assert s["roc_auc"] == 1.0  # every positive outranks every negative
    assert s["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.7])))
    assert confusion(y, p) == [[1, 1], [0, 2]]
    assert set(s) == set(CLASSIFICATION_METRICS)


@pytest.mark.parametrize("classes, dtype", [(2, np.int64), (5, np.int32), (3, np.uint8)])
def test_accuracy_on_class_indices_equals_sklearns(classes, dtype):
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(classes)
    y = rng.integers(0, classes, 501).astype(dtype)
    p = rng.dirichlet(np.ones(classes), 501)
    assert score("accuracy", y, p) == accuracy_score(y, p.argmax(1))
    assert score("accuracy", y.astype(float), p) == accuracy_score(y, p.argmax(1))  # not indices: sklearn's path
    with pytest.raises(ValueError, match="Mix of label input types"):
        score("accuracy", y.astype(str), p)  # labels, not indices, are refused as sklearn refuses them
    with pytest.raises(ValueError, match="empty"):
        score("accuracy", y[:0], p[:0])


def test_roc_auc_is_nan_when_a_class_is_absent_and_unknown_metric_raises():
    p = np.full((2, 3), 1 / 3)
    assert np.isnan(score("roc_auc", np.array([0, 1]), p))
    with pytest.raises(ValueError, match="but got 'auc_pr'"):
        score("auc_pr", np.array([0]), p[:1])


def test_regression_metrics_by_hand_on_one_column_of_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([[1.5], [2.0], [2.0], [5.0]])  # errors 0.5, 0, -1, 1
    s = all_scores(y, pred, "regression")
    assert set(s) == {"rmse", "mae", "r2"}
    assert s["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 1 + 1) / 4))
    assert s["mae"] == pytest.approx(2.5 / 4)
    assert s["r2"] == pytest.approx(1 - 2.25 / 5.0)  # 1 - SSE / SST, SST = 2.25 + 0.25 + 0.25 + 2.25
    assert METRICS["rmse"] == "min" and METRICS["r2"] == "max"
    assert np.isnan(score("rmse", y, np.array([[np.nan]] * 4)))  # a diverged model is the worst, not a crash
