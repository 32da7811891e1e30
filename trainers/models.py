"""Model families. Every model standardises its own input, so scaling travels with the weights."""
from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator
from torch import nn

from trainers.space import Scalar

Activation = Literal["relu", "gelu", "tanh", "silu"]
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}

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

    # a name in trainers.families.FAMILIES: mlp, cnn and resnet (need image_shape), torch (factory), hist_gb, ...
    family: StrictStr = Field("mlp", max_length=64)
    in_features: int = Field(0, ge=0, le=MAX_FEATURES)  # filled in from the data (0 = not yet known)
    n_classes: int = Field(0, ge=0, le=MAX_CLASSES)  # filled in from the data
    image_shape: ImageShape | None = None  # (C, H, W) when rows are images
    hidden: int = Field(128, ge=1, le=MAX_HIDDEN)  # MLP width / CNN head width
    depth: int = Field(2, ge=1, le=MAX_DEPTH)  # MLP hidden layers
    channels: int = Field(16, ge=1, le=MAX_CHANNELS)  # CNN channels of the first conv block
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    activation: Activation = "relu"
    # family torch: "package.module:function", called as function(in_features, n_classes, image_shape, **options)
    factory: StrictStr | None = Field(None, max_length=256, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    # the family's own hyperparameters (families other than mlp/cnn), checked by its Params schema
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

    def parameter_count(self) -> int:
        """Trainable parameters of build_model(self), computed from the shape alone (a budget check
        must not allocate the model it is about to refuse). None where the family cannot tell."""
        if self.family not in ("mlp", "cnn"):
            from trainers.families import get_family

            return get_family(self.family).parameter_count(self)
        k, width = self.n_classes, self.hidden
        if self.family == "mlp":
            layers = [self.in_features] + [width] * self.depth + [k]
            return sum(a * b + b for a, b in zip(layers, layers[1:]))
        c, h, w = self.image_shape or (1, 1, 1)
        ch = self.channels
        convs = (c * ch * 9 + ch) + 2 * ch + (ch * 2 * ch * 9 + 2 * ch) + 2 * 2 * ch
        flat = 2 * ch * max(1, h // 2) * max(1, w // 2)
        return convs + flat * width + width + width * k + k


class Standardize(nn.Module):
    """(x - mean) / scale with buffers fitted on the training fold only: one mean and scale per feature,
    or, for image rows (channels=C), one per channel over all its pixels. Per-pixel scaling of images
    would blow up noise in near-constant border pixels and tie the model to where objects sit; per
    channel is what augmentations (crops, flips) leave unchanged. Rows arrive and leave flat."""

    def __init__(self, in_features: int, channels: int | None = None):
        super().__init__()
        stats = channels or in_features
        if in_features % stats:
            raise ValueError(f"in_features divisible by channels must hold, but got "
                             f"(in_features={in_features}, channels={channels})")
        self.in_features = in_features
        self.register_buffer("mean", torch.zeros(stats))
        self.register_buffer("scale", torch.ones(stats))

    def _per_feature(self, x: torch.Tensor) -> bool:
        return self.mean.shape[-1] == x.shape[-1]

    def _grouped(self, x: torch.Tensor) -> torch.Tensor:
        # flat C*H*W rows are channel-major: (rows, C, H*W)
        return x.reshape(x.shape[0], self.mean.shape[-1], -1)

    def fit(self, x: torch.Tensor) -> "Standardize":
        if self._per_feature(x):
            mean, std = x.mean(0), x.std(0, unbiased=False)
        else:
            mean, std = self._grouped(x).mean((0, 2)), self._grouped(x).std((0, 2), unbiased=False)
        self.mean.copy_(mean)
        # constant features (digits has border pixels that are always 0) must not divide by 0
        self.scale.copy_(std.clamp_min(1e-6))
        return self

    def fit_moments(self, count: int, total: torch.Tensor, squares: torch.Tensor) -> "Standardize":
        """The same fit from per-feature sums over rows that streamed past (sum of x, sum of x**2,
        row count): what fit() computes, without the rows in memory."""
        if self.mean.shape[-1] != self.in_features:  # per channel: each channel's pixels pooled
            count = count * (self.in_features // self.mean.shape[-1])
            total, squares = total.reshape(self.mean.shape[-1], -1).sum(1), squares.reshape(self.mean.shape[-1], -1).sum(1)
        mean = total / max(count, 1)
        self.mean.copy_(mean)
        self.scale.copy_((squares / max(count, 1) - mean ** 2).clamp_min(0).sqrt().clamp_min(1e-6))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._per_feature(x):
            return (x - self.mean) / self.scale
        return ((self._grouped(x) - self.mean[:, None]) / self.scale[:, None]).reshape(x.shape)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a cnn saved before per-channel scaling holds per-pixel buffers: keep them, so the old
        # checkpoint loads and predicts exactly as it did
        stored = state_dict.get(prefix + "mean")
        if stored is not None and tuple(stored.shape) == (self.in_features,) != tuple(self.mean.shape):
            self.mean = torch.zeros(self.in_features, device=self.mean.device)
            self.scale = torch.ones(self.in_features, device=self.scale.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.standardize = Standardize(cfg.in_features)
        layers: list[nn.Module] = []
        width = cfg.in_features
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), _ACTIVATIONS[cfg.activation](), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        layers.append(nn.Linear(width, cfg.n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))


class CNN(nn.Module):
    """Two conv blocks and a small head; rows arrive flat and are reshaped to image_shape."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.image_shape is None:
            raise ValueError("family 'cnn' needs data.image_shape, but got image_shape=None")
        self.image_shape = tuple(cfg.image_shape)
        c, h, w = self.image_shape
        act = _ACTIVATIONS[cfg.activation]
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


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut (He et al. 2016); a 1x1 conv shortcut where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)  # BatchNorm follows: no bias
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        # the residual branch starts as zero (Goyal et al. 2017): each block begins as the identity,
        # which trains deeper stacks stably at higher learning rates
        nn.init.zeros_(self.bn2.weight)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _resnet_stages(width: int, stages: int) -> list[tuple[int, int, int]]:
    """(c_in, c_out, first stride) of each stage: channels double and H, W halve after the first."""
    return [(width * 2 ** max(s - 1, 0), width * 2 ** s, 1 if s == 0 else 2) for s in range(stages)]


class ResNet(nn.Module):
    """A small ResNet for 28-64 px images (CIFAR-style: a 3x3 stem, no max-pool, `stages` stages of
    `depth` BasicBlocks, global average pooling, a linear head). Rows arrive flat and are reshaped to
    image_shape; width=16, depth=3, stages=3 is He et al.'s ResNet-20."""

    def __init__(self, in_features: int, n_classes: int, image_shape: tuple[int, int, int] | None,
                 width: int, depth: int, stages: int, dropout: float = 0.0):
        super().__init__()
        if image_shape is None:
            raise ValueError("family 'resnet' needs data.image_shape, but got image_shape=None")
        self.image_shape = tuple(image_shape)
        c = self.image_shape[0]
        self.standardize = Standardize(in_features, channels=c)
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks: list[nn.Module] = []
        for c_in, c_out, stride in _resnet_stages(width, stages):
            blocks += [BasicBlock(c_in, c_out, stride)] + [BasicBlock(c_out, c_out, 1) for _ in range(depth - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(width * 2 ** (stages - 1), n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x).reshape(-1, *self.image_shape)
        return self.head(self.blocks(self.stem(x)))


def resnet_parameter_count(image_shape: tuple[int, int, int], n_classes: int, width: int, depth: int,
                           stages: int) -> int:
    """Trainable parameters of ResNet(...), from the shape alone (a BatchNorm has 2 per channel)."""
    total = image_shape[0] * width * 9 + 2 * width  # stem
    for c_in, c_out, stride in _resnet_stages(width, stages):
        for block in range(depth):
            cin = c_in if block == 0 else c_out
            total += cin * c_out * 9 + c_out * c_out * 9 + 4 * c_out
            if block == 0 and (stride != 1 or c_in != c_out):
                total += c_in * c_out + 2 * c_out
    return total + width * 2 ** (stages - 1) * n_classes + n_classes


def build_model(cfg: ModelConfig | dict) -> nn.Module:
    """An untrained network of a torch family (mlp, cnn, resnet, torch)."""
    from trainers.families import get_family

    cfg = cfg if isinstance(cfg, ModelConfig) else ModelConfig.model_validate(cfg)
    if cfg.in_features < 1 or cfg.n_classes < 2:
        raise ValueError(f"in_features >= 1 and n_classes >= 2 must hold, but got "
                         f"(in_features={cfg.in_features}, n_classes={cfg.n_classes})")
    family = get_family(cfg.family)
    if not family.is_torch:
        raise ValueError(f"a torch family (mlp, cnn, resnet, torch) must hold to build a network, but got {cfg.family!r}")
    return family.build(cfg)
