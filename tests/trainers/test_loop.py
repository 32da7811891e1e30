import numpy as np
import pytest
import torch
from pydantic import ValidationError

from trainers.checkpoint import load_model, save_model
from trainers.data import DataConfig, holdout_split, load_dataset
import trainers.loop as loop
from trainers.loop import FoldTrainer, as_device, rows_stay_on_device
from trainers.train_config import TrainConfig, split_params
from trainers.families.config import ModelConfig


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset(DataConfig(source="sklearn:digits", image_shape=(1, 8, 8)))
    tr, te = holdout_split(ds.y, 0.2, 0)
    return ds.x[tr], ds.y[tr], ds.x[te], ds.y[te]


def _train(digits, family="mlp", seed=0, channels=16, **train):
    x, y, xt, yt = digits
    cfg = ModelConfig(family=family, in_features=64, n_classes=10, image_shape=(1, 8, 8), hidden=64, channels=channels)
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


def test_image_scaling_is_per_channel(digits):
    """cnn scales each channel by its mean/std over all pixels of the training rows, not per pixel."""
    trainer, _ = _train(digits, family="cnn", channels=4, epochs=1)
    x = torch.as_tensor(digits[0], dtype=torch.float64)
    assert trainer.model.standardize.mean.shape == (1,)
    assert torch.allclose(trainer.model.standardize.mean.double(), x.mean().reshape(1), atol=1e-5)
    assert torch.allclose(trainer.model.standardize.scale.double(), x.std(unbiased=False).reshape(1), atol=1e-5)


def test_epoch_loss_is_the_row_weighted_mean_over_batches(digits):
    """With the weights frozen (lr ~ 0, no dropout) the epoch's loss is the loss over all rows, also
    when the last batch is short (a mean of batch means would weigh its rows more)."""
    x, y, _, _ = digits
    cfg = ModelConfig(in_features=64, n_classes=10, hidden=16, dropout=0.0)
    trainer = FoldTrainer(cfg, TrainConfig(epochs=1, lr=1e-12, batch_size=100, schedule="none"), x, y, seed=0)
    assert len(x) % 100 != 0
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(trainer.model(torch.as_tensor(x, dtype=torch.float32)),
                                                     torch.as_tensor(y)).item()
    assert trainer.train_epoch() == pytest.approx(expected, rel=1e-5)


def test_hflip_flag_is_a_probability():
    assert TrainConfig(hflip=True).hflip == 0.5 and TrainConfig(hflip=False).hflip == 0.0
    assert TrainConfig(hflip=0.25).hflip == 0.25
    with pytest.raises(ValidationError, match="hflip"):
        TrainConfig(hflip=1.5)
    with pytest.raises(ValidationError, match="crop_padding"):
        TrainConfig(crop_padding=-1)


def test_crop_and_flip_are_seeded_and_change_training(digits):
    a, acc = _train(digits, family="cnn", channels=4, crop_padding=1, hflip=0.5)
    b, _ = _train(digits, family="cnn", channels=4, crop_padding=1, hflip=0.5)
    plain, _ = _train(digits, family="cnn", channels=4)
    xt = digits[2]
    assert np.array_equal(a.predict_proba(xt), b.predict_proba(xt))
    assert not np.allclose(a.predict_proba(xt), plain.predict_proba(xt), atol=1e-3)
    assert acc > 0.4  # chance is 0.1: digits are not mirror-symmetric, yet half-flipped training learns them


@pytest.mark.parametrize("knobs, image_shape, message", [
    ({"crop_padding": 2}, None, r"crop_padding: image-shaped data \(data.image_shape\) expected, but got flat data"),
    ({"hflip": True}, None, r"hflip: image-shaped data \(data.image_shape\) expected, but got flat data"),
    ({"cutmix_alpha": 1.0}, None, r"cutmix_alpha: image-shaped data"),
    ({"crop_padding": 8}, (1, 8, 8), r"crop_padding: < min\(H, W\) = 8 expected, but got crop_padding=8"),
])
def test_image_augmentations_refuse_rows_that_are_not_images(digits, knobs, image_shape, message):
    x, y, _, _ = digits
    cfg = ModelConfig(in_features=64, n_classes=10, hidden=8, image_shape=image_shape)
    with pytest.raises(ValueError, match=message):
        FoldTrainer(cfg, TrainConfig(epochs=1, **knobs), x, y, seed=0)


def test_rows_stay_on_the_gpu_only_while_they_leave_room():
    gib = 1 << 30
    assert rows_stay_on_device(100 * gib, torch.device("cpu"))  # CPU: the rows are where they are
    assert rows_stay_on_device(2 * gib, torch.device("cuda"), free_bytes=8 * gib)
    assert not rows_stay_on_device(2 * gib + 1, torch.device("cuda"), free_bytes=8 * gib)


def test_a_device_carries_its_index():
    assert as_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert as_device("cuda") == torch.zeros(1, device="cuda").device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.py runs the same path)")
@pytest.mark.parametrize("resident", [True, False])
def test_a_trainer_given_bare_cuda_trains_with_rows_on_either_side(digits, monkeypatch, resident):
    # a bare "cuda" (what pick_device gave refits and the student) once pinned batches already on the GPU
    monkeypatch.setattr(loop, "RESIDENT_SHARE", 1.0 if resident else 0.0)
    x, y, xt, yt = digits
    cfg = ModelConfig(family="cnn", in_features=64, n_classes=10, image_shape=(1, 8, 8), hidden=64, channels=16)
    trainer = FoldTrainer(cfg, TrainConfig(epochs=4), x, y, seed=0, device="cuda")
    assert (trainer.x.device.type == "cuda") is resident
    for _ in range(4):
        trainer.train_epoch()
    assert (trainer.predict_proba(xt).argmax(1) == yt).mean() > 0.85


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
