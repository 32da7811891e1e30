"""Building an EnsemblePredictor from a (small, real) finished sweep's trials."""
import time

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


def test_a_refit_not_done_by_the_deadline_leaves_its_trial_to_its_fold_models(sweep, split):
    """Under a time budget the refits stop at a deadline: a trial whose refit did not finish serves the
    fold models selection judged (never a refit cut to fewer rounds), and the info names it."""
    x, y, x_test = split
    fixed = {**sweep.spec.search.fixed, "epochs": 2}
    assert Refitter(x, y, fixed, seed=0, deadline=time.time() - 1)(sweep.ranked()[:2]) == [None, None]
    from trainers.ensemble.refit import refit_all

    done = Refitter(x, y, fixed, seed=0)(sweep.ranked()[:1])
    first = done[0]

    def second_too_late(trials):
        return [first, None][:len(trials)]

    mixed, info = _build(sweep, split, refit=second_too_late, members="refit", top_k=2)
    ranked = sweep.ranked()
    assert info["kept_fold_models"] == [ranked[1].trial_id]
    assert [t["n_members"] for t in info["trials"]] == [1, 3] and len(mixed.models) == 4
    assert mixed.method == "weighted" and mixed.weights == pytest.approx([0.5, 0.5 / 3, 0.5 / 3, 0.5 / 3])
    folds = EnsemblePredictor.from_files(ranked[1].fold_model_paths()).predict_proba(x_test)
    alone = EnsemblePredictor([first[0]], [first[1]]).predict_proba(x_test)
    np.testing.assert_allclose(mixed.predict_proba(x_test), (alone + folds) / 2, atol=1e-6)  # a trial's vote, not a model's
    # rounds are checked as they go: a deadline that passed skips the work itself, job by job
    job = {"model": first[1].model_dump(mode="json"), "params": {"family": first[1].family, "epochs": 2}, "seed": 0,
           "rounds": None}
    assert refit_all({"jobs": [job, job], "x": x, "y": y, "deadline": time.time() - 1}) == [None, None]
    assert refit_all({"jobs": [job], "x": x, "y": y, "deadline": None})[0]["config"]["family"] == first[1].family


class _Trial:
    def __init__(self, trial_id, family, oof, score):
        self.trial_id, self.params, self._oof, self.mean_score = trial_id, {"family": family}, oof, score

    def oof(self):
        return self._oof

    def fold_model_paths(self):
        return []


def test_greedy_pool_adds_the_best_trial_of_each_missing_family_and_can_pick_it():
    """Three near-identical MLPs lead the ranking; a logistic regression that is right exactly where
    they are wrong is ranked last: top_k=2 alone would never see it, the pool does and greedy picks it."""
    from trainers.ensemble.build import choose_trials, with_every_family

    y = np.array([0, 1] * 10)
    right = np.eye(2)[y] * 0.9 + 0.05
    wrong_on_first_half = right.copy()
    wrong_on_first_half[:6] = right[:6, ::-1]
    mlps = [_Trial(f"mlp{i}", "mlp", wrong_on_first_half, 0.7) for i in range(3)]
    logreg_good = np.full_like(right, 0.5)
    logreg_good[:6] = right[:6] * 1.0
    ranked = [*mlps, _Trial("lr1", "logreg", logreg_good, 0.3), _Trial("lr2", "logreg", logreg_good, 0.2)]
    assert [t.trial_id for t in with_every_family(mlps[:2], ranked)] == ["mlp0", "mlp1", "lr1"]
    chosen, weights = choose_trials(ranked, EnsembleConfig(selection="greedy", top_k=2, greedy_rounds=4), y,
                                    "log_loss", "min")
    assert "lr1" in [t.trial_id for t in chosen] and abs(weights.sum() - 1) < 1e-12
    # top_k alone keeps its k best, whatever their family
    chosen, _ = choose_trials(ranked, EnsembleConfig(selection="top_k", top_k=2), y, "accuracy", "max")
    assert [t.trial_id for t in chosen] == ["mlp0", "mlp1"]


