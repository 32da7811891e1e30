"""The vectorised predictor equals a plain loop over members; bundles round-trip through disk."""
import numpy as np
import pytest
import torch

from trainers.ensemble.predictor import EnsemblePredictor, loop_member_proba
from trainers.families.config import ModelConfig
from trainers.families import build_model


def _randomised(cfg: ModelConfig, seed: int) -> torch.nn.Module:
    """A member with random weights AND random input scaling / BatchNorm statistics, so the test
    also covers buffers (which travel in vmap's buffer dict, not the parameters)."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    model.standardize.mean.normal_()
    model.standardize.scale.uniform_(0.5, 2.0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def mixed():
    base = dict(in_features=64, n_classes=10, image_shape=(1, 8, 8))
    configs = [ModelConfig(family="mlp", hidden=32, **base), ModelConfig(family="cnn", channels=4, hidden=16, **base),
               ModelConfig(family="mlp", hidden=32, **base), ModelConfig(family="mlp", hidden=8, depth=1, **base),
               ModelConfig(family="cnn", channels=4, hidden=16, **base)]
    return [_randomised(c, i) for i, c in enumerate(configs)], configs


def test_vectorised_equals_loop_mixed_architectures(mixed):
    models, configs = mixed
    x = np.random.default_rng(0).normal(size=(37, 64)).astype(np.float32)
    predictor = EnsemblePredictor(models, configs)
    assert len(predictor._groups) == 3  # mlp-32 (2), cnn (2), mlp-8 (1, called directly)
    np.testing.assert_allclose(predictor.member_proba(x), loop_member_proba(models, x), atol=1e-6, rtol=0)
    np.testing.assert_allclose(predictor.predict_proba(x), loop_member_proba(models, x).mean(0), atol=1e-6, rtol=0)


def test_bundle_round_trip(mixed, tmp_path):
    models, configs = mixed
    x = np.random.default_rng(1).normal(size=(5, 64)).astype(np.float32)
    before = EnsemblePredictor(models, configs, method="weighted", weights=[1, 2, 3, 4, 5], classes=list("abcdefghij"))
    after = EnsemblePredictor.load(before.save(tmp_path / "b"))
    np.testing.assert_allclose(after.predict_proba(x), before.predict_proba(x), atol=1e-12)
    assert after.predict(x) == before.predict(x) and set(after.predict(x)) <= set("abcdefghij")


def test_members_read_from_files_are_saved_as_those_files(mixed, tmp_path):
    """A bundle of members read from disk copies their files (serialising a forest again costs seconds);
    the copy answers as the original."""
    from trainers.checkpoint import save_model

    models, configs = mixed
    paths = []
    for i, (m, c) in enumerate(zip(models[:2], configs[:2])):
        paths.append(tmp_path / f"fold_{i}.pt")
        save_model(paths[-1], m, c, extra={"fold": i})
    bundle = EnsemblePredictor.from_files(paths).save(tmp_path / "b")
    assert [(bundle / f"m{i:03d}.pt").read_bytes() for i in range(2)] == [p.read_bytes() for p in paths]
    x = np.random.default_rng(2).normal(size=(3, 64)).astype(np.float32)
    np.testing.assert_array_equal(EnsemblePredictor.load(bundle).predict_proba(x),
                                  EnsemblePredictor(models[:2], configs[:2]).predict_proba(x))
    with pytest.raises(ValueError, match="a source per member must hold, but got 1 for 2 members"):
        EnsemblePredictor(models[:2], configs[:2]).read_from([paths[0]])


def test_wrong_width_is_named(mixed):
    models, configs = mixed
    with pytest.raises(ValueError, match=r"rows of 64 features expected, but got shape \(2, 3\)"):
        EnsemblePredictor(models, configs).predict_proba(np.zeros((2, 3)))


def test_chunked_forward_and_looped_conv_groups_equal_the_plain_loop(mixed, monkeypatch):
    """Rows go through each group in chunks (bounded activation memory); conv groups on CPU run
    member by member instead of vmapped. Neither may change a probability."""
    import trainers.ensemble.predictor as predictor_module

    models, configs = mixed
    x = np.random.default_rng(1).normal(size=(37, 64)).astype(np.float32)
    expected = loop_member_proba(models, x)
    monkeypatch.setattr(predictor_module, "PREDICT_CHUNK_ROWS", 8)  # 37 rows: 5 chunks, the last partial
    predictor = EnsemblePredictor(models, configs)
    assert any(group.looped is not None for _, group in predictor._groups)  # the two cnns
    np.testing.assert_allclose(predictor.member_proba(x), expected, atol=1e-5)


@pytest.mark.parametrize("members,in_order", [([1], True), ([1, 4], True), ([0, 2, 3], True), ([0, 1, 2], False)],
                         ids=["student", "one-group", "groups-in-order", "interleaved"])
def test_members_in_either_order_equal_the_plain_loop(mixed, members, in_order):
    """A bundle whose groups already list the members in order (a student, one architecture, the
    usual ensemble) skips the scatter into a zero array; interleaved architectures (mlp, cnn, mlp)
    are scattered back. Same probabilities and shapes either way."""
    models, configs = mixed
    chosen, chosen_configs = [models[i] for i in members], [configs[i] for i in members]
    x = np.random.default_rng(2).normal(size=(9, 64)).astype(np.float32)
    predictor = EnsemblePredictor(chosen, chosen_configs)
    assert predictor._in_order == in_order
    np.testing.assert_allclose(predictor.member_proba(x), loop_member_proba(chosen, x), atol=1e-6, rtol=0)
    np.testing.assert_allclose(predictor.predict_proba(x), loop_member_proba(chosen, x).mean(0), atol=1e-6, rtol=0)
    assert predictor.member_proba(x[:0]).shape == (len(members), 0, 10)


def test_on_another_device_is_a_copy_and_the_original_stays(mixed):
    """The distiller moves its teacher to the student's device; the caller's predictor must stay put
    (the judge times it on the CPU). No GPU here: the meta device stands in for one."""
    models, configs = mixed
    predictor = EnsemblePredictor(models, configs)
    assert predictor.on("cpu") is predictor
    moved = predictor.on("meta")
    assert moved.device.type == "meta" and not {id(m) for m in moved.models} & {id(m) for m in models}
    tensors = [t for _, g in moved._groups for t in ([*g.params.values(), *g.buffers.values()] if g.single is None
                                                      else [*g.single.parameters(), *g.single.buffers()])]
    assert tensors and all(t.device.type == "meta" for t in tensors)
    assert all(p.device.type == "cpu" for m in predictor.models for p in m.parameters())
    x = np.random.default_rng(3).normal(size=(4, 64)).astype(np.float32)
    np.testing.assert_allclose(predictor.member_proba(x), loop_member_proba(models, x), atol=1e-6, rtol=0)
