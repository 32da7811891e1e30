"""Distillation: the loss against a hand-computed value, and the student trainer."""
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from trainers.config import DistillConfig, StudentConfig
from trainers.distill import distill, student_model_config
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.loop import FoldTrainer
from trainers.train_config import TrainConfig
from trainers.losses import distillation_loss
from trainers.families.config import ModelConfig


def test_distillation_loss_by_hand():
    # teacher p = [0.8, 0.2] at T = 2: softmax(log p / 2) = sqrt(p) normalised = [2/3, 1/3]
    # student logits [1, 0] at T = 2: softmax([0.5, 0]) = [s, 1 - s], s = e^.5 / (e^.5 + 1)
    s = math.exp(0.5) / (math.exp(0.5) + 1)
    kl = 2 / 3 * math.log((2 / 3) / s) + 1 / 3 * math.log((1 / 3) / (1 - s))  # = 0.0042320
    ce = math.log(1 + math.exp(-1))  # label 0: -log softmax([1, 0])[0] = 0.3132617
    expected = 0.5 * 2 ** 2 * kl + 0.5 * ce  # = 0.1651
    assert expected == pytest.approx(0.16509, abs=1e-5)
    got = distillation_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.8, 0.2]]), torch.tensor([0]),
                            temperature=2.0, alpha=0.5)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # alpha = 0 is plain cross-entropy; alpha = 1 ignores the labels
    assert float(distillation_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.8, 0.2]]), torch.tensor([0]),
                                   2.0, 0.0)) == pytest.approx(ce, rel=1e-6)
    with pytest.raises(ValueError, match="temperature > 0 and 0 <= alpha <= 1 must hold"):
        distillation_loss(torch.zeros(1, 2), torch.ones(1, 2) / 2, torch.tensor([0]), 0.0, 0.5)


class CountingTeacher(EnsemblePredictor):
    calls = 0

    def predict_proba(self, x):
        type(self).calls += 1
        return super().predict_proba(x)


@pytest.fixture(scope="module")
def digits_teacher():
    data = load_digits()
    x, y = data.data[:600].astype(np.float32), data.target[:600]
    cfg = ModelConfig(in_features=64, n_classes=10, hidden=32, image_shape=(1, 8, 8))
    trainer = FoldTrainer(cfg, TrainConfig(epochs=5, lr=3e-3), x, y, seed=0)
    for _ in range(5):
        trainer.train_epoch()
    return x, y, CountingTeacher([trainer.model], [cfg])


def test_student_config_takes_shape_from_spec_and_io_from_teacher():
    like = ModelConfig(in_features=64, n_classes=10, image_shape=(1, 8, 8), hidden=512)
    cfg = student_model_config(StudentConfig(family="cnn", hidden=24, channels=4), like)
    assert (cfg.family, cfg.hidden, cfg.channels, cfg.in_features, cfg.n_classes) == ("cnn", 24, 4, 64, 10)
    assert cfg.image_shape == (1, 8, 8)


def test_distill_learns_is_seeded_and_asks_the_teacher_once(digits_teacher):
    x, y, teacher = digits_teacher
    cfg = DistillConfig(student=StudentConfig(hidden=16), epochs=8, lr=1e-2, batch_size=64)
    model_cfg = student_model_config(cfg.student, teacher.configs[0])
    CountingTeacher.calls = 0
    a, losses = distill(cfg, model_cfg, x, y, teacher, seed=3)
    assert CountingTeacher.calls == 1  # teacher outputs computed once, not per epoch
    b, _ = distill(cfg, model_cfg, x, y, teacher, seed=3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert len(losses) == 8 and losses[-1] < losses[0]
    with torch.no_grad():
        acc = (a(torch.as_tensor(x)).argmax(1).numpy() == y).mean()
    assert acc > 0.85, acc


@pytest.mark.parametrize("seconds_left, epochs", [(-1.0, 1), (3600.0, 4)])
def test_a_deadline_stops_the_epochs_after_the_first(digits_teacher, seconds_left, epochs):
    import time

    x, y, teacher = digits_teacher
    cfg = DistillConfig(student=StudentConfig(hidden=8), epochs=4, batch_size=128)
    _, losses = distill(cfg, student_model_config(cfg.student, teacher.configs[0]), x, y, teacher,
                        deadline=time.time() + seconds_left)
    assert len(losses) == epochs


def test_mixup_relabels_mixed_rows_with_the_teacher(digits_teacher):
    x, y, teacher = digits_teacher
    cfg = DistillConfig(student=StudentConfig(family="cnn", hidden=8, channels=2), epochs=2, batch_size=200,
                        mixup_alpha=0.4)
    CountingTeacher.calls = 0
    model, losses = distill(cfg, student_model_config(cfg.student, teacher.configs[0]), x, y, teacher, seed=0)
    assert CountingTeacher.calls == 1 + 2 * 3  # once up front, then per batch: 2 epochs x 3 batches
    assert all(np.isfinite(losses))