def test_accuracy_ties_go_to_the_lower_log_loss_then_to_the_better_ranked_trial():
    from trainers.ensemble.build import choose_trials

    y = np.array([0, 1, 0, 1])
    confident = np.eye(2)[y] * 0.98 + 0.01
    timid = np.eye(2)[y] * 0.2 + 0.4  # same argmax (same accuracy), far worse log loss
    cfg = EnsembleConfig(selection="greedy", top_k=2, greedy_rounds=1)
    chosen, _ = choose_trials([_Trial("timid", "mlp", timid, 1.0), _Trial("confident", "mlp", confident, 1.0)],
                              cfg, y, "accuracy", "max")
    assert [t.trial_id for t in chosen] == ["confident"]  # was "timid": ties went to the first-ranked
    chosen, _ = choose_trials([_Trial("a", "mlp", timid, 1.0), _Trial("b", "mlp", timid.copy(), 1.0)],
                              cfg, y, "accuracy", "max")
    assert [t.trial_id for t in chosen] == ["a"]  # a full tie: the better-ranked trial
    by_log_loss, _ = choose_trials([_Trial("timid", "mlp", timid, 1.0), _Trial("confident", "mlp", confident, 1.0)],
                                   EnsembleConfig(selection="greedy", top_k=2, greedy_rounds=1,
                                                  selection_metric="log_loss"), y, "accuracy", "max")
    assert [t.trial_id for t in by_log_loss] == ["confident"]


def test_stacking_if_better_builds_what_the_guard_kept(sweep, split):
    predictor, info = _build(sweep, split, selection="greedy", top_k=3, greedy_rounds=7, stacking="if_better")
    guard = info["stacking_guard"]
    assert guard["kept"] in ("greedy", "stacking") and guard["metric"] == "accuracy"
    assert predictor.method == ("stacking" if guard["kept"] == "stacking" else "weighted") == info["method"]
    if guard["kept"] == "stacking":  # every candidate of the pool, with a fitted stacker
        assert len(info["trials"]) >= 3 and predictor.stacker is not None
    x = split[2][:10]
    np.testing.assert_allclose(predictor.predict_proba(x).sum(1), 1, atol=1e-9)
    _, plain = _build(sweep, split, selection="greedy", top_k=3, greedy_rounds=7)
    assert "stacking_guard" not in plain


class _NoisyOOF:
    """A real trial whose OOF predictions are replaced by noise: what greedy selection fits and the held-out
    comparison should see through."""

    def __init__(self, trial, seed):
        self._trial, self._seed = trial, seed

    def __getattr__(self, name):
        return getattr(self._trial, name)

    def oof(self):
        real = self._trial.oof()
        noise = np.random.default_rng(self._seed).random(real.shape)
        return noise / noise.sum(1, keepdims=True)


def test_single_if_better_serves_the_best_trial_alone_when_it_wins_held_out(sweep, split):
    best, *rest = sweep.ranked()
    ranked = [best, *(_NoisyOOF(t, i) for i, t in enumerate(rest * 5))]
    # members: refit asked for, but the kept trial is served as the fold models the comparison judged
    cfg = EnsembleConfig(selection="greedy", top_k=len(ranked), greedy_rounds=25, single="if_better",
                         members="refit")
    predictor, info = build_ensemble(ranked, cfg, y_train=split[1], metric="accuracy", mode="max",
                                     classes=sweep.dataset().classes, refit=lambda trials: 1 / 0)
    guard = info["stacking_guard"]
    assert guard["kept"] == "single" and guard["single_score"] > guard["greedy_score"], guard
    assert [t["trial_id"] for t in info["trials"]] == [best.trial_id] and info["method"] == "weighted"
    assert info["members"] == "folds" and info["n_members"] == len(best.fold_model_paths()) == 3
    x = split[2][:20]
    np.testing.assert_allclose(predictor.predict_proba(x),
                               EnsemblePredictor.from_files(best.fold_model_paths()).predict_proba(x), atol=1e-6)
