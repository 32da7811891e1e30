import numpy as np
import pytest
import torch
from pydantic import ValidationError

from trainers.checkpoint import load_model, save_model
from trainers.data import DataConfig, holdout_split, load_dataset
from trainers.loop import FoldTrainer, TrainConfig, split_params
from trainers.models import ModelConfig


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset(DataConfig(source="sklearn:digits", image_shape=(1, 8, 8)))
    tr, te = holdout_split(ds.y, 0.2, 0)
    return ds.x[tr], ds.y[tr], ds.x[te], ds.y[te]


def _train(digits, family="mlp", seed=0, **train):
    x, y, xt, yt = digits
    cfg = ModelConfig(family=family, in_features=64, n_classes=10, image_shape=(1, 8, 8), hidden=64)
    trainer = FoldTrainer(cfg, TrainConfig(**{"epochs": 4, **train}), x, y, seed=seed)
    for _ in range(trainer.cfg.epochs):
        trainer.train_epoch()
    return trainer, (trainer.predict_proba(xt).argmax(1) == yt).mean()


def test_same_seed_same_model_on_cpu(digits):
    a, _ = _train(digits, mixup_alpha=0.2, label_smoothing=0.1)
    b, _ = _train(digits, mixup_alpha=0.2, label_smoothing=0.1)
    c, _ = _train(digits, seed=1, mixup_alpha=0.2, label_smoothing=0.1)
    xt = digits[2]
    assert np.array_equal(a.predict_proba(xt), b.predict_proba(xt))
    assert not np.array_equal(a.predict_proba(xt), c.predict_proba(xt))


@pytest.mark.parametrize("family, knobs", [("mlp", {"optimizer": "sgd", "schedule": "step", "lr": 0.05}),
                                           ("cnn", {"cutmix_alpha": 1.0, "mixup_alpha": 0.2})])
def test_each_family_and_knob_learns(digits, family, knobs):
    _, acc = _train(digits, family=family, **knobs)
    assert acc > 0.85


def test_scaling_is_fitted_on_the_training_rows(digits):
    trainer, _ = _train(digits)
    assert torch.allclose(trainer.model.standardize.mean, torch.as_tensor(digits[0]).mean(0), atol=1e-5)


def test_checkpoint_round_trip_carries_the_config(tmp_path, digits):
    trainer, _ = _train(digits, family="cnn")
    save_model(tmp_path / "m.pt", trainer.model, trainer.model_cfg, extra={"fold": 2})
    model, cfg, extra = load_model(tmp_path / "m.pt")
    assert cfg == trainer.model_cfg and extra == {"fold": 2}
    xt = torch.as_tensor(digits[2][:5])
    trainer.model.eval()
    assert torch.allclose(model(xt), trainer.model(xt))


def test_split_params_routes_model_and_train_keys():
    model, train = split_params({"hidden": 17, "lr": 0.5, "epochs": 2}, ModelConfig(in_features=4, n_classes=2))
    assert model.hidden == 17 and train.lr == 0.5 and train.epochs == 2
    with pytest.raises(ValidationError, match="dropout"):
        split_params({"dropout": 1.0}, ModelConfig())
