"""cnn: two conv blocks and a small head, for rows that are images (data.image_shape)."""
from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from trainers.families.config import MAX_CHANNELS, MAX_HIDDEN, Activation, ModelConfig
from trainers.families.standardize import Standardize
from trainers.families.torchnet import ACTIVATIONS, BuiltinNetFamily


class CNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    channels: int = Field(16, ge=1, le=MAX_CHANNELS)  # of the first conv block; the second has twice
    hidden: int = Field(128, ge=1, le=MAX_HIDDEN)  # head width
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    activation: Activation = "relu"


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


class CNNFamily(BuiltinNetFamily):
    name = "cnn"
    needs_image_shape = True
    student_keys = ("hidden", "channels")
    Params = CNNParams
    net = CNN

    def parameter_count(self, model_cfg: ModelConfig) -> int:
        k, width, ch = model_cfg.n_classes, model_cfg.hidden, model_cfg.channels
        c, h, w = model_cfg.image_shape or (1, 1, 1)
        convs = (c * ch * 9 + ch) + 2 * ch + (ch * 2 * ch * 9 + 2 * ch) + 2 * 2 * ch
        flat = 2 * ch * max(1, h // 2) * max(1, w // 2)
        return convs + flat * width + width + width * k + k
