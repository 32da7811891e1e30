"""ModelConfig: everything needed to rebuild a model, stored inside every checkpoint; and the shape
limits the spec's model, search and distill sections share."""
from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from trainers.space import Scalar
from trainers.tables.encoding import TableEncoding

Activation = Literal["relu", "gelu", "tanh", "silu"]
DEFAULT_FAMILY = "mlp"  # model.family and distill.student.family when a spec names none (a registered name)

# shape limits shared by the spec's model, search and distill sections
MAX_HIDDEN, MAX_DEPTH, MAX_CHANNELS = 8192, 16, 512
MAX_IMAGE_SIDE = 65_536  # each of C, H, W
MAX_IMAGE_FEATURES = 1 << 24  # C*H*W: an image row of at most 16M values
MAX_FEATURES = 1 << 24  # in_features
MAX_CLASSES = 100_000
ImageShape = tuple[Annotated[int, Field(ge=1, le=MAX_IMAGE_SIDE)], Annotated[int, Field(ge=1, le=MAX_IMAGE_SIDE)],
                   Annotated[int, Field(ge=1, le=MAX_IMAGE_SIDE)]]


def image_shape_problem(shape: tuple[int, int, int] | None) -> str | None:
    """Why an image shape is too large, or None; the product is a Python int, so it cannot overflow."""
    if shape is not None and math.prod(shape) > MAX_IMAGE_FEATURES:
        return (f"C*H*W <= {MAX_IMAGE_FEATURES} must hold, but got {list(shape)} = {math.prod(shape)}")
    return None


class ModelConfig(BaseModel):
    """Everything needed to rebuild a model; stored inside every checkpoint."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # a name in trainers.families.FAMILIES (checked there; the default is the registry's DEFAULT_FAMILY)
    family: StrictStr = Field(DEFAULT_FAMILY, max_length=64)
    in_features: int = Field(0, ge=0, le=MAX_FEATURES)  # filled in from the data (0 = not yet known)
    # outputs, filled in from the data: one per class, or 1 for a regression target
    n_classes: int = Field(0, ge=0, le=MAX_CLASSES)
    task: Literal["classification", "regression"] = "classification"  # trainers.task: what the outputs mean
    image_shape: ImageShape | None = None  # (C, H, W) when rows are images
    # the shape fields of the built-in nets (trainers.families.torchnet.BuiltinNetFamily); each family
    # reads the ones it uses
    hidden: int = Field(128, ge=1, le=MAX_HIDDEN)  # hidden width (an MLP's layers, a CNN's head)
    depth: int = Field(2, ge=1, le=MAX_DEPTH)  # hidden layers
    channels: int = Field(16, ge=1, le=MAX_CHANNELS)  # channels of the first conv block
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    activation: Activation = "relu"
    # a family that runs user code: "package.module:function", called as
    # function(in_features, n_classes, image_shape, **options)
    factory: StrictStr | None = Field(None, max_length=256, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    # rows that are a table's records: the encoding fitted on this model's training rows (in_features is
    # its width); None for rows of numbers
    table: TableEncoding | None = None
    # the family's own hyperparameters where they are not fields above, checked by its Params schema
    options: dict[str, Scalar | None] = Field(default_factory=dict, max_length=64)

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        from trainers.families import known_family

        return known_family(v)

    @model_validator(mode="after")
    def _bounded_image(self) -> "ModelConfig":
        problem = image_shape_problem(self.image_shape)
        if problem:
            raise ValueError(problem)
        return self

    def parameter_count(self) -> int | None:
        """Trainable parameters of the model this builds, from the shape alone (a budget check must not
        allocate the model it is about to refuse); its family counts. None where it cannot tell."""
        from trainers.families import get_family

        return get_family(self.family).parameter_count(self)


