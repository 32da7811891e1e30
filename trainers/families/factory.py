"""torch: the user's own network, `model: {family: torch, factory: "pkg.module:build"}`.

The factory is code the user runs: it is called as
`build(in_features, n_classes, image_shape, **options)` and must return an nn.Module mapping
(rows, in_features) float32 to (rows, n_classes) logits (a regression target: n_classes is 1, and its
one output learns the standardised target). Inputs are standardised in front of it (fitted on each
fold's training rows), as for the built-in nets. Every key of the trial that is
not a TrainConfig field goes to the factory as a keyword (`options`).
"""
from __future__ import annotations

import importlib

from pydantic import BaseModel, ConfigDict

from trainers.families.torchnet import TorchFamily


class FactoryParams(BaseModel):
    # the factory's keywords are its own business: any scalar values, checked by the factory
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


def add_code_dirs(dirs: list[str]) -> None:
    """Make the user's factory module importable here and in the processes this one starts (a local
    Ray started from here inherits PYTHONPATH): the spec's directory and where the user ran from."""
    import os
    import sys

    for d in reversed(dirs):
        if d not in sys.path:
            sys.path.insert(0, d)
    known = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    os.environ["PYTHONPATH"] = os.pathsep.join([*(d for d in dirs if d not in known), *known]).rstrip(os.pathsep)


def resolve_factory(path: str):
    """'pkg.module:function' -> the function; ValueError naming what is missing."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"model.factory: an importable module expected, but importing {module_name!r} failed "
                         f"({type(err).__name__}: {str(err)[:200]})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"model.factory: a callable {attr!r} in module {module_name!r} expected, but got "
                         f"{type(fn).__name__}")
    return fn


class TorchFactoryFamily(TorchFamily):
    name = "torch"
    runs_user_code = True
    Params = FactoryParams

    def accepts(self, key: str) -> bool:
        return True  # open: split routes every non-TrainConfig key to the factory as a keyword

    def split(self, flat: dict, base):
        from trainers.families.config import ModelConfig
        from trainers.train_config import TrainConfig

        train_part = {k: v for k, v in flat.items() if k in TrainConfig.model_fields}
        options = {k: v for k, v in flat.items() if k not in TrainConfig.model_fields}
        model_cfg = ModelConfig.model_validate({**base.model_dump(), "family": self.name,
                                                "options": {**base.options, **options}})
        return model_cfg, TrainConfig.model_validate(train_part)

    def build(self, model_cfg):
        from torch import nn

        from trainers.families.nets.parts import Standardized

        if not model_cfg.factory:
            raise ValueError("model.factory: 'package.module:function' expected for family torch, but got none")
        fn = resolve_factory(model_cfg.factory)
        image_shape = tuple(model_cfg.image_shape) if model_cfg.image_shape else None
        net = fn(model_cfg.in_features, model_cfg.n_classes, image_shape, **model_cfg.options)
        if not isinstance(net, nn.Module):
            raise ValueError(f"model.factory: an nn.Module returned by {model_cfg.factory} expected, but got "
                             f"{type(net).__name__}")
        return Standardized(model_cfg.in_features, net)

    def parameter_count(self, model_cfg) -> int:
        return sum(p.numel() for p in self.build(model_cfg).parameters() if p.requires_grad)
