"""Fold seeds: one per (sweep seed, trial hyperparameters, fold), so trials of one sweep differ in their
initial weights and batch order (ensembles need members that err differently) while a trial stays
reproducible."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

from trainers.checkpoint import load_model
from trainers.kfold import TrialData, derived_seed, make_folds, train_folds

PARAMS = {"family": "mlp", "epochs": 1, "lr": 1e-3, "hidden": 16, "batch_size": 32}


def test_derived_seed_is_deterministic_and_separates_trials_folds_and_sweeps():
    seeds = {derived_seed(s, {**PARAMS, "lr": lr}, k) for s in (0, 1) for lr in (1e-3, 1.0001e-3) for k in (0, 1)}
    assert len(seeds) == 8 and all(0 <= s < 2 ** 31 for s in seeds)
    assert derived_seed(0, PARAMS, 1) == derived_seed(0, dict(reversed(list(PARAMS.items()))), 1)  # key order
    data = TrialData(x=np.zeros((4, 2)), y=np.zeros(4), folds=[], base_model={}, metric="accuracy", seed=3)
    assert data.fold_seed(2, PARAMS) == derived_seed(3, PARAMS, 2)


def _first_fold_weights(params: dict, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(fold 0's first-layer weights after training, fold 0's out-of-fold probabilities)."""
    x, y = load_iris(return_X_y=True)
    data = TrialData(x=x.astype(np.float32), y=y, folds=make_folds(y, 3, True, 0),
                     base_model={"family": "mlp", "in_features": 4, "n_classes": 3}, metric="accuracy")
    kept = tmp_path / f"lr{params['lr']}-{len(list(tmp_path.iterdir()))}"

    def report(metrics, checkpoint):
        if checkpoint is not None:
            shutil.copytree(checkpoint, kept)

    train_folds(data, params, [0], report, device=torch.device("cpu"))
    model = load_model(kept / "fold_0.pt")[0]
    return next(model.parameters()).detach().numpy().copy(), np.load(kept / "oof_0.npy")


def test_trials_start_apart_and_a_trial_repeats_exactly(tmp_path):
    """Two trials whose learning rates differ by 0.01% end one epoch far apart (they started from
    different weights); the same trial twice ends identical."""
    a, oof_a = _first_fold_weights(PARAMS, tmp_path)
    again, oof_again = _first_fold_weights(PARAMS, tmp_path)
    other, _ = _first_fold_weights({**PARAMS, "lr": 1.0001e-3}, tmp_path)
    np.testing.assert_array_equal(a, again)
    np.testing.assert_array_equal(oof_a, oof_again)
    assert np.abs(a - other).max() > 0.05, "trials with different hyperparameters started from the same weights"


def test_refit_seed_is_not_a_fold_seed():
    assert derived_seed(0, PARAMS, "refit") not in {derived_seed(0, PARAMS, k) for k in range(5)}


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_repeated_folds_start_with_the_plain_ones_and_each_repeat_covers_every_row(task):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60) if task == "classification" else rng.normal(size=60)
    plain = make_folds(y, 3, True, 7, task)
    repeated = make_folds(y, 3, True, 7, task, repeats=3)
    assert len(repeated) == 9
    for a, b in zip(plain, repeated[:3]):
        np.testing.assert_array_equal(a, b)
    for r in range(3):
        assert sorted(np.concatenate(repeated[3 * r:3 * r + 3]).tolist()) == list(range(60))
    assert len({tuple(sorted(f)) for f in repeated}) == 9  # no repeat reuses a fold


def test_patience_ends_after_that_many_rounds_without_a_better_loss():
    from trainers.kfold import Patience

    stop = Patience(2)
    # a loss equal to the best is no better
    assert [stop.ends_after(v) for v in (1.0, 0.8, 0.9, 0.7, 0.75, 0.7)] == [False] * 5 + [True]
    never = Patience(None)
    assert not any(never.ends_after(v) for v in (1.0, 2.0, 3.0, 4.0))


@pytest.mark.parametrize("patience", [None, 2])
def test_a_trial_with_patience_ends_at_the_round_it_reached_with_that_rounds_checkpoint(tmp_path, patience):
    """A booster that overfits fast (noisy labels, a high learning rate): with patience it stops `patience`
    rounds after its best mean validation loss, and that last round is reported with a checkpoint."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 5)).astype(np.float32)
    y = ((x[:, 0] + rng.normal(scale=2.0, size=240)) > 0).astype(np.int64)
    data = TrialData(x=x, y=y, folds=make_folds(y, 3, True, 0), metric="accuracy", patience=patience,
                     base_model={"family": "lightgbm", "in_features": 5, "n_classes": 2}, checkpoint_every=1000)
    params = {"family": "lightgbm", "n_estimators": 200, "rounds": 20, "learning_rate": 0.5, "num_leaves": 31,
              "min_child_samples": 2}
    reports = []
    train_folds(data, params, [0, 1, 2], lambda m, c: reports.append((m, c is not None)), device=torch.device("cpu"))
    losses = [m["val_loss"] for m, _ in reports]
    if patience is None:
        assert len(reports) == 20 and not any("stopped_early" in m for m, _ in reports)
        assert losses.index(min(losses)) < 17  # it did overfit: patience 2 had a round to stop at
        return
    last, checkpointed = reports[-1]
    assert last["stopped_early"] and checkpointed and len(reports) < 20
    assert losses.index(min(losses)) == len(losses) - 1 - patience, losses


def test_a_refit_trains_the_rounds_its_trial_reached():
    from trainers.ensemble.refit import refit_all
    from trainers.families import get_family
    from trainers.families.config import ModelConfig

    x, y = load_iris(return_X_y=True)
    base = {"family": "lightgbm", "in_features": 4, "n_classes": 3}
    params = {"family": "lightgbm", "n_estimators": 40, "rounds": 4, "min_child_samples": 5}
    jobs = [{"model": base, "params": params, "seed": 0, "rounds": r} for r in (None, 1, 99)]
    out = refit_all({"jobs": jobs, "x": x.astype(np.float32), "y": y})
    family = get_family("lightgbm")
    trees = [family.trees(family.load(ModelConfig.model_validate(o["config"]), o["dump"])) for o in out]
    assert trees == [40, 10, 40]  # all rounds; the first of four blocks; never more than the trial's
