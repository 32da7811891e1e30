"""The resnet family and per-channel image scaling (the conformance suite covers the Family contract)."""
import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.datasets import load_digits

from trainers.ensemble.predictor import EnsemblePredictor, loop_member_proba
from trainers.families import get_family
from trainers.loop import FoldTrainer
from trainers.train_config import TrainConfig
from trainers.families.config import ModelConfig
from trainers.families import build_model
from trainers.families.nets.standardize import Standardize
from trainers.families.nets.cnn import CNN

RESNET = get_family("resnet")


def config(image_shape=(1, 8, 8), n_classes=10, **options) -> ModelConfig:
    base = ModelConfig(family="resnet", in_features=int(np.prod(image_shape)), n_classes=n_classes,
                       image_shape=image_shape)
    return RESNET.split(options, base)[0]


@pytest.mark.parametrize("image_shape, n_classes, options", [
    ((1, 28, 28), 10, {}),  # ResNet-20
    ((3, 32, 32), 2, {"width": 8, "depth": 1, "stages": 1}),  # no downsampling block at all
    ((3, 64, 64), 7, {"width": 5, "depth": 2, "stages": 4}),
    ((2, 9, 13), 3, {"width": 3, "depth": 3, "stages": 2, "dropout": 0.3}),
])
def test_parameter_count_from_the_config_equals_the_built_network(image_shape, n_classes, options):
    cfg = config(image_shape, n_classes, **options)
    net = build_model(cfg)
    assert RESNET.parameter_count(cfg) == cfg.parameter_count() == sum(p.numel() for p in net.parameters())
    x = torch.randn(3, cfg.in_features)
    assert net.eval()(x).shape == (3, n_classes)


def test_resnet_20_by_default():
    cfg = config((3, 32, 32))
    assert cfg.options == {"width": 16, "depth": 3, "stages": 3, "dropout": 0.0}
    net = build_model(cfg)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == 20
    assert [c.out_channels for c in convs][-1] == 64  # 16 doubled twice


def test_split_routes_shape_knobs_to_options_and_the_rest_to_training():
    cfg, train = RESNET.split({"width": 8, "depth": 1, "lr": 0.05, "crop_padding": 2, "hflip": True},
                              config())
    assert cfg.options == {"width": 8, "depth": 1, "stages": 3, "dropout": 0.0}
    assert train.lr == 0.05 and train.crop_padding == 2 and train.hflip == 0.5
    # the checkpoint's JSON config rebuilds the same network
    assert ModelConfig.model_validate(cfg.model_dump(mode="json")) == cfg


@pytest.mark.parametrize("key, bad", [("width", 0), ("width", 129), ("depth", 9), ("stages", 5), ("dropout", 1.0)])
def test_out_of_bounds_knobs_name_the_field(key, bad):
    with pytest.raises(ValidationError) as err:
        RESNET.split({key: bad}, config())
    assert any(key in e["loc"] for e in err.value.errors())


def test_needs_image_shape():
    flat = ModelConfig(family="resnet", in_features=64, n_classes=10)
    with pytest.raises(ValueError, match="family 'resnet' needs data.image_shape, but got image_shape=None"):
        build_model(flat)
    with pytest.raises(ValueError, match="family 'resnet' needs data.image_shape"):
        RESNET.parameter_count(flat)


def test_channels_last_weights_give_the_same_outputs_and_checkpoints():
    """What FoldTrainer does on CUDA (checked here on CPU): NHWC weights, flat rows in."""
    torch.manual_seed(0)
    cfg = config((3, 12, 12), width=4, depth=1, stages=2)
    net = build_model(cfg).eval()
    x = torch.randn(5, cfg.in_features)
    expected = net(x)
    nhwc = net.to(memory_format=torch.channels_last)
    assert nhwc.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nhwc(x), expected, atol=1e-5, rtol=0)
    loaded = RESNET.load(cfg, RESNET.dump(nhwc))
    torch.testing.assert_close(loaded(x), expected, atol=1e-5, rtol=0)


# ---- training --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:1200], y[:1200], x[1200:], y[1200:]


def test_learns_digits_with_crops(digits):
    x, y, xt, yt = digits
    cfg = config(width=8, depth=1, stages=2)
    trainer = FoldTrainer(cfg, TrainConfig(epochs=4, lr=0.01, batch_size=32, crop_padding=1), x, y, seed=0)
    for _ in range(trainer.rounds):
        trainer.advance()
    assert (trainer.predict_proba(xt).argmax(1) == yt).mean() > 0.85


def test_scaling_is_per_channel_and_fitted_on_the_training_rows():
    rng = np.random.default_rng(0)
    # channels with very different levels: per-channel statistics differ from a global or per-pixel one
    x = (rng.normal(size=(50, 3, 4, 4)) * [[[1.0]], [[5.0]], [[0.1]]] + [[[0.0]], [[10.0]], [[-3.0]]])
    x = x.reshape(50, -1).astype(np.float32)
    cfg = config((3, 4, 4), n_classes=2, width=2, depth=1, stages=1)
    trainer = FoldTrainer(cfg, TrainConfig(epochs=1), x, np.arange(50) % 2, seed=0)
    std = trainer.model.standardize
    per_channel = x.reshape(50, 3, -1).transpose(1, 0, 2).reshape(3, -1)
    np.testing.assert_allclose(std.mean.numpy(), per_channel.mean(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std.scale.numpy(), per_channel.std(1), rtol=1e-5)
    scaled = std(torch.as_tensor(x)).reshape(50, 3, -1).transpose(0, 1).reshape(3, -1)
    np.testing.assert_allclose(scaled.mean(1).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(1, unbiased=False).numpy(), 1, atol=1e-4)


def _randomised(cfg: ModelConfig, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(cfg)
    model.standardize.mean.normal_()
    model.standardize.scale.uniform_(0.5, 2.0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)  # not the zero-initialised residual gammas
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_vectorised_predictor_equals_a_loop_over_resnet_members():
    small = config((3, 8, 8), width=4, depth=1, stages=2)
    other = config((3, 8, 8), width=2, depth=2, stages=2)
    configs = [small, small, other]
    models = [_randomised(c, i) for i, c in enumerate(configs)]
    x = np.random.default_rng(1).normal(size=(9, 192)).astype(np.float32)
    predictor = EnsemblePredictor(models, configs)
    assert len(predictor._groups) == 2
    np.testing.assert_allclose(predictor.member_proba(x), loop_member_proba(models, x), atol=1e-6, rtol=0)


# ---- checkpoints of the cnn before per-channel scaling -------------------------------------------

def test_a_cnn_saved_with_per_pixel_scaling_loads_and_predicts_as_before():
    cfg = ModelConfig(family="cnn", in_features=64, n_classes=10, image_shape=(1, 8, 8), channels=4, hidden=8)
    torch.manual_seed(0)
    old = CNN(cfg)
    old.standardize = Standardize(64)  # what the cnn held before: one mean and scale per pixel
    old.standardize.mean.normal_()
    old.standardize.scale.uniform_(0.5, 2.0)
    old.eval()
    x = torch.randn(6, 64)
    loaded = get_family("cnn").load(cfg, get_family("cnn").dump(old))
    assert loaded.standardize.mean.shape == (64,)
    torch.testing.assert_close(loaded(x), old(x), atol=0, rtol=0)
    # a new cnn keeps one statistic per channel
    assert build_model(cfg).standardize.mean.shape == (1,)
