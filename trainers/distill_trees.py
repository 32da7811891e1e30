"""A boosted-tree student (distill.student.family: lightgbm): the ensemble distilled into a few small trees.

The soft-target loss of trainers.distill, alpha*teacher + (1-alpha)*label, for a learner without a
gradient step of ours: each training row appears once per class, labelled with that class and
weighted by its target probability, so the library's own weighted multiclass (or binary) log loss
is exactly the cross-entropy against the soft targets (LightGBM's `cross_entropy` objective takes
soft labels, but for two classes only). A regression student fits alpha*teacher + (1-alpha)*target.
The temperature is a network's (it softens logits a network then matches): the trees learn the
teacher's probabilities as they are.
"""
from __future__ import annotations

import math
import time

import numpy as np

from trainers.config import DistillConfig
from trainers.families import get_family
from trainers.families._booster import trial_threads
from trainers.families.config import ModelConfig

MIN_TARGET = 1e-4  # a (row, class) pair whose soft target is below this is left out: it would teach nothing
BLOCKS = 10  # trees are grown in this many blocks; the run's deadline is checked between them


def soft_rows(x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, labels, weights): row i once per class k with target[i, k] >= MIN_TARGET."""
    rows, labels = np.nonzero(targets >= MIN_TARGET)
    return x[rows], labels, targets[rows, labels]


def distill_trees(cfg: DistillConfig, model_cfg: ModelConfig, x, y: np.ndarray, teacher, seed: int = 0,
                  deadline: float | None = None):
    """(booster, loss after each block). x: the transfer set as the teacher reads it (a table's rows, or a
    matrix); deadline (time.time()): no block starts after it but the first."""
    family = get_family(model_cfg.family)
    params = family.Params.model_validate(model_cfg.options)
    teacher_out = np.asarray(teacher.predict_proba(x), dtype=np.float64)
    encoded = np.asarray(x if model_cfg.table is None else model_cfg.table.transform(x), dtype=np.float32)
    y = np.asarray(y)
    if model_cfg.task == "regression":
        targets = cfg.alpha * teacher_out[:, 0] + (1 - cfg.alpha) * y.astype(np.float64)
        data = family.dataset(model_cfg, encoded, targets)
    else:
        targets = cfg.alpha * teacher_out + (1 - cfg.alpha) * np.eye(model_cfg.n_classes)[y.astype(np.int64)]
        data = family.dataset(model_cfg, *soft_rows(encoded, targets))
    model, losses = None, []
    blocks = min(BLOCKS, params.n_estimators)
    for block in range(1, blocks + 1):
        more = math.ceil(params.n_estimators * block / blocks) - family.trees(model)
        model = family.grow(model, model_cfg, params, data, more, seed + block, trial_threads(), False)
        losses.append(_loss(family.proba(model, encoded), targets))
        if deadline is not None and time.time() >= deadline:
            break
    return model, losses


def _loss(out: np.ndarray, targets: np.ndarray) -> float:
    """Cross-entropy against the soft targets (a regression target: the squared error)."""
    if targets.ndim == 1:
        return float(np.mean((out[:, 0] - targets) ** 2))
    return float(-(targets * np.log(np.clip(out, 1e-15, 1.0))).sum(1).mean())
