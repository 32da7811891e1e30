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
