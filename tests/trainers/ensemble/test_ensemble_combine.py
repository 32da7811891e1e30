"""Each combination method on small hand-computed cases, hard-vote ties included; the stacker fit."""
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from trainers.ensemble.combiners import combine
from trainers.ensemble.combiners.hard_vote import HardVote
from trainers.ensemble.combiners.soft_vote import average as soft_vote
from trainers.ensemble.combiners.stacking import fit_stacker, stack as stacking

hard_vote = HardVote().combine


def test_soft_vote_and_weighted_by_hand():
    m = np.array([[[0.6, 0.4]], [[0.2, 0.8]]])  # 2 members, 1 row
    np.testing.assert_allclose(soft_vote(m), [[0.4, 0.6]])
    np.testing.assert_allclose(combine("weighted", m, [1, 3]), [[0.25 * 0.6 + 0.75 * 0.2, 0.25 * 0.4 + 0.75 * 0.8]])
    np.testing.assert_allclose(combine("soft_vote", m, [1, 3]), [[0.4, 0.6]])  # soft_vote ignores weights


def test_hard_vote_shares_and_weights():
    m = np.array([[[0.6, 0.4]], [[0.45, 0.55]], [[0.9, 0.1]]])  # votes 0, 1, 0
    np.testing.assert_allclose(hard_vote(m), [[2 / 3, 1 / 3]], atol=1e-8)
    np.testing.assert_allclose(hard_vote(m, [0.1, 0.8, 0.1]), [[0.2, 0.8]], atol=1e-8)


def test_hard_vote_tie_goes_to_higher_mean_probability():
    m = np.array([[[0.6, 0.4]], [[0.3, 0.7]]])  # votes 0 and 1; mean probs [.45, .55]
    out = hard_vote(m)
    np.testing.assert_allclose(out, [[0.5, 0.5]], atol=1e-8)  # still the vote shares
    assert out.argmax(1).tolist() == [1]
    three = np.array([[[0.5, 0.3, 0.2]], [[0.1, 0.6, 0.3]], [[0.2, 0.3, 0.5]]])  # one vote each
    assert hard_vote(three).argmax(1).tolist() == [1]  # mean probs [.27, .4, .33]


def test_hard_vote_full_tie_goes_to_lower_class_index():
    m = np.array([[[0.6, 0.4], [0.4, 0.6]], [[0.4, 0.6], [0.6, 0.4]]])  # two rows, mirrored
    assert hard_vote(m).argmax(1).tolist() == [0, 0]


def test_stacking_by_hand():
    m = np.array([[[0.2, 0.8]]])  # 1 member, 1 row
    # identity coefficients: softmax of the probabilities themselves
    out = stacking(m, np.eye(2), np.zeros(2))
    np.testing.assert_allclose(out[0, 1], 1 / (1 + math.exp(-0.6)))
    # binary logistic regression keeps one column: logit = 2*p1 - 1 = 0.6 -> sigmoid(0.6)
    out = stacking(m, np.array([[0.0, 2.0]]), np.array([-1.0]))
    np.testing.assert_allclose(out[0], [1 - 1 / (1 + math.exp(-0.6)), 1 / (1 + math.exp(-0.6))])
    with pytest.raises(ValueError, match="needs a fitted stacker"):
        combine("stacking", m)


def test_fit_stacker_spreads_a_trial_block_over_its_fold_members():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    oof_a = rng.dirichlet(np.ones(3), 60) * 0.5 + np.eye(3)[y] * 0.5
    oof_b = rng.dirichlet(np.ones(3), 60)
    st = fit_stacker([oof_a, oof_b], y, members_per_block=[3, 1])
    assert st["coef"].shape == (3, 4 * 3)
    # when the three fold members of trial a all predict its OOF block, stacking = the fitted regression
    reg = LogisticRegression(C=1.0, max_iter=5000).fit(np.concatenate([oof_a, oof_b], 1), y)
    members = np.stack([oof_a, oof_a, oof_a, oof_b])
    np.testing.assert_allclose(stacking(members, st["coef"], st["intercept"]),
                               reg.predict_proba(np.concatenate([oof_a, oof_b], 1)), atol=1e-9)


def test_fit_stacker_needs_every_class():
    with pytest.raises(ValueError, match=r"every class 0..2 in the stacking rows must hold, but got classes \[0, 1\]"):
        fit_stacker([np.full((4, 3), 1 / 3)], np.array([0, 1, 0, 1]), [1])
