"""An example user factory for family "torch" (`factory: "tests.trainers.factory_models:build"`):
raysemble calls build(in_features, n_classes, image_shape, **options) and puts a standardising
layer in front of what it returns."""
from __future__ import annotations

from torch import nn


def build(in_features: int, n_classes: int, image_shape: tuple[int, int, int] | None, width: int = 16) -> nn.Module:
    # image_shape is unused: this net reads rows flat, as every family receives them
    return nn.Sequential(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, n_classes))


def too_few_logits(in_features: int, n_classes: int, image_shape, width: int = 16) -> nn.Module:
    """A broken user network (one logit short): it builds, and fails only when a trial trains it."""
    return nn.Linear(in_features, n_classes - 1)
