"""Model files: the config that built a model travels with it; loaded weights-only.

One container for every family: torch.save of {"config", "extra", **Family.dump(model)}, where a
dump holds only tensors, arrays, bytes and plain values, so torch's weights-only loader reads it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainers.atomic import atomic_file
from trainers.families.config import ModelConfig


def save_model(path: str | Path, model: Any, config: ModelConfig, extra: dict | None = None,
               sync: bool = False) -> None:
    """sync: fsync too (bundles); fold checkpoints written every few epochs skip it (see atomic_file)."""
    from trainers.families import get_family

    blob = {"config": config.model_dump(mode="json"), "extra": extra or {}, **get_family(config.family).dump(model)}
    # a bundle member half-written by a killed process must not load as a truncated model
    with atomic_file(path, sync=sync) as f:
        torch.save(blob, f)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Any, ModelConfig, dict]:
    """Rebuild a saved model in eval mode; returns (model, config, extra)."""
    from trainers.families import get_family

    blob = torch.load(path, map_location=map_location, weights_only=True)
    config = ModelConfig.model_validate(blob["config"])
    return get_family(config.family).load(config, blob), config, blob.get("extra", {})
