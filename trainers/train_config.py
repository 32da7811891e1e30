"""One trial's optimisation knobs and how a trial's flat hyperparameters split into a family's configs.
Torch-free, so that a spec parses (and a CLI error arrives) without importing the training loop."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainers.families.config import ModelConfig


MAX_EPOCHS = 10_000
MAX_CROP_PADDING = 64


class TrainConfig(BaseModel):
    """Optimisation knobs of one trial; every field can be searched or fixed in the spec."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(30, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(64, ge=1, le=65_536)
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd only
    schedule: Literal["cosine", "step", "none"] = "cosine"
    step_size: int = Field(10, ge=1, le=MAX_EPOCHS)  # step schedule: epochs between decays
    gamma: float = Field(0.1, gt=0.0, le=1.0)  # step schedule: decay factor
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)  # torch's own CrossEntropyLoss smoothing; classes only
    # a regression target's loss, on the standardised target: mse, or huber (delta 1 standard deviation:
    # squared near the fit, linear for outliers)
    regression_loss: Literal["mse", "huber"] = "mse"
    mixup_alpha: float = Field(0.0, ge=0.0, le=10.0)  # 0 = off
    cutmix_alpha: float = Field(0.0, ge=0.0, le=10.0)  # 0 = off; image-shaped data only
    # image-shaped data only: shift by up to this many pixels (zero padding, then a random H x W crop); 0 = off
    crop_padding: int = Field(0, ge=0, le=MAX_CROP_PADDING)
    hflip: float = Field(0.0, ge=0.0, le=1.0)  # image-shaped data only: mirror probability; true = 0.5, false = 0
    amp: bool = True  # bf16 autocast, CUDA only

    @field_validator("hflip", mode="before")
    @classmethod
    def _flip_flag(cls, v):
        # the usual flag: true flips half the images (a probability of 1 would only mirror the data set)
        return {True: 0.5, False: 0.0}[v] if isinstance(v, bool) else v


def split_params(params: dict, base_model: ModelConfig):
    """Flat trial hyperparameters -> (ModelConfig, the family's fit settings), by the family named in
    params ("family", when a sweep searches it) or the base config. Raises pydantic ValidationError."""
    from trainers.families import get_family
    from trainers.families.scope import effective_params

    params = effective_params(params, base_model.family)
    family = get_family(params.pop("family"))
    return family.split(params, base_model.model_copy(update={"family": family.name}))


def augmentation_problem(cfg: TrainConfig, image_shape: tuple[int, int, int] | None) -> str | None:
    """Why these augmentation knobs cannot run on rows of this shape, or None."""
    on = [k for k in ("crop_padding", "hflip", "cutmix_alpha") if getattr(cfg, k) > 0]
    if on and image_shape is None:
        return f"{on[0]}: image-shaped data (data.image_shape) expected, but got flat data (image_shape=None)"
    if cfg.crop_padding and image_shape is not None and cfg.crop_padding >= min(image_shape[1:]):
        return (f"crop_padding: < min(H, W) = {min(image_shape[1:])} expected, "
                f"but got crop_padding={cfg.crop_padding}")
    return None
