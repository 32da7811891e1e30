"""The plain-PyTorch train/eval loop. Runs with or without Ray, on CPU or CUDA.

On CUDA: bf16 autocast, channels_last for conv nets, and the training rows on the GPU when they fit
(a quarter of its free memory), else in pinned host memory with each batch copied without blocking.
There is no DataLoader: the rows are in memory already, batches are index gathers, and the
augmentations run on the device from the trial's one seeded generator (workers would each need
their own stream of draws, and a seed would no longer fix the batches).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from trainers.augment import cutmix, hflip, mixup, random_crop
from trainers.families import build_model
from trainers.families._base import Fit
from trainers.families.config import ModelConfig
from trainers.families.nets.parts import trains_in_pairs
from trainers.losses import regression_loss, soft_target_cross_entropy
from trainers.task import get_task
from trainers.train_config import TrainConfig, augmentation_problem


RESIDENT_SHARE = 0.25  # training rows stay on the GPU when they take at most this share of its free memory


@contextmanager
def torch_threads(n: int):
    """Intra-op threads for the in-process work, restored afterwards. Matches what a Ray worker
    with the same CPUs gets (Ray sets OMP_NUM_THREADS to its num_cpus). On a busy machine, more
    threads than free cores make small models tens of times slower (seen here: 0.07 s vs 5.5 s for
    the same three epochs with 1 vs 2 threads on a loaded 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pick_device(prefer_cuda: bool = True) -> torch.device:
    return as_device("cuda" if prefer_cuda and torch.cuda.is_available() else "cpu")


def as_device(device: torch.device | str) -> torch.device:
    """`device` with its index: a tensor made on "cuda" reports "cuda:0", and a bare "cuda" never
    equals it, so a check that a tensor is already where it belongs would always say no."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def rows_stay_on_device(nbytes: int, device: torch.device, free_bytes: int | None = None) -> bool:
    """Whether training rows of nbytes live on the device (CPU: always; CUDA: within RESIDENT_SHARE
    of its free memory, leaving the rest to activations); else they wait in pinned host memory."""
    if device.type != "cuda":
        return True
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    return nbytes <= RESIDENT_SHARE * free_bytes


class FoldTrainer(Fit):
    """The torch families' Fit: one network trained one epoch at a time, so the k folds of a trial
    can advance in lockstep and a per-epoch mean over folds can be reported to the scheduler."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, x_train: np.ndarray,
                 y_train: np.ndarray, seed: int, device: torch.device | str = "cpu",
                 data_parallel: tuple[int, int] | None = None):
        """data_parallel=(rank, world): this process is one replica of a DistributedDataParallel
        model (the process group must exist); each step trains on its share of the same batch."""
        self.cfg, self.model_cfg = train_cfg, model_cfg
        problem = augmentation_problem(train_cfg, model_cfg.image_shape)
        if problem:
            raise ValueError(problem)
        self.regression = model_cfg.task == "regression"
        if self.regression and train_cfg.label_smoothing > 0:
            raise ValueError(f"label_smoothing: 0 for a regression target expected, but got {train_cfg.label_smoothing}")
        self.device = as_device(device)
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # parameter init and dropout; the generator drives data order
        x_train = np.asarray(x_train, dtype=np.float32)
        # where the rows live between batches: the device, or pinned host memory for large sets
        self.store = self.device if rows_stay_on_device(x_train.nbytes, self.device) else torch.device("cpu")
        self.x = torch.as_tensor(x_train, device=self.store)
        self.y = torch.as_tensor(y_train, dtype=torch.float32 if self.regression else torch.long, device=self.store)
        if self.store != self.device:
            self.x, self.y = self.x.pin_memory(), self.y.pin_memory()
        self.model = build_model(model_cfg).to(self.device)
        if self.device.type == "cuda" and any(isinstance(m, torch.nn.Conv2d) for m in self.model.modules()):
            # NHWC lets cuDNN use tensor-core kernels under bf16; the flat rows are reshaped to NCHW
            # inside the model and the first conv converts them (its weight is channels_last)
            self.model = self.model.to(memory_format=torch.channels_last)
        # dropout draws from torch's global RNG, shared by the folds advancing side by side: each
        # fit keeps its own stream (seeded here, after init) and checkpoints it, so a resumed fit
        # continues exactly
        self.rng = self._rng_state()
        if len(self.x):  # streamed rows: the caller fits it from moments (Standardize.fit_moments)
            self.model.standardize.fit(self.x)  # scaling from this fold's training rows only
            if self.regression:
                self.model.target.fit(self.y.to(self.device))
        self.needs_pairs = trains_in_pairs(self.model)
        self.rank, self.world = data_parallel or (0, 1)
        self.net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # same seed on every rank: identical initial weights, batch order and augmentation draws
            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index]
                                               if self.device.type == "cuda" else None)
        params = self.model.parameters()
        if train_cfg.optimizer == "adamw":
            self.opt = torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        else:
            self.opt = torch.optim.SGD(params, lr=train_cfg.lr, momentum=train_cfg.momentum,
                                       weight_decay=train_cfg.weight_decay, nesterov=True)
        self.sched = {
            "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=train_cfg.epochs),
            "step": lambda: torch.optim.lr_scheduler.StepLR(self.opt, train_cfg.step_size, train_cfg.gamma),
            "none": lambda: None,
        }[train_cfg.schedule]()
        self.autocast = self.device.type == "cuda" and train_cfg.amp
        self.epoch = 0

    def _batch_targets(self, xb: torch.Tensor, yb: torch.Tensor):
        """Returns (inputs, soft targets or None). Mixup and cutmix alternate when both are on."""
        cfg, n_classes = self.cfg, self.model_cfg.n_classes
        use = [a for a in (("mixup", cfg.mixup_alpha), ("cutmix", cfg.cutmix_alpha)) if a[1] > 0]
        if not use or len(xb) < 2:
            return xb, None
        kind, alpha = use[int(torch.randint(len(use), (1,), generator=self.generator))]
        if self.regression:  # a number mixes as it is
            smooth = yb.float().reshape(-1, 1)
        else:
            smooth = F.one_hot(yb, n_classes).float() * (1 - cfg.label_smoothing) + cfg.label_smoothing / n_classes
        if kind == "mixup":
            return mixup(xb, smooth, alpha, self.generator)
        return cutmix(xb, smooth, alpha, self.model_cfg.image_shape, self.generator)

    def _augment(self, xb: torch.Tensor) -> torch.Tensor:
        """Random crop, then flip, of each image row; draws only for the knobs that are on."""
        cfg, shape = self.cfg, self.model_cfg.image_shape
        if cfg.crop_padding > 0:
            xb = random_crop(xb, shape, cfg.crop_padding, self.generator)
        if cfg.hflip > 0:
            xb = hflip(xb, shape, cfg.hflip, self.generator)
        return xb

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if t.device == self.device:
            return t
        if t.device.type != "cpu":
            return t.to(self.device)  # only host memory can be pinned
        # the gather is a fresh (pageable) tensor: pin it so the copy runs without blocking the host,
        # which gathers the next batch meanwhile (the caching host allocator keeps it alive until copied)
        return t.pin_memory().to(self.device, non_blocking=True)

    def _rng_state(self) -> torch.Tensor:
        if self.device.type == "cuda":
            return torch.cuda.get_rng_state(self.device)
        return torch.get_rng_state()

    def train_epoch(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None) -> float:
        """One pass over the training rows (in memory, or the given (x, y) batches of a stream);
        returns the mean training loss."""
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device.index] if cuda else [], device_type=self.device.type):
            if cuda:
                torch.cuda.set_rng_state(self.rng, self.device)
            else:
                torch.set_rng_state(self.rng)
            loss = self._train_epoch(self._batches() if batches is None else batches)
            self.rng = self._rng_state()
        return loss

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.x), generator=self.generator).to(self.store)
        for start in range(0, len(order), self.cfg.batch_size):
            idx = order[start:start + self.cfg.batch_size]
            yield self.x[idx], self.y[idx]

    def _train_epoch(self, batches) -> float:
        self.model.train()
        losses, sizes = [], []
        for xb, yb in batches:
            if len(yb) < 2 * self.world and (self.needs_pairs or self.world > 1):
                continue  # BatchNorm cannot train on one row; every replica needs a share
            xb, yb = self._to_device(xb), self._to_device(yb)
            xb, soft = self._batch_targets(self._augment(xb), yb)
            # each replica takes every world-th row of the (already augmented) batch; DDP averages
            # the gradients, which equals the full batch's mean loss for equal shares
            share = slice(self.rank, len(yb) - len(yb) % self.world, self.world)
            xb, yb = xb[share], yb[share]
            soft = None if soft is None else soft[share]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
                logits = self.net(xb)
            logits = logits.float()
            if self.regression:
                loss = regression_loss(logits, yb if soft is None else soft, self.model.target.scale,
                                       self.cfg.regression_loss)
            elif soft is None:
                loss = F.cross_entropy(logits, yb, label_smoothing=self.cfg.label_smoothing)
            else:
                loss = soft_target_cross_entropy(logits, soft)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            # kept on the device: reading each loss would make the host wait for every step
            losses.append(loss.detach())
            sizes.append(len(yb))
        if self.sched is not None:
            self.sched.step()
        self.epoch += 1
        values = torch.stack(losses).tolist() if losses else []
        return sum(v * n for v, n in zip(values, sizes)) / max(sum(sizes), 1)

    @property
    def rounds(self) -> int:
        return self.cfg.epochs

    @property
    def done(self) -> int:
        return self.epoch

    def advance(self) -> float:
        return self.train_epoch()

    def state(self) -> dict:
        state = {"opt": self.opt.state_dict(), "gen": self.generator.get_state(), "epoch": self.epoch,
                 "rng": self.rng.cpu()}
        if self.sched is not None:
            state["sched"] = self.sched.state_dict()
        return state

    def restore(self, model, state: dict) -> None:
        self.model.load_state_dict(model.state_dict())
        self.opt.load_state_dict(state["opt"])
        self.generator.set_state(state["gen"])
        self.rng = state.get("rng", self.rng).cpu()
        self.epoch = int(state["epoch"])
        if self.sched is not None:
            self.sched.load_state_dict(state["sched"])

    @property
    def task(self):
        return get_task(self.model_cfg.task)

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        self.model.eval()
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))  # on the host: one batch at a time goes over
        out = []
        for start in range(0, len(xt), batch_size):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
                logits = self.model(xt[start:start + batch_size].to(self.device))
            out.append(self.task.outputs(logits.float()).cpu())
        return torch.cat(out).numpy().astype(np.float64)
