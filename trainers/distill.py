"""Distillation: a small student trained on the ensemble's soft targets (Hinton et al. 2015).

loss = alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*CE(student, labels)
(trainers.losses.distillation_loss). The teacher's probabilities on the transfer set (the
training split) are computed once, before the first epoch. With mixup on, each batch is mixed
and the teacher relabels the mixed rows (its targets for a blend are not the blend of its
targets), so then the teacher runs once per batch.

`distill` is the in-process function; `distill_with_ray_train` runs the very same function on
one Ray Train worker.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainers.augment import mixup
from trainers.config import DistillConfig, StudentConfig
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.losses import distillation_loss
from trainers.models import ModelConfig, build_model
from trainers.raytrain import run_on_ray_train, state_from_numpy, state_to_numpy

WEIGHT_DECAY = 1e-4  # DistillConfig has none; the trials' default (TrainConfig.weight_decay)


def student_model_config(student: StudentConfig, like: ModelConfig) -> ModelConfig:
    """The student's ModelConfig: its shape from the spec, its input/output from the teacher's members."""
    return ModelConfig.model_validate({**student.model_dump(), "in_features": like.in_features,
                                       "n_classes": like.n_classes, "image_shape": like.image_shape})


class Distiller:
    """Trains one student one epoch at a time (AdamW + cosine, seeded data order and init)."""

    def __init__(self, cfg: DistillConfig, model_cfg: ModelConfig, x: np.ndarray, y: np.ndarray,
                 teacher: EnsemblePredictor, seed: int, device: torch.device | str = "cpu"):
        self.cfg, self.teacher, self.device = cfg, teacher, torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # init and dropout; the generator drives order and mixup
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        self.y = torch.as_tensor(np.asarray(y, dtype=np.int64), device=self.device)
        self.n_classes, self.family = model_cfg.n_classes, model_cfg.family
        # computed once: the transfer set does not change between epochs
        self.teacher_probs = self._teach(self.x)
        self.model = build_model(model_cfg).to(self.device)
        self.model.standardize.fit(self.x)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=WEIGHT_DECAY)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=cfg.epochs)

    def _teach(self, x: torch.Tensor) -> torch.Tensor:
        probs = self.teacher.predict_proba(x.cpu().numpy())
        return torch.as_tensor(probs, dtype=torch.float32, device=self.device)

    def _batch(self, idx: torch.Tensor):
        """(inputs, teacher probabilities, labels: class indices, or mixed one-hots under mixup)."""
        xb, yb = self.x[idx], self.y[idx]
        if self.cfg.mixup_alpha <= 0 or len(idx) < 2:
            return xb, self.teacher_probs[idx], yb
        xm, ym = mixup(xb, F.one_hot(yb, self.n_classes).float(), self.cfg.mixup_alpha, self.generator)
        return xm, self._teach(xm), ym  # cross_entropy takes probability targets as they are

    def train_epoch(self) -> float:
        self.model.train()
        order = torch.randperm(len(self.x), generator=self.generator).to(self.device)
        total = 0.0
        for start in range(0, len(order), self.cfg.batch_size):
            idx = order[start:start + self.cfg.batch_size]
            if len(idx) < 2 and self.family == "cnn":
                continue  # BatchNorm cannot train on a single row
            xb, tb, yb = self._batch(idx)
            loss = distillation_loss(self.model(xb), tb, yb, self.cfg.temperature, self.cfg.alpha)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += float(loss.detach()) * len(idx)
        self.sched.step()
        return total / len(order)


def distill(cfg: DistillConfig, model_cfg: ModelConfig, x: np.ndarray, y: np.ndarray, teacher: EnsemblePredictor,
            seed: int = 0, device: torch.device | str = "cpu") -> tuple[nn.Module, list[float]]:
    """In-process distillation on (x, y), the training split. Returns (student in eval mode on CPU,
    mean loss per epoch)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"as many labels as rows (>= 2) must hold, but got {len(x)} rows and {len(y)} labels")
    run = Distiller(cfg, model_cfg, x, y, teacher, seed, device)
    losses = [run.train_epoch() for _ in range(cfg.epochs)]
    return run.model.cpu().eval(), losses


def _distill_payload(payload: dict) -> dict:
    """What a Ray Train worker runs: rebuild the teacher from its files, then `distill`."""
    from trainers.loop import pick_device

    device = pick_device()
    with tempfile.TemporaryDirectory() as tmp:
        for name, blob in payload["teacher"].items():
            (Path(tmp) / name).write_bytes(blob)
        teacher = EnsemblePredictor.load(tmp, device=device)
    model, losses = distill(DistillConfig.model_validate(payload["cfg"]),
                            ModelConfig.model_validate(payload["model_cfg"]), payload["x"], payload["y"],
                            teacher, payload["seed"], device)
    return {"state_dict": state_to_numpy(model.state_dict()), "losses": losses}


def distill_with_ray_train(cfg: DistillConfig, model_cfg: ModelConfig, x: np.ndarray, y: np.ndarray,
                           teacher_dir: str | Path, seed: int = 0, **ray_options) -> tuple[nn.Module, list[float]]:
    """`distill` on one Ray Train (TorchTrainer) worker. The teacher travels as its bundle's files
    (worker nodes need not share a disk with the driver). ray_options: run_on_ray_train's
    keywords (name, storage_path, cpus_per_worker, gpus_per_worker)."""
    files = {p.name: p.read_bytes() for p in Path(teacher_dir).iterdir() if p.is_file()}
    payload = {"cfg": cfg.model_dump(mode="json"), "model_cfg": model_cfg.model_dump(mode="json"),
               "x": np.asarray(x, dtype=np.float32), "y": np.asarray(y, dtype=np.int64), "seed": seed,
               "teacher": files}
    out = run_on_ray_train(_distill_payload, payload, **{"name": "distill", **ray_options})
    model = build_model(model_cfg)
    model.load_state_dict(state_from_numpy(out["state_dict"]))
    return model.eval(), out["losses"]
