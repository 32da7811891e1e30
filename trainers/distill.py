"""Distillation: a small student trained on the ensemble's soft targets (Hinton et al. 2015).

loss = alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*CE(student, labels)
(trainers.losses.distillation_loss); for a regression target the student regresses the teacher's
predicted values mixed with the targets, alpha*MSE(student, teacher) + (1-alpha)*MSE(student, target),
in standard deviations of the target (temperature unused). The teacher's probabilities on the transfer set (the
training split) are computed once, before the first epoch. With mixup on, each batch is mixed
and the teacher relabels the mixed rows (its targets for a blend are not the blend of its
targets), so then the teacher runs once per batch.

`distill` is the in-process function; `distill_on_ray` runs the very same function in a Ray task
or on one Ray Train worker (trainers.raytrain).

Sizing (distill.sizes): `size_student` distils each candidate shape on part of the training split,
scores it and the teacher on the rest, and picks a shape by `choose_student`'s rule; the caller
then distils the chosen shape on the whole training split.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainers.augment import mixup
from trainers.config import DistillConfig, StudentConfig
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families import build_model, get_family
from trainers.families.config import ModelConfig
from trainers.families.nets.parts import trains_in_pairs
from trainers.loop import as_device
from trainers.losses import distillation_loss, regression_loss
from trainers.metrics import score
from trainers.task import get_task
from trainers.raytrain import run_on_ray, state_from_numpy, state_to_numpy
from trainers.tables import TableEncoding, is_table

WEIGHT_DECAY = 1e-4  # DistillConfig has none; the trials' default (TrainConfig.weight_decay)
TREE_KEYS = ("trees", "leaves")  # StudentConfig fields only a boosted-tree student reads


def student_model_config(student: StudentConfig, like: ModelConfig, x=None) -> ModelConfig:
    """The student's ModelConfig: its shape from the spec, its output (and a matrix's width) from the
    teacher's members. A table's rows (x) get the student's own encoding, fitted on them: the student
    carries it, as every model of a table does."""
    family = get_family(student.family)
    # a network's shape is ModelConfig's own fields; a booster's, its options (trainers.distill_trees)
    own = (student.model_dump(exclude=set(TREE_KEYS)) if family.is_torch else
           {"family": family.name, "options": family.student_options(student.shape())})
    cfg = ModelConfig.model_validate({**own, "in_features": like.in_features, "n_classes": like.n_classes,
                                      "image_shape": like.image_shape, "task": like.task})
    if is_table(x):
        encoding = TableEncoding.fit(x, get_family(student.family).table_encoding)
        cfg = cfg.model_copy(update={"table": encoding, "in_features": encoding.width})
    return cfg


class Distiller:
    """Trains one student one epoch at a time (AdamW + cosine, seeded data order and init)."""

    def __init__(self, cfg: DistillConfig, model_cfg: ModelConfig, x: np.ndarray, y: np.ndarray,
                 teacher: EnsemblePredictor, seed: int, device: torch.device | str = "cpu"):
        self.cfg, self.device = cfg, as_device(device)
        # the teacher labels every row (and every mixed batch) where the student trains: on a GPU, not the CPU
        self.teacher = teacher.on(self.device)
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # init and dropout; the generator drives order and mixup
        if model_cfg.table is not None and cfg.mixup_alpha > 0:
            # mixed rows exist only in the student's encoding, where the teacher cannot read them
            raise ValueError(f"distill.mixup_alpha: 0 for a table's rows expected, but got {cfg.mixup_alpha}")
        encoded = x if model_cfg.table is None else model_cfg.table.transform(x)
        self.regression = model_cfg.task == "regression"
        self.x = torch.as_tensor(np.asarray(encoded, dtype=np.float32), device=self.device)
        self.y = torch.as_tensor(np.asarray(y, dtype=np.float32 if self.regression else np.int64), device=self.device)
        self.n_classes = model_cfg.n_classes
        # computed once, from the rows as the teacher reads them: the transfer set does not change
        self.teacher_probs = torch.as_tensor(self.teacher.predict_proba(x), dtype=torch.float32, device=self.device)
        self.model = build_model(model_cfg).to(self.device)
        self.min_batch = 2 if trains_in_pairs(self.model) else 1
        self.model.standardize.fit(self.x)
        if self.regression:
            self.model.target.fit(self.y)
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
        targets = yb.reshape(-1, 1) if self.regression else F.one_hot(yb, self.n_classes).float()
        xm, ym = mixup(xb, targets, self.cfg.mixup_alpha, self.generator)
        return xm, self._teach(xm), ym  # cross_entropy takes probability targets as they are

    def train_epoch(self) -> float:
        self.model.train()
        order = torch.randperm(len(self.x), generator=self.generator).to(self.device)
        total = 0.0
        for start in range(0, len(order), self.cfg.batch_size):
            idx = order[start:start + self.cfg.batch_size]
            if len(idx) < self.min_batch:
                continue
            xb, tb, yb = self._batch(idx)
            if self.regression:
                out, scale = self.model(xb), self.model.target.scale
                loss = (self.cfg.alpha * regression_loss(out, tb, scale)
                        + (1 - self.cfg.alpha) * regression_loss(out, yb, scale))
            else:
                loss = distillation_loss(self.model(xb), tb, yb, self.cfg.temperature, self.cfg.alpha)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += float(loss.detach()) * len(idx)
        self.sched.step()
        return total / len(order)


def distill(cfg: DistillConfig, model_cfg: ModelConfig, x: np.ndarray, y: np.ndarray, teacher: EnsemblePredictor,
            seed: int = 0, device: torch.device | str = "cpu",
            deadline: float | None = None) -> tuple[nn.Module, list[float]]:
    """In-process distillation on (x, y), the training split. Returns (student in eval mode on CPU,
    mean loss per epoch). deadline (time.time(), a run's time budget): no epoch starts after it but the first."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"as many labels as rows (>= 2) must hold, but got {len(x)} rows and {len(y)} labels")
    if not get_family(model_cfg.family).is_torch:
        from trainers.distill_trees import distill_trees

        return distill_trees(cfg, model_cfg, x, y, teacher, seed, deadline)
    run = Distiller(cfg, model_cfg, x, y, teacher, seed, device)
    losses: list[float] = []
    while len(losses) < cfg.epochs and not (losses and deadline is not None and time.time() >= deadline):
        losses.append(run.train_epoch())
    return run.model.cpu().eval(), losses


def _distill_payload(payload: dict) -> dict:
    """What a Ray worker runs (the Ray Train worker, or a sized candidate's task): rebuild the
    teacher from its files, then `distill`."""
    from trainers.loop import pick_device

    device = pick_device()
    with tempfile.TemporaryDirectory() as tmp:
        for name, blob in payload["teacher"].items():
            (Path(tmp) / name).write_bytes(blob)
        teacher = EnsemblePredictor.load(tmp, device=device)
    model, losses = distill(DistillConfig.model_validate(payload["cfg"]),
                            ModelConfig.model_validate(payload["model_cfg"]), payload["x"], payload["y"],
                            teacher, payload["seed"], device, payload.get("deadline"))
    return {"model": _dump(model, payload["model_cfg"]), "losses": losses}


def _dump(model, model_cfg: dict) -> dict:
    """A distilled student as it travels back from a Ray worker: a network's weights as numpy, a booster's
    own model format (its family's dump)."""
    family = get_family(model_cfg["family"])
    return state_to_numpy(model.state_dict()) if family.is_torch else family.dump(model)


def _rebuild(model_cfg: ModelConfig, dumped: dict):
    family = get_family(model_cfg.family)
    if not family.is_torch:
        return family.load(model_cfg, dumped)
    model = build_model(model_cfg)
    model.load_state_dict(state_from_numpy(dumped))
    return model.eval()


def _teacher_files(teacher_dir: str | Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(teacher_dir).iterdir() if p.is_file()}


def distill_on_ray(cfg: DistillConfig, model_cfg: ModelConfig, x: np.ndarray, y: np.ndarray,
                   teacher_dir: str | Path, seed: int = 0, deadline: float | None = None,
                   **ray_options) -> tuple[nn.Module, list[float]]:
    """`distill` in a Ray task, or on one Ray Train (TorchTrainer) worker with ray_train=True. The
    teacher travels as its bundle's files (worker nodes need not share a disk with the driver).
    ray_options: run_on_ray's keywords (name, ray_train, storage_path, cpus_per_worker, gpus_per_worker)."""
    payload = {"cfg": cfg.model_dump(mode="json"), "model_cfg": model_cfg.model_dump(mode="json"),
               "x": _rows(x), "y": _targets(y), "seed": seed, "deadline": deadline,
               "teacher": _teacher_files(teacher_dir)}
    out = run_on_ray(_distill_payload, payload, **{"name": "distill", **ray_options})
    return _rebuild(model_cfg, out["model"]), out["losses"]


def _rows(x):
    """A transfer set as it travels: a table's rows as they are, a matrix as float32."""
    return x if is_table(x) else np.asarray(x, dtype=np.float32)


def _targets(y) -> np.ndarray:
    """Class indices as int64, a regression target's values as float64."""
    y = np.asarray(y)
    return y.astype(np.float64) if y.dtype.kind == "f" else y.astype(np.int64)


# ---- sizing: which student shape ----

# (predicts: name -> predict_proba, rows) -> name -> milliseconds per row at batch 1. Supplied by the
# caller (service.judge's timer) so the budget is checked with the clock the judged student row uses.
LatencyFn = Callable[[dict[str, Callable[[np.ndarray], object]], np.ndarray], dict[str, float]]


def validation_split(y: np.ndarray, fraction: float, seed: int,
                     task: str = "classification") -> tuple[np.ndarray, np.ndarray]:
    """(transfer positions, validation positions), sorted, into the rows given (the caller passes the
    training split only, so no test row can be drawn). Stratified, so every class (a regression target:
    every quantile bin) is scored; a plain shuffled split when some class has a single row or the share
    is too small to hold every class."""
    from sklearn.model_selection import train_test_split

    y = get_task(task).strata(np.asarray(y), max(2, int(round(1 / min(fraction, 1 - fraction)))))
    n = len(y)
    n_val = int(np.ceil(n * fraction))
    if n_val < 1 or n - n_val < 2:
        raise ValueError(f"at least 1 validation row and 2 transfer rows must hold (distill.validation_fraction="
                         f"{fraction} of {n} training rows), but got {n_val} and {n - n_val}")
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 and len(counts) <= min(n_val, n - n_val) else None
    fit, val = train_test_split(np.arange(n), test_size=n_val, stratify=stratify, random_state=seed)
    return np.sort(fit), np.sort(val)


STUDENT_METRICS = {"classification": "accuracy", "regression": "rmse"}  # what sizing scores candidates by


def choose_student(candidates: list[dict], teacher_score: float, margin: float,
                   max_latency_ms: float | None = None, metric: str = "accuracy") -> tuple[int, str]:
    """(index of the chosen candidate, why). candidates: {"parameters", f"val_{metric}", "latency_ms_b1"};
    metric: accuracy (higher is better) or rmse (lower is better).

    No budget: the smallest (fewest parameters) whose validation score is within `margin` of the
    teacher's (accuracy: margin points below it; rmse: at most (1 + margin) times it); if none is, the
    best. Budget: the best under it; if none is, the fastest. Ties go to the smaller model, then to the
    earlier candidate.
    """
    if not candidates:
        raise ValueError("at least one candidate must hold, but got none")
    order, key, up = range(len(candidates)), f"val_{metric}", metric == "accuracy"

    def quality(i):
        return candidates[i][key] if up else -candidates[i][key]

    def best(idx):
        return max(idx, key=lambda i: (quality(i), -candidates[i]["parameters"], -i))

    if max_latency_ms is not None:
        under = [i for i in order if candidates[i]["latency_ms_b1"] <= max_latency_ms]
        if under:
            return best(under), (f"best validation {metric} of the {len(under)} candidate(s) under the latency "
                                 f"budget of {max_latency_ms:g} ms/row")
        fastest = min(order, key=lambda i: (candidates[i]["latency_ms_b1"], candidates[i]["parameters"], i))
        return fastest, (f"no candidate under the latency budget of {max_latency_ms:g} ms/row: the fastest "
                         f"({candidates[fastest]['latency_ms_b1']:.3f} ms/row)")
    # accuracies are counts over the same rows; the epsilon keeps float rounding of
    # teacher - margin from excluding a candidate exactly at the margin
    if up:
        within = [i for i in order if candidates[i][key] >= teacher_score - margin - 1e-9]
    else:
        within = [i for i in order if candidates[i][key] <= teacher_score * (1 + margin) + 1e-12]
    how = f"{margin:g}" if up else f"{margin:.0%}"
    if within:
        smallest = min(within, key=lambda i: (candidates[i]["parameters"], -quality(i), i))
        return smallest, (f"smallest of the {len(within)} candidate(s) within {how} of the teacher's "
                          f"validation {metric} ({teacher_score:.4f})")
    return best(order), (f"no candidate within {how} of the teacher's validation {metric} "
                         f"({teacher_score:.4f}): the best")


@dataclass
class Sizing:
    student: StudentConfig  # the chosen shape, to distil on the whole training split
    info: dict  # JSON-able: candidates, choice, reason, teacher's score, row counts
    validation: np.ndarray  # positions (into the rows given) the candidates were scored on




def size_student(cfg: DistillConfig, like: ModelConfig, x: np.ndarray, y: np.ndarray, teacher: EnsemblePredictor,
                 seed: int = 0, *, latency: LatencyFn, device: torch.device | str = "cpu",
                 teacher_oof: np.ndarray | None = None, teacher_dir: str | Path | None = None,
                 ray_resources: dict | None = None, deadline: float | None = None) -> Sizing:
    """Distil every shape of cfg.candidates() on the transfer rows of (x, y), the training split, and
    choose one on its held-out validation rows (validation_split) by choose_student.

    teacher_oof: the teacher's out-of-fold probabilities for every row of x. The teacher's members
    trained on these rows, so its own predictions flatter it there (a forest gets nearly all of them
    right and no student would be within the margin); None: its own predictions, marked in-sample.
    ray_resources: None = in-process, one candidate after another; else {"num_cpus", "num_gpus"} per
    candidate, each a Ray task (needs teacher_dir, the teacher's saved bundle).
    deadline (time.time()): each candidate stops training at it (after its first epoch or block).
    """
    x, y = _rows(x), _targets(y)
    metric = STUDENT_METRICS[like.task]
    if len(x) != len(y):
        raise ValueError(f"as many labels as rows must hold, but got {len(x)} rows and {len(y)} labels")
    if teacher_oof is not None and np.shape(teacher_oof)[0] != len(x):
        raise ValueError(f"teacher_oof with one row per training row must hold, but got {np.shape(teacher_oof)[0]} "
                         f"rows for {len(x)}")
    shapes = cfg.candidates()
    fit, val = validation_split(y, cfg.validation_fraction, seed, like.task)
    # a table's candidates encode it from their own transfer rows, never the validation ones
    model_cfgs = [student_model_config(s, like, x[fit]) for s in shapes]
    if ray_resources is None:
        models = [distill(cfg, m, x[fit], y[fit], teacher, seed, device, deadline)[0] for m in model_cfgs]
    else:
        if teacher_dir is None:
            raise ValueError("candidates on Ray need the teacher's bundle directory, but got teacher_dir=None")
        models = _candidates_on_ray(cfg, model_cfgs, x[fit], y[fit], teacher_dir, seed, ray_resources, deadline)
    honest = teacher_oof is not None
    teacher_score = score(metric, y[val], teacher_oof[val] if honest else teacher.predict_proba(x[val]))
    # served the way the judged student is: a one-member bundle's predict_proba
    predictors = {str(i): EnsemblePredictor([m], [c], kind="student")
                  for i, (m, c) in enumerate(zip(models, model_cfgs))}
    ms = latency({k: p.predict_proba for k, p in predictors.items()}, x[val])
    candidates = [{"family": s.family, "shape": s.shape(), "parameters": c.parameter_count(),
                   f"val_{metric}": score(metric, y[val], predictors[str(i)].predict_proba(x[val])),
                   "latency_ms_b1": float(ms[str(i)])}
                  for i, (s, c) in enumerate(zip(shapes, model_cfgs))]
    chosen, reason = choose_student(candidates, teacher_score, cfg.margin, cfg.max_latency_ms, metric)
    info = {"candidates": candidates, "chosen": chosen, "reason": reason, "metric": metric,
            f"teacher_val_{metric}": teacher_score,
            "teacher_score": "out-of-fold" if honest else "in-sample (the teacher trained on these rows)",
            "margin": cfg.margin, "max_latency_ms": cfg.max_latency_ms, "transfer_rows": len(fit),
            "validation_rows": len(val), "ray": ray_resources is not None}
    return Sizing(shapes[chosen], info, val)


def _candidate_task(common: dict, model_cfg: dict) -> dict:
    """One candidate in a Ray task: the shared payload (resolved from the object store) + its shape."""
    return _distill_payload({**common, "model_cfg": model_cfg})


def _candidates_on_ray(cfg: DistillConfig, model_cfgs: list[ModelConfig], x: np.ndarray, y: np.ndarray,
                       teacher_dir: str | Path, seed: int, resources: dict,
                       deadline: float | None = None) -> list[nn.Module]:
    """One Ray task per candidate, all submitted at once so they run side by side on free CPUs.

    Tasks rather than one Ray Train run each: candidates are several small independent fits, and a
    task gets what a Train worker would here (num_cpus/num_gpus placement, retries when its
    worker dies) without a worker group and a controller per candidate, whose start-up dominates
    models this small (as refit.py found); the transfer set and teacher go into the object store
    once, not once per candidate. Fractional num_cpus are fine: a task holds its share only while
    it runs, so more candidates than CPUs queue instead of deadlocking.
    """
    from trainers.raytrain import running_ray

    ray = running_ray()
    common = ray.put({"cfg": cfg.model_dump(mode="json"), "x": x, "y": y, "seed": seed, "deadline": deadline,
                      "teacher": _teacher_files(teacher_dir)})
    task = ray.remote(_candidate_task).options(num_cpus=float(resources.get("num_cpus", 1.0)),
                                               num_gpus=float(resources.get("num_gpus", 0.0)))
    outs = ray.get([task.remote(common, m.model_dump(mode="json")) for m in model_cfgs])
    return [_rebuild(m, out["model"]) for m, out in zip(model_cfgs, outs)]
