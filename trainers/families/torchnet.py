"""What the torch families share: a network trained by the plain loop (trainers.loop.FoldTrainer),
TrainConfig's optimisation knobs, and weights-only state dicts."""
from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from trainers.families._base import Cost, Family, Fit

def trains_in_pairs(model: nn.Module) -> bool:
    """BatchNorm cannot train on a one-row batch: a model with it skips such a batch."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class TargetScale(nn.Module):
    """A regression target's mean and scale, fitted on the fold's training targets (buffers: saved with
    the weights): the net learns the standardised target and the model answers in the target's units."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1))
        self.register_buffer("scale", torch.ones(1))

    def fit(self, y: torch.Tensor) -> "TargetScale":
        y = y.reshape(-1).float()
        self.mean.copy_(y.mean().reshape(1))
        self.scale.copy_(y.std(unbiased=False).clamp_min(1e-6).reshape(1))
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale + self.mean


class Regressor(nn.Module):
    """A torch family's net with one output, answering a regression target's value (trainers.task)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.target = net, TargetScale()

    @property
    def standardize(self):
        return self.net.standardize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.target(self.net(x))


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}  # config.Activation's names


class TorchFamily(Family):
    is_torch = True

    def keys(self) -> set[str]:
        from trainers.loop import TrainConfig

        return set(self.Params.model_fields) | set(TrainConfig.model_fields)

    @abstractmethod
    def build(self, model_cfg) -> nn.Module:
        """An untrained network for this config (with a `standardize` input layer), n_classes outputs."""

    def network(self, model_cfg) -> nn.Module:
        """build(), answering in a regression target's units when the config is a regression's."""
        net = self.build(model_cfg)
        return Regressor(net) if model_cfg.task == "regression" else net

    def model_update(self, model_part: dict) -> dict:
        """ModelConfig fields these model keys set (the built-in nets keep them as top-level fields)."""
        return self.Params.model_validate(model_part).model_dump(exclude_unset=True)

    def split(self, flat: dict, base) -> tuple[object, BaseModel]:
        from trainers.families.config import ModelConfig
        from trainers.loop import TrainConfig

        model_part = {k: v for k, v in flat.items() if k in self.Params.model_fields}
        train_part = {k: v for k, v in flat.items() if k not in self.Params.model_fields}
        update = {"family": self.name, **self.model_update(model_part)}
        model_cfg = ModelConfig.model_validate({**base.model_dump(), **update})
        return model_cfg, TrainConfig.model_validate(train_part)

    def cost(self, model_cfg, fit_cfg, rows: int) -> Cost:
        return Cost(size=int(self.parameter_count(model_cfg) or 0), work=int(fit_cfg.epochs))

    def start(self, model_cfg, fit_cfg, x, y, seed, device="cpu", data_parallel=None) -> Fit:
        from trainers.loop import FoldTrainer

        return FoldTrainer(model_cfg, fit_cfg, x, y, seed, device, data_parallel)

    @torch.no_grad()
    def proba(self, model: nn.Module, x: np.ndarray) -> np.ndarray:
        from trainers.task import get_task

        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        task = "regression" if isinstance(model, Regressor) else "classification"
        return get_task(task).outputs(model.eval()(xt).float()).numpy().astype(np.float64)

    def dump(self, model: nn.Module) -> dict:
        return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}

    def load(self, model_cfg, payload: dict) -> nn.Module:
        model = self.network(model_cfg)
        state = {k: torch.as_tensor(v) for k, v in payload["state_dict"].items()}
        model.load_state_dict(state)
        return model.eval()


class BuiltinNetFamily(TorchFamily):
    """Networks whose shape knobs are ModelConfig fields (hidden, depth, channels, ...), built as net(cfg)."""

    net: ClassVar[type[nn.Module]]

    def build(self, model_cfg) -> nn.Module:
        return self.net(model_cfg)
