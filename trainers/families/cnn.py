"""cnn: two conv blocks and a small head, for rows that are images (data.image_shape)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trainers.families.config import MAX_CHANNELS, MAX_HIDDEN, Activation, ModelConfig
from trainers.families.torchnet import BuiltinNetFamily


class CNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    channels: int = Field(16, ge=1, le=MAX_CHANNELS)  # of the first conv block; the second has twice
    hidden: int = Field(128, ge=1, le=MAX_HIDDEN)  # head width
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    activation: Activation = "relu"


class CNNFamily(BuiltinNetFamily):
    name = "cnn"
    needs_image_shape = True
    student_keys = ("hidden", "channels")
    Params = CNNParams
    net = "trainers.families.nets.cnn:CNN"

    def parameter_count(self, model_cfg: ModelConfig) -> int:
        k, width, ch = model_cfg.n_classes, model_cfg.hidden, model_cfg.channels
        c, h, w = model_cfg.image_shape or (1, 1, 1)
        convs = (c * ch * 9 + ch) + 2 * ch + (ch * 2 * ch * 9 + 2 * ch) + 2 * 2 * ch
        flat = 2 * ch * max(1, h // 2) * max(1, w // 2)
        return convs + flat * width + width + width * k + k
