"""ModelConfig's bounds and its parameter count (the REST API's max_parameters budget relies on it)."""
import pytest

from trainers.families.config import ModelConfig
from trainers.families import build_model


@pytest.mark.parametrize("cfg", [
    dict(in_features=64, n_classes=10, hidden=32, depth=3),
    dict(in_features=5, n_classes=2, hidden=1, depth=1),
    dict(family="cnn", in_features=64, n_classes=10, image_shape=(1, 8, 8), channels=4, hidden=16),
    dict(family="cnn", in_features=105, n_classes=3, image_shape=(3, 5, 7), channels=5, hidden=9),
    dict(family="cnn", in_features=3, n_classes=2, image_shape=(3, 1, 1), channels=2, hidden=4),
])
def test_parameter_count_equals_the_built_model(cfg):
    model_cfg = ModelConfig(**cfg)
    assert model_cfg.parameter_count() == sum(p.numel() for p in build_model(model_cfg).parameters())


def test_image_shape_product_is_bounded_without_overflow():
    assert ModelConfig(image_shape=(1, 4096, 4096)).image_shape == (1, 4096, 4096)
    with pytest.raises(ValueError, match=r"C\*H\*W <= 16777216 must hold, but got \[1, 4096, 4097\]"):
        ModelConfig(image_shape=(1, 4096, 4097))
    with pytest.raises(ValueError, match="less than or equal to 65536"):
        ModelConfig(image_shape=(1, 1, 2**63))
