"""ensemble.stacking: if_better — the choice between greedy selection and a stacking layer, made on OOF rows
that neither was fitted on."""
import numpy as np
import pytest

from trainers.config import EnsembleConfig
from trainers.ensemble.combiners.stacking import Stacking
from trainers.ensemble.guard import held_out_choice
from trainers.metrics import score


def _two_class(p_first: np.ndarray) -> np.ndarray:
    return np.stack([p_first, 1 - p_first], 1)


def test_stacking_is_kept_when_it_can_use_what_averaging_cannot():
    """A candidate that is confidently wrong in a consistent way: a stacker learns to flip it, an average
    of probabilities cannot."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    right = rng.random(400) < 0.9
    flipped = _two_class(np.where(right, y, 1 - y) * 0.8 + 0.1)  # p(class 0) high when y == 1, mostly
    weak = _two_class(np.where(rng.random(400) < 0.6, 1 - y, y) * 0.2 + 0.4)
    report = held_out_choice([weak, flipped], y, "accuracy", "max", rounds=10)
    assert report.kept == "stacking", report
    assert report.stacking_score > 0.85 and report.greedy_score < 0.65
    assert "stacking" in report.why and "greedy" in report.why


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_stacker_over_noise_is_scored_held_out_and_greedy_is_kept(seed):
    """One real candidate and twenty that are noise: fitted on all rows the stacker looks at least as good as
    the real candidate, but on rows it did not see it is worse, and greedy selection (the real candidate) stays."""
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.integers(0, 2, n)
    real = _two_class(np.clip(np.where(rng.random(n) < 0.75, 1 - y, y) * 0.5 + 0.25 + rng.normal(0, 0.05, n), 0, 1))
    noise = [_two_class(rng.random(n)) for _ in range(20)]
    blocks = [real, *noise]
    report = held_out_choice(blocks, y, "log_loss", "min", rounds=10)
    in_sample = Stacking().combine(np.stack(blocks), None, Stacking().fit(blocks, y, [1] * len(blocks)))
    assert report.kept == "greedy", report
    assert report.stacking_score > score("log_loss", y, in_sample)  # held-out is worse than in-sample
    assert report.greedy_score <= report.stacking_score


def test_a_regression_stacker_rescales_a_biased_candidate():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 300)
    biased = (2 * y + 1 + rng.normal(0, 0.1, 300))[:, None]  # right shape, wrong scale: ridge undoes it
    plain = (y + rng.normal(0, 1.0, 300))[:, None]
    report = held_out_choice([plain, biased], y, "rmse", "min", rounds=10, task="regression")
    assert report.kept == "stacking" and report.stacking_score < 0.2 < report.greedy_score


def test_too_little_to_compare_keeps_greedy_and_says_why():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 0, 1, 0])
    block = _two_class(np.full(10, 0.5))
    one = held_out_choice([block], y, "accuracy", "max", rounds=5)
    assert one.kept == "greedy" and "got 1 candidates" in one.why and one.stacking_score is None
    rare = np.array([0] * 9 + [1])
    lonely = held_out_choice([block, block], rare, "accuracy", "max", rounds=5)
    assert lonely.kept == "greedy" and "1 rows of the rarest class" in lonely.why


def test_if_better_needs_greedy_averaging():
    assert EnsembleConfig(selection="greedy", stacking="if_better").stacking == "if_better"
    for bad in ({"selection": "top_k"}, {"selection": "greedy", "method": "hard_vote"}):
        with pytest.raises(ValueError, match="stacking 'if_better' is weighed against greedy averaging, so selection 'greedy' and method one of .*'soft_vote', 'weighted'.* "
                                             "must hold, but got selection"):
            EnsembleConfig(stacking="if_better", **bad)


def _one_real_among_noise(seed: int, n: int = 300) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    real = _two_class(np.where(rng.random(n) < 0.8, 1 - y, y) * 0.8 + 0.1)  # right 80% of rows, confidently
    return [real, *(_two_class(rng.random(n)) for _ in range(20))], y


@pytest.mark.parametrize("seed", [0, 4])
def test_the_single_trial_is_kept_when_greedy_selection_fits_noise(seed):
    """Twenty noise candidates: on the rows it is fitted on, greedy selection finds some that nudge accuracy up
    (so in-sample it beats the real candidate alone), but on rows it did not see they cost accuracy."""
    from trainers.ensemble.select import greedy_selection

    blocks, y = _one_real_among_noise(seed)
    weights = greedy_selection(blocks, y, "accuracy", 25, "max")
    assert score("accuracy", y, np.tensordot(weights, np.stack(blocks), 1)) > score("accuracy", y, blocks[0])
    report = held_out_choice(blocks, y, "accuracy", "max", rounds=25, stacking=False, single=True)
    assert report.kept == "single" and report.single_score > report.greedy_score, report
    assert report.stacking_score is None and "single" in report.why and "stacking" not in report.why
    # without the single trial as a contender, greedy selection is kept whatever it scores
    assert held_out_choice(blocks, y, "accuracy", "max", rounds=25, stacking=False).kept == "greedy"


def test_greedy_is_kept_over_the_single_trial_when_members_fix_each_others_errors():
    """Three candidates that are each right on 70% of rows, wrong on different rows: their average is right
    more often than any one of them, held-out too."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    blocks = [_two_class(np.where(rng.random(600) < 0.7, 1 - y, y) * 0.4 + 0.3) for _ in range(3)]
    report = held_out_choice(blocks, y, "accuracy", "max", rounds=10, single=True)
    assert report.kept == "greedy" and report.greedy_score > report.single_score + 0.05, report
    assert all(name in report.why for name in ("greedy", "stacking", "single"))


def test_a_tie_keeps_greedy():
    """Two copies of one candidate: greedy selection, the single trial and (nearly) the stacker predict alike."""
    blocks, y = _one_real_among_noise(0)
    report = held_out_choice([blocks[0], blocks[0].copy()], y, "accuracy", "max", rounds=5, stacking=False,
                             single=True)
    assert report.greedy_score == report.single_score and report.kept == "greedy"


def test_single_if_better_needs_greedy_averaging():
    assert EnsembleConfig(selection="greedy", single="if_better").single == "if_better"
    with pytest.raises(ValueError, match="single 'if_better' is weighed against greedy averaging, so selection "
                                         "'greedy' and method one of .* must hold, but got selection 'top_k'"):
        EnsembleConfig(single="if_better")
