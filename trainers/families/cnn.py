"""cnn: two conv blocks and a small head, for rows that are images (data.image_shape)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trainers.families.torchnet import BuiltinNetFamily
from trainers.models import CNN, MAX_CHANNELS, MAX_HIDDEN, Activation


class CNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    channels: int = Field(16, ge=1, le=MAX_CHANNELS)  # of the first conv block; the second has twice
    hidden: int = Field(128, ge=1, le=MAX_HIDDEN)  # head width
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    activation: Activation = "relu"


class CNNFamily(BuiltinNetFamily):
    name = "cnn"
    Params = CNNParams
    net = CNN
