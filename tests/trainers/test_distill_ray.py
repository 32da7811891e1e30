"""Both Ray paths of a post-sweep model (a Ray task, the default; one TorchTrainer worker when the
executor is ray_train) train exactly what the in-process path trains.

ray_session: the shared module-scoped local Ray from tests/conftest.py.
"""

import numpy as np
import torch
from sklearn.datasets import load_digits

from trainers.config import DistillConfig, StudentConfig
import pytest

from trainers.distill import distill, distill_on_ray, size_student, student_model_config
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.loop import FoldTrainer
from trainers.train_config import TrainConfig
from trainers.families.config import ModelConfig


ON_RAY = pytest.mark.parametrize("ray_train", [False, True], ids=["task", "ray_train"])


@ON_RAY
def test_distill_on_ray_matches_in_process(ray_session, tmp_path, ray_train):
    data = load_digits()
    x, y = data.data[:400].astype(np.float32), data.target[:400]
    cfg = ModelConfig(in_features=64, n_classes=10, hidden=16, image_shape=(1, 8, 8))
    trainer = FoldTrainer(cfg, TrainConfig(epochs=2), x, y, seed=0)
    for _ in range(2):
        trainer.train_epoch()
    teacher = EnsemblePredictor([trainer.model], [cfg])
    teacher_dir = teacher.save(tmp_path / "teacher")
    dcfg = DistillConfig(student=StudentConfig(hidden=8), epochs=2, mixup_alpha=0.2)
    model_cfg = student_model_config(dcfg.student, cfg)

    remote, remote_losses = distill_on_ray(dcfg, model_cfg, x, y, teacher_dir, seed=1, name="t-distill",
                                           storage_path=tmp_path / "ray", ray_train=ray_train)
    local, local_losses = distill(dcfg, model_cfg, x, y, EnsemblePredictor.load(teacher_dir), seed=1)
    # same function, same seed; only the worker's thread count may reorder float sums
    np.testing.assert_allclose(remote_losses, local_losses, rtol=1e-4)
    with torch.no_grad():
        xt = torch.as_tensor(x)
        np.testing.assert_allclose(remote(xt).numpy(), local(xt).numpy(), atol=1e-4)


class _Trial:
    """The little of a TrialRecord that a refit reads: params and a fold model (for its config)."""

    def __init__(self, trial_id, params, fold_path):
        self.trial_id, self.params, self._path = trial_id, params, fold_path

    def fold_model_paths(self):
        return [self._path]


@ON_RAY
def test_refit_on_ray_matches_in_process(ray_session, tmp_path, ray_train):
    from trainers.checkpoint import save_model
    from trainers.ensemble.refit import Refitter
    from trainers.families import build_model

    data = load_digits()
    x, y = data.data[:300].astype(np.float32), data.target[:300]
    cfg = ModelConfig(in_features=64, n_classes=10, hidden=16)
    save_model(tmp_path / "fold_0.pt", build_model(cfg), cfg)
    trials = [_Trial("a", {"lr": 1e-2, "hidden": 8}, tmp_path / "fold_0.pt")]
    fixed = {"epochs": 2, "batch_size": 64}
    options = {"name": "t-refit", "storage_path": tmp_path / "ray", "ray_train": ray_train}
    (remote, remote_cfg), = Refitter(x, y, fixed, seed=0, ray_options=options)(trials)
    # the Ray Train path alone keeps its run under storage_path
    assert any((tmp_path / "ray").glob("t-refit*")) == ray_train
    (local, local_cfg), = Refitter(x, y, fixed, seed=0)(trials)
    assert remote_cfg == local_cfg and remote_cfg.hidden == 8  # the trial's own shape, not the fold file's
    with torch.no_grad():
        np.testing.assert_allclose(remote(torch.as_tensor(x)).numpy(), local(torch.as_tensor(x)).numpy(), atol=1e-4)


def test_student_candidates_as_ray_tasks_match_in_process(ray_session, tmp_path):
    """distill.sizes on Ray: one task per candidate (half a CPU each: fractional shares queue, never
    deadlock, on the session's two CPUs), the mixed-family teacher rebuilt from its files in each task.
    Two candidates only: each new Ray worker imports torch, which dominates this test's time."""
    from service.judge import latency_per_sample
    from trainers.loop import torch_threads
    from trainers.families import get_family

    data = load_digits()
    x, y = data.data[:400].astype(np.float32), data.target[:400]
    cfg = ModelConfig(in_features=64, n_classes=10, hidden=16, image_shape=(1, 8, 8))
    trainer = FoldTrainer(cfg, TrainConfig(epochs=2), x, y, seed=0)
    for _ in range(2):
        trainer.train_epoch()
    family = get_family("logreg")
    lr_cfg, lr_fit = family.split({"max_iter": 100}, cfg)
    fit = family.start(lr_cfg, lr_fit, x, y, seed=0)
    for _ in range(fit.rounds):
        fit.advance()
    teacher_dir = EnsemblePredictor([trainer.model, fit.model], [cfg, lr_cfg]).save(tmp_path / "teacher")
    teacher = EnsemblePredictor.load(teacher_dir)
    dcfg = DistillConfig(sizes=[{"hidden": 4}, {"hidden": 8, "depth": 2}], epochs=3)

    def ms(predicts, rows):
        return {k: 1e3 * v for k, v in latency_per_sample(predicts, rows, 1, 3).items()}

    remote = size_student(dcfg, cfg, x, y, teacher, seed=2, latency=ms, teacher_dir=teacher_dir,
                          ray_resources={"num_cpus": 0.5, "num_gpus": 0})
    with torch_threads(1):
        local = size_student(dcfg, cfg, x, y, teacher, seed=2, latency=ms)
    assert remote.info["ray"] and not local.info["ray"]
    assert np.array_equal(remote.validation, local.validation)
    # same function, same seed and rows: the same students (thread counts may only reorder float sums)
    np.testing.assert_allclose([c["val_accuracy"] for c in remote.info["candidates"]],
                               [c["val_accuracy"] for c in local.info["candidates"]], atol=1.5 / len(local.validation))
    assert remote.info["teacher_val_accuracy"] == local.info["teacher_val_accuracy"]
