"""Standardize: the input layer of every torch family, so feature scaling travels with the weights."""
from __future__ import annotations

import torch
from torch import nn


MIN_SCALE = 1e-6  # a feature whose training values spread less than this is constant


def _scale(std: torch.Tensor) -> torch.Tensor:
    """A constant feature (digits has border pixels that are 0 in every training row) is centred, not
    scaled, as scikit-learn's StandardScaler does: dividing by a near-zero spread turned a value the
    training rows never had into millions, which a softmax hides but a regression output does not."""
    return torch.where(std > MIN_SCALE, std, torch.ones_like(std))


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
        self.scale.copy_(_scale(std))
        return self

    def fit_moments(self, count: int, total: torch.Tensor, squares: torch.Tensor) -> "Standardize":
        """The same fit from per-feature sums over rows that streamed past (sum of x, sum of x**2,
        row count): what fit() computes, without the rows in memory."""
        if self.mean.shape[-1] != self.in_features:  # per channel: each channel's pixels pooled
            count = count * (self.in_features // self.mean.shape[-1])
            total, squares = total.reshape(self.mean.shape[-1], -1).sum(1), squares.reshape(self.mean.shape[-1], -1).sum(1)
        mean = total / max(count, 1)
        self.mean.copy_(mean)
        self.scale.copy_(_scale((squares / max(count, 1) - mean ** 2).clamp_min(0).sqrt()))
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
