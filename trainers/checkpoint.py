"""Model files: the config that built a model travels with its weights; loaded weights-only."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from trainers.atomic import atomic_file
from trainers.models import ModelConfig, build_model


def save_model(path: str | Path, model: nn.Module, config: ModelConfig, extra: dict | None = None,
               sync: bool = False) -> None:
    """sync: fsync too (bundles); fold checkpoints written every few epochs skip it (see atomic_file)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # a bundle member half-written by a killed process must not load as a truncated model
    with atomic_file(path, sync=sync) as f:
        torch.save({"config": config.model_dump(mode="json"), "state_dict": state, "extra": extra or {}}, f)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig, dict]:
    """Rebuild a saved model in eval mode; returns (model, config, extra)."""
    blob = torch.load(path, map_location=map_location, weights_only=True)
    config = ModelConfig.model_validate(blob["config"])
    model = build_model(config)
    model.load_state_dict(blob["state_dict"])
    return model.eval(), config, blob.get("extra", {})
