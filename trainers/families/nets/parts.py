"""Layers every torch family shares: a regression head's target scale, activations by name, the
standardised wrapper of a user's network, and which nets cannot train on a one-row batch."""
from __future__ import annotations

import torch
from torch import nn

from trainers.families.nets.standardize import Standardize


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


class Standardized(nn.Module):
    """A user's network (model.factory) behind the same fitted input standardisation as the built-in nets."""

    def __init__(self, in_features: int, net: nn.Module):
        super().__init__()
        self.standardize = Standardize(in_features)
        self.net = net

    def forward(self, x):
        return self.net(self.standardize(x))
