"""The mlp family's network."""
from __future__ import annotations

import torch
from torch import nn

from trainers.families.config import ModelConfig
from trainers.families.nets.parts import ACTIVATIONS
from trainers.families.nets.standardize import Standardize


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.standardize = Standardize(cfg.in_features)
        layers: list[nn.Module] = []
        width = cfg.in_features
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), ACTIVATIONS[cfg.activation](), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        layers.append(nn.Linear(width, cfg.n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))
