"""mlp: a multi-layer perceptron for any numeric features."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trainers.families.config import MAX_DEPTH, MAX_HIDDEN, Activation, ModelConfig
from trainers.families.torchnet import BuiltinNetFamily


class MLPParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    hidden: int = Field(128, ge=1, le=MAX_HIDDEN)  # width of every hidden layer
    depth: int = Field(2, ge=1, le=MAX_DEPTH)  # hidden layers
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    activation: Activation = "relu"


class MLPFamily(BuiltinNetFamily):
    name = "mlp"
    student_keys = ("hidden", "depth")
    Params = MLPParams
    net = "trainers.families.nets.mlp:MLP"

    def parameter_count(self, model_cfg: ModelConfig) -> int:
        layers = [model_cfg.in_features] + [model_cfg.hidden] * model_cfg.depth + [model_cfg.n_classes]
        return sum(a * b + b for a, b in zip(layers, layers[1:]))
