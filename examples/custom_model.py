"""A user's own network for `model: {family: torch, factory: "custom_model:build"}`.

raysemble calls build(in_features, n_classes, image_shape, **options); options are the trial's
keys that are not training knobs (here `width` and `blocks`, searched in custom_torch.yaml).
Inputs arrive standardised; return logits.
"""
from torch import nn


class Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.body(x)


def build(in_features, n_classes, image_shape, width=64, blocks=2):
    return nn.Sequential(nn.Linear(in_features, width), *[Residual(int(width)) for _ in range(int(blocks))],
                         nn.LayerNorm(width), nn.Linear(width, n_classes))
