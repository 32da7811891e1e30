"""resnet: a small ResNet for 28-64 px images (data.image_shape); width and depth knobs.

Its shape knobs live in ModelConfig.options (checked here), like the non-builtin families; the
optimisation knobs are TrainConfig's, as for every torch family.
"""
from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from trainers.families.standardize import Standardize
from trainers.families.torchnet import TorchFamily


class ResNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    width: int = Field(16, ge=1, le=128)  # channels of the first stage; each later stage doubles them
    depth: int = Field(3, ge=1, le=8)  # BasicBlocks per stage (3 with 3 stages: ResNet-20)
    stages: int = Field(3, ge=1, le=4)  # each stage after the first halves H and W
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # before the linear head


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


class ResNetFamily(TorchFamily):
    name = "resnet"
    needs_image_shape = True
    Params = ResNetParams

    def model_update(self, model_part: dict) -> dict:
        # every knob is written out, so a checkpoint rebuilds the same shape if defaults change later
        return {"options": self.Params.model_validate(model_part).model_dump(mode="json")}

    def _params(self, model_cfg) -> ResNetParams:
        return self.Params.model_validate(model_cfg.options)

    def build(self, model_cfg) -> nn.Module:
        p = self._params(model_cfg)
        return ResNet(model_cfg.in_features, model_cfg.n_classes, model_cfg.image_shape, p.width, p.depth,
                      p.stages, p.dropout)

    def parameter_count(self, model_cfg) -> int:
        if model_cfg.image_shape is None:
            raise ValueError("family 'resnet' needs data.image_shape, but got image_shape=None")
        p = self._params(model_cfg)
        return resnet_parameter_count(tuple(model_cfg.image_shape), model_cfg.n_classes, p.width, p.depth, p.stages)
