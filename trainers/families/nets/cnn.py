"""The cnn family's network."""
from __future__ import annotations

import torch
from torch import nn

from trainers.families.config import ModelConfig
from trainers.families.nets.parts import ACTIVATIONS
from trainers.families.nets.standardize import Standardize


class CNN(nn.Module):
    """Two conv blocks and a small head; rows arrive flat and are reshaped to image_shape."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.image_shape is None:
            raise ValueError("family 'cnn' needs data.image_shape, but got image_shape=None")
        self.image_shape = tuple(cfg.image_shape)
        c, h, w = self.image_shape
        act = ACTIVATIONS[cfg.activation]
        ch = cfg.channels
        self.standardize = Standardize(cfg.in_features, channels=c)
        self.features = nn.Sequential(
            nn.Conv2d(c, ch, 3, padding=1), nn.BatchNorm2d(ch), act(),
            nn.Conv2d(ch, 2 * ch, 3, padding=1), nn.BatchNorm2d(2 * ch), act(),
            nn.AdaptiveAvgPool2d((max(1, h // 2), max(1, w // 2))),
        )
        flat = 2 * ch * max(1, h // 2) * max(1, w // 2)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(flat, cfg.hidden), act(),
                                  nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x).reshape(-1, *self.image_shape)
        return self.head(self.features(x))
