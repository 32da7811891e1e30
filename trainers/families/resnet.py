"""resnet: a small ResNet for 28-64 px images (data.image_shape); width and depth knobs.

Its shape knobs live in ModelConfig.options (checked here), like the non-builtin families; the
optimisation knobs are TrainConfig's, as for every torch family.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trainers.families.torchnet import TorchFamily


class ResNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    width: int = Field(16, ge=1, le=128)  # channels of the first stage; each later stage doubles them
    depth: int = Field(3, ge=1, le=8)  # BasicBlocks per stage (3 with 3 stages: ResNet-20)
    stages: int = Field(3, ge=1, le=4)  # each stage after the first halves H and W
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # before the linear head


def resnet_stages(width: int, stages: int) -> list[tuple[int, int, int]]:
    """(c_in, c_out, first stride) of each stage: channels double and H, W halve after the first."""
    return [(width * 2 ** max(s - 1, 0), width * 2 ** s, 1 if s == 0 else 2) for s in range(stages)]


def resnet_parameter_count(image_shape: tuple[int, int, int], n_classes: int, width: int, depth: int,
                           stages: int) -> int:
    """Trainable parameters of ResNet(...), from the shape alone (a BatchNorm has 2 per channel)."""
    total = image_shape[0] * width * 9 + 2 * width  # stem
    for c_in, c_out, stride in resnet_stages(width, stages):
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

    def build(self, model_cfg):
        from trainers.families.nets.resnet import ResNet

        p = self._params(model_cfg)
        return ResNet(model_cfg.in_features, model_cfg.n_classes, model_cfg.image_shape, p.width, p.depth,
                      p.stages, p.dropout)

    def parameter_count(self, model_cfg) -> int:
        if model_cfg.image_shape is None:
            raise ValueError("family 'resnet' needs data.image_shape, but got image_shape=None")
        p = self._params(model_cfg)
        return resnet_parameter_count(tuple(model_cfg.image_shape), model_cfg.n_classes, p.width, p.depth, p.stages)
