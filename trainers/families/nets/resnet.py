"""The resnet family's network."""
from __future__ import annotations

import torch
from torch import nn

from trainers.families.nets.standardize import Standardize
from trainers.families.resnet import resnet_stages


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
        for c_in, c_out, stride in resnet_stages(width, stages):
            blocks += [BasicBlock(c_in, c_out, stride)] + [BasicBlock(c_out, c_out, 1) for _ in range(depth - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(width * 2 ** (stages - 1), n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x).reshape(-1, *self.image_shape)
        return self.head(self.blocks(self.stem(x)))
