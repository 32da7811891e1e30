"""What the torch families share: a network trained by the plain loop (trainers.loop.FoldTrainer),
TrainConfig's optimisation knobs, and weights-only state dicts."""
from __future__ import annotations

import importlib
from abc import abstractmethod
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from trainers.families._base import Cost, Family, Fit


class TorchFamily(Family):
    is_torch = True

    def keys(self) -> set[str]:
        from trainers.train_config import TrainConfig

        return set(self.Params.model_fields) | set(TrainConfig.model_fields)

    @abstractmethod
    def build(self, model_cfg):
        """An untrained network for this config (with a `standardize` input layer), n_classes outputs."""

    def network(self, model_cfg):
        """build(), answering in a regression target's units when the config is a regression's."""
        from trainers.families.nets.parts import Regressor

        net = self.build(model_cfg)
        return Regressor(net) if model_cfg.task == "regression" else net

    def model_update(self, model_part: dict) -> dict:
        """ModelConfig fields these model keys set (the built-in nets keep them as top-level fields)."""
        return self.Params.model_validate(model_part).model_dump(exclude_unset=True)

    def split(self, flat: dict, base) -> tuple[object, BaseModel]:
        from trainers.families.config import ModelConfig
        from trainers.train_config import TrainConfig

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

    def proba(self, model, x: np.ndarray) -> np.ndarray:
        import torch

        from trainers.families.nets.parts import Regressor
        from trainers.task import get_task

        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        task = "regression" if isinstance(model, Regressor) else "classification"
        with torch.no_grad():
            return get_task(task).outputs(model.eval()(xt).float()).numpy().astype(np.float64)

    def dump(self, model) -> dict:
        return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}

    def load(self, model_cfg, payload: dict):
        import torch

        model = self.network(model_cfg)
        state = {k: torch.as_tensor(v) for k, v in payload["state_dict"].items()}
        model.load_state_dict(state)
        return model.eval()


class BuiltinNetFamily(TorchFamily):
    """Networks whose shape knobs are ModelConfig fields (hidden, depth, channels, ...), built as net(cfg)
    from the class `net` names ("module:Class", imported on the first build)."""

    net: ClassVar[str]

    def build(self, model_cfg):
        module, _, name = self.net.partition(":")
        return getattr(importlib.import_module(module), name)(model_cfg)
