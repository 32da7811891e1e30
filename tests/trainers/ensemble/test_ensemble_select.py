"""top_k and Caruana greedy selection, on hand-computed cases."""
import numpy as np
import pytest

from trainers.ensemble.select import greedy_selection, top_k


def _binary(p1):
    p1 = np.asarray(p1, dtype=float)
    return np.stack([1 - p1, p1], 1)


def test_top_k_takes_the_first_k_of_a_ranked_list():
    assert top_k(["a", "b", "c"], 2) == ["a", "b"]
    assert top_k(["a"], 5) == ["a"]  # fewer trials than k: all of them
    with pytest.raises(ValueError, match="k >= 1 must hold, but got k=0"):
        top_k(["a"], 0)
    with pytest.raises(ValueError, match="at least one finished trial"):
        top_k([], 3)


def test_greedy_accuracy_weights_by_hand():
    # y = [0, 1, 1, 0]; P(class 1) per row
    y = np.array([0, 1, 1, 0])
    a = _binary([0.4, 0.9, 0.9, 0.6])  # predicts 0,1,1,1 -> acc 3/4
    b = _binary([0.1, 0.6, 0.4, 0.1])  # predicts 0,1,0,0 -> acc 3/4
    c = _binary([0.9, 0.4, 0.4, 0.9])  # predicts 1,0,0,1 -> acc 0
    # round 1: a and b tie at 3/4 -> a (lowest index = better-ranked trial)
    # round 2: a+a = 3/4; (a+b)/2 = [.25,.75,.65,.35] -> 0,1,1,0 = 1.0; (a+c)/2 -> all 1 = 1/2 -> b
    # round 3: (2a+b)/3 = [.3,.8,.73,.43] -> 1.0; (a+2b)/3 = [.2,.7,.57,.27] -> 1.0; (a+b+c)/3 -> 3/4 -> a
    w = greedy_selection([a, b, c], y, "accuracy", rounds=3)
    np.testing.assert_allclose(w, [2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(greedy_selection([a, b, c], y, "accuracy", rounds=1), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(greedy_selection([a, b, c], y, "accuracy", rounds=2), [0.5, 0.5, 0.0])


def test_greedy_log_loss_minimises():
    y = np.array([0, 1])
    p = np.array([[0.8, 0.2], [0.3, 0.7]])  # log loss (ln 1/.8 + ln 1/.7)/2 = 0.2899
    q = np.array([[0.7, 0.3], [0.1, 0.9]])  # (ln 1/.7 + ln 1/.9)/2 = 0.2310 -> picked first
    # round 2: q+q = 0.2310 beats (p+q)/2 = [[.75,.25],[.2,.8]] -> (ln 1/.75 + ln 1/.8)/2 = 0.2554
    np.testing.assert_allclose(greedy_selection([p, q], y, "log_loss", rounds=2), [0.0, 1.0])
    # the mode decides the direction: maximising log loss picks p
    np.testing.assert_allclose(greedy_selection([p, q], y, "log_loss", rounds=1, mode="max"), [1.0, 0.0])


def test_greedy_rejects_bad_input():
    y = np.array([0, 1])
    with pytest.raises(ValueError, match="rounds >= 1 must hold"):
        greedy_selection([np.eye(2)], y, "accuracy", rounds=0)
    with pytest.raises(ValueError, match=r"candidates of shape \(rows=2, outputs\) must hold"):
        greedy_selection([np.ones((3, 2)) / 2], y, "accuracy", rounds=1)
    with pytest.raises(ValueError, match="at least one candidate"):
        greedy_selection([], y, "accuracy", rounds=1)


def test_greedy_on_rmse_pairs_members_whose_errors_cancel():
    """A regression target: A is 2 too high, B 2 too low, C 5 too high. Alone A and B tie (A, ranked
    first, goes in); then B makes the mean exact; C, closest to nothing, is never picked."""
    y = np.linspace(0.0, 10.0, 50)
    cands = [(y + 2.0)[:, None], (y - 2.0)[:, None], (y + 5.0)[:, None]]
    np.testing.assert_allclose(greedy_selection(cands, y, "rmse", rounds=4), [0.5, 0.5, 0.0])
    # r2 (max) picks the same pair
    np.testing.assert_allclose(greedy_selection(cands, y, "r2", rounds=2), [0.5, 0.5, 0.0])


def test_build_refuses_a_class_combiner_for_a_regression_target():
    from trainers.config import EnsembleConfig
    from trainers.ensemble.build import build_ensemble

    class Trial:
        trial_id, params, mean_score = "t0", {"family": "mlp"}, 1.0

        def oof(self):
            return np.zeros((4, 1))

        def fold_model_paths(self):
            return []

    with pytest.raises(ValueError, match="ensemble.method: one for a regression target expected, but got 'hard_vote'"):
        build_ensemble([Trial()], EnsembleConfig(method="hard_vote", members="refit"), y_train=np.zeros(4),
                       metric="rmse", mode="min", refit=lambda trials: [(None, None)], task="regression")
