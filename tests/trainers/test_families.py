"""Conformance suite: every family in trainers.families.FAMILIES keeps the Family/Fit contract that
k-fold, checkpoints, refit and the predictor rely on. A new family is tested here by registering it;
SMALL only keeps its settings tiny (a family missing from SMALL runs with its defaults)."""
from __future__ import annotations

import functools
import math
import pickle

import numpy as np
import pytest
import skops.io as sio
import torch
from annotated_types import Ge, Gt
from pydantic import BaseModel, ValidationError
from skops.io.exceptions import UntrustedTypesFoundException
from sklearn.datasets import load_digits

from trainers.checkpoint import load_model, save_model
from trainers.families import FAMILIES, get_family
from trainers.families._sklearn import SklearnFamily
from trainers.families.scope import BRANCH_KEY, FAMILY_KEY
from trainers.train_config import TrainConfig
from trainers.families.config import ModelConfig

FACTORY = "tests.trainers.factory_models:build"
N_CLASSES, MISSING = 10, 3  # digits; the class a fold lacks (a middle one, so column positions matter)

# a few rounds, tiny models: the whole module must stay fast on 2 cores
SMALL: dict[str, dict] = {
    "mlp": {"hidden": 16, "depth": 1, "epochs": 3, "batch_size": 64, "lr": 0.02},
    "cnn": {"channels": 4, "hidden": 16, "epochs": 3, "batch_size": 64, "lr": 0.02},
    "resnet": {"width": 4, "depth": 1, "stages": 2, "epochs": 3, "batch_size": 32, "lr": 0.02},
    "torch": {"width": 8, "epochs": 3, "batch_size": 64, "lr": 0.02},
    # max_features < 1 draws features from an rng the estimator carries: resume must keep it
    "hist_gb": {"max_iter": 6, "rounds": 3, "max_leaf_nodes": 8, "max_features": 0.5},
    "random_forest": {"n_estimators": 6, "rounds": 3, "max_features": 0.5},
    "extra_trees": {"n_estimators": 6, "rounds": 3},
    "logreg": {"max_iter": 300},
    "svc": {},
    "lightgbm": {"n_estimators": 6, "learning_rate": 0.3, "rounds": 3, "num_leaves": 8, "subsample": 0.7, "colsample_bytree": 0.5},
    "xgboost": {"n_estimators": 6, "learning_rate": 0.3, "rounds": 3, "max_depth": 3, "subsample": 0.7, "colsample_bytree": 0.5},
    "catboost": {"n_estimators": 6, "learning_rate": 0.3, "rounds": 3, "depth": 3, "subsample": 0.7, "colsample_bylevel": 0.5},
}
ALL = sorted(FAMILIES)
NON_TORCH = [n for n in ALL if not FAMILIES[n].is_torch]
SKOPS = [n for n in ALL if isinstance(FAMILIES[n], SklearnFamily)]  # payloads skops reads (trusted types)


class Tripwire:
    """Records every construction a loader attempts; a safe loader never gets that far."""

    built: list[str] = []

    def __init__(self):
        self.armed = True

    def __setstate__(self, state):
        Tripwire.built.append("setstate")
        self.__dict__.update(state)


@pytest.fixture(autouse=True)
def _reset_tripwire():
    Tripwire.built.clear()


@functools.cache
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x[:300], y[:300], x[300:400], y[300:400]


def base(name: str) -> ModelConfig:
    return ModelConfig(family=name, in_features=64, n_classes=N_CLASSES, image_shape=(1, 8, 8),
                       factory=FACTORY if name == "torch" else None)


def split(name: str):
    return get_family(name).split(dict(SMALL.get(name, {})), base(name))


def fitted(name: str, seed: int = 0, x=None, y=None, rounds: int | None = None):
    """A Fit advanced `rounds` rounds (all by default) on the training rows (or x, y)."""
    family = get_family(name)
    model_cfg, fit_cfg = split(name)
    x_tr, y_tr = (data()[0], data()[1]) if x is None else (x, y)
    fit = family.start(model_cfg, fit_cfg, x_tr, y_tr, seed)
    for _ in range(fit.rounds if rounds is None else rounds):
        fit.advance()
    return fit


@functools.cache
def reference(name: str) -> np.ndarray:
    """Test-row probabilities of one uninterrupted fit with seed 0 (shared by several tests)."""
    return fitted(name).predict_proba(data()[2])


def assert_probabilities(proba: np.ndarray, rows: int) -> None:
    assert proba.shape == (rows, N_CLASSES) and proba.dtype == np.float64
    assert np.isfinite(proba).all() and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)


# ---- the registry ------------------------------------------------------------------------------

def test_registry_names_and_params_schemas():
    names = [f.name for f in FAMILIES.values()]
    assert names == list(FAMILIES) and len(set(names)) == len(names)
    for name, family in FAMILIES.items():
        assert issubclass(family.Params, BaseModel), name
        # a spec may leave any hyperparameter out: every field needs a default
        required = [k for k, f in family.Params.model_fields.items() if f.is_required()]
        assert required == [], f"{name}: fields without a default {required}"
        family.Params()  # and the defaults pass the schema's own bounds
        for key in family.keys():
            # scope.py reads 'family.key' and the 'family'/'model' keys itself
            assert "." not in key and key not in (FAMILY_KEY, BRANCH_KEY), (name, key)
    assert not [k for k, f in TrainConfig.model_fields.items() if f.is_required()]


@pytest.mark.parametrize("name", ALL)
def test_default_params_split(name):
    family = get_family(name)
    model_cfg, fit_cfg = family.split({}, base(name))
    assert model_cfg.family == name and model_cfg.n_classes == N_CLASSES
    assert family.fit_rounds(fit_cfg) >= 1
    # the config alone rebuilds the model: it survives the checkpoint's JSON round trip
    assert ModelConfig.model_validate(model_cfg.model_dump(mode="json")) == model_cfg


# ---- fitting -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_fit_advances_round_by_round_to_probabilities(name):
    family = get_family(name)
    model_cfg, fit_cfg = split(name)
    x, y, xt, yt = data()
    fit = family.start(model_cfg, fit_cfg, x, y, seed=0)
    assert fit.rounds == family.fit_rounds(fit_cfg) and fit.done == 0
    for done in range(1, fit.rounds + 1):
        loss = fit.advance()
        # >= 0 and not -0.0 (extra_trees fits its training rows exactly; curves are JSON)
        assert isinstance(loss, float) and np.isfinite(loss) and math.copysign(1.0, loss) > 0, (done, loss)
        assert fit.done == done
    proba = fit.predict_proba(xt)
    assert_probabilities(proba, len(xt))
    assert (proba.argmax(1) == yt).mean() > 0.3  # chance is 0.1: the rounds did fit something
    np.testing.assert_allclose(family.proba(fit.model, xt), proba, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_probabilities(name):
    np.testing.assert_allclose(fitted(name, seed=0).predict_proba(data()[2]), reference(name), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_fold_lacking_a_class_keeps_every_column(name, tmp_path):
    x, y, xt, _ = data()
    keep = y != MISSING
    fit = fitted(name, x=x[keep], y=y[keep])
    proba = fit.predict_proba(xt)
    assert_probabilities(proba, len(xt))
    if name in SKOPS:
        # a scikit-learn tree or linear model that never saw the class gives it exactly 0
        assert (proba[:, MISSING] == 0).all()
    elif not get_family(name).is_torch:
        # a booster of one score per class drives the unseen class's score down from the first tree
        assert (proba[:, MISSING] < 1e-3).all()  # far below chance (0.1)
    # the loaded model spreads its columns the same way (n_classes travels in the config)
    save_model(tmp_path / "m.pt", fit.model, split(name)[0])
    model, _, _ = load_model(tmp_path / "m.pt")
    np.testing.assert_allclose(get_family(name).proba(model, xt), proba, atol=1e-6, rtol=0)


# ---- checkpoints -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip(name, tmp_path):
    fit = fitted(name)
    model_cfg = split(name)[0]
    save_model(tmp_path / "m.pt", fit.model, model_cfg, extra={"fold": 1})
    model, cfg, extra = load_model(tmp_path / "m.pt")
    assert cfg == model_cfg and extra == {"fold": 1}
    xt = data()[2]
    np.testing.assert_allclose(get_family(name).proba(model, xt), fit.predict_proba(xt), atol=1e-6, rtol=0)


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("name", ALL)
def test_a_row_predicts_alone_what_it_predicts_in_a_batch(name, task):
    """Serving answers one row at a time, the judge and the distiller whole splits: a family may take
    a different path for few rows (trainers.families._flat_trees) but must give the same numbers (to
    float32's precision: a network's kernels sum in another order for another batch size)."""
    if task == "regression":
        model = regression_fit(name)[0].model
        xt = regression_data()[2]
    else:
        model, xt = fitted(name).model, data()[2]
    family = get_family(name)
    batch = family.proba(model, xt)
    alone = np.concatenate([family.proba(model, xt[i:i + 1]) for i in range(0, 40)])
    np.testing.assert_allclose(alone, batch[:40], rtol=1e-5, atol=1e-6)


# FoldTrainer draws dropout masks from torch's global RNG, which state() does not carry (and which
# the folds of a trial share): a resumed mlp/cnn differs at ~1e-3. The factory net has no dropout.



@pytest.mark.parametrize("name", ALL)
def test_two_classes_round_trip(name, tmp_path):
    """Binary problems take other code paths (hist_gb's binomial loss, one logistic output)."""
    family = get_family(name)
    x, y, xt, _ = data()
    rows, test_rows = np.isin(y, (3, 8)), xt[:20]
    model_cfg, fit_cfg = family.split(dict(SMALL.get(name, {})), base(name).model_copy(update={"n_classes": 2}))
    fit = family.start(model_cfg, fit_cfg, x[rows], (y[rows] == 8).astype(np.int64), seed=0)
    while fit.done < fit.rounds:
        fit.advance()
    proba = fit.predict_proba(test_rows)
    assert proba.shape == (len(test_rows), 2) and np.isfinite(proba).all()
    save_model(tmp_path / "m.pt", fit.model, model_cfg)
    model, _, _ = load_model(tmp_path / "m.pt")
    np.testing.assert_allclose(family.proba(model, test_rows), proba, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_resume_from_checkpoint_matches_uninterrupted_fit(name, tmp_path):
    """What kfold does: fold_k.pt + fold_k.state.pt after k rounds, a fresh Fit restored from them."""
    family = get_family(name)
    model_cfg, fit_cfg = split(name)
    x, y, xt, _ = data()
    rounds = family.fit_rounds(fit_cfg)
    k = max(1, rounds // 2)  # one-round families: restore a finished fit; nothing is left to do
    first = fitted(name, rounds=k)
    save_model(tmp_path / "fold.pt", first.model, model_cfg)
    torch.save(first.state(), tmp_path / "fold.state.pt")
    del first

    resumed = family.start(model_cfg, fit_cfg, x, y, seed=0)
    resumed.restore(load_model(tmp_path / "fold.pt")[0], torch.load(tmp_path / "fold.state.pt", weights_only=True))
    assert resumed.done == k
    while resumed.done < resumed.rounds:
        resumed.advance()
    np.testing.assert_allclose(resumed.predict_proba(xt), reference(name), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", SKOPS)
def test_load_refuses_untrusted_skops_types(name, tmp_path):
    family = get_family(name)
    model_cfg = split(name)[0]
    payload = {"skops": sio.dumps({"model": Tripwire()})}
    with pytest.raises(UntrustedTypesFoundException, match="Tripwire"):
        family.load(model_cfg, payload)
    # the same through a model file (a swapped fold_k.pt)
    torch.save({"config": model_cfg.model_dump(mode="json"), "extra": {}, **payload}, tmp_path / "m.pt")
    with pytest.raises(UntrustedTypesFoundException, match="Tripwire"):
        load_model(tmp_path / "m.pt")
    assert Tripwire.built == []


@pytest.mark.parametrize("name", [n for n in SKOPS if "sklearn.tree._tree.Tree" not in FAMILIES[n].trusted])
def test_load_trusts_only_its_own_types(name):
    """A type another family trusts (a forest's trees) is refused by a family whose models never hold it."""
    forest = fitted("random_forest").model
    with pytest.raises(UntrustedTypesFoundException, match="sklearn.tree._tree.Tree"):
        get_family(name).load(split(name)[0], {"skops": sio.dumps(forest)})


@pytest.mark.parametrize("name", ALL)
def test_model_file_is_read_weights_only(name, tmp_path):
    family = get_family(name)
    model_cfg = split(name)[0]
    blob = {"config": model_cfg.model_dump(mode="json"), "extra": {"x": Tripwire()}, **family.dump(fitted(name).model)}
    torch.save(blob, tmp_path / "m.pt")  # torch.save pickles the Tripwire
    with pytest.raises(pickle.UnpicklingError, match="Tripwire"):
        load_model(tmp_path / "m.pt")
    assert Tripwire.built == []


# ---- hyperparameter checks ---------------------------------------------------------------------

def _bounded_field(schema: type[BaseModel]) -> tuple[str, float] | None:
    """A numeric field with a lower bound and a value below it."""
    for key, field in schema.model_fields.items():
        for rule in field.metadata:
            if isinstance(rule, Ge):
                return key, rule.ge - 1
            if isinstance(rule, Gt):
                return key, rule.gt - 1
    return None


@pytest.mark.parametrize("name", ALL)
def test_split_names_an_unknown_key(name):
    family = get_family(name)
    if family.Params.model_config.get("extra") == "allow":
        # an open schema (the user's factory): the key reaches the model as a keyword
        model_cfg, _ = family.split({"no_such_knob": 3}, base(name))
        assert model_cfg.options["no_such_knob"] == 3
        return
    with pytest.raises(ValidationError) as err:
        family.split({"no_such_knob": 3}, base(name))
    assert any("no_such_knob" in e["loc"] for e in err.value.errors()), err.value


@pytest.mark.parametrize("name", ALL)
def test_split_names_an_out_of_bounds_field(name):
    family = get_family(name)
    bounded = _bounded_field(family.Params) or (_bounded_field(TrainConfig) if family.is_torch else None)
    assert bounded is not None, f"{name}: no bounded field to test"
    key, bad = bounded
    with pytest.raises(ValidationError) as err:
        family.split({key: bad}, base(name))
    assert any(key in e["loc"] for e in err.value.errors()), err.value


@pytest.mark.parametrize("name, flat, field", [
    ("svc", {"gamma": 0.0}, "gamma"),  # scikit-learn would refuse it only at fit time, inside a trial
    ("hist_gb", {"max_features": 0.0}, "max_features"),
    ("random_forest", {"class_weight": "skewed"}, "class_weight"),
    ("logreg", {"C": float("inf")}, "C"),
])
def test_split_refuses_values_the_estimator_would_refuse_later(name, flat, field):
    with pytest.raises(ValidationError) as err:
        get_family(name).split(flat, base(name))
    assert any(field in e["loc"] for e in err.value.errors()), err.value


# ---- regression: the same contract with one output, the predicted value -------------------------

@functools.cache
def regression_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A number the pixels tell: the digit plus noise, in units far from 0..1 (offset and scale) so a
    model that ignored the target's scale would miss by far."""
    x, y = load_digits(return_X_y=True)
    target = 1000.0 + 50.0 * y + np.random.default_rng(0).normal(0, 10, len(y))
    return x[:300], target[:300], x[300:400], target[300:400]


def regression_fit(name: str, seed: int = 0):
    family = get_family(name)
    model_cfg, fit_cfg = family.split(dict(SMALL.get(name, {})),
                                      base(name).model_copy(update={"n_classes": 1, "task": "regression"}))
    x, y, _, _ = regression_data()
    fit = family.start(model_cfg, fit_cfg, x, y, seed)
    while fit.done < fit.rounds:
        loss = fit.advance()
        assert isinstance(loss, float) and np.isfinite(loss) and loss >= 0
    return fit, model_cfg


@pytest.mark.parametrize("name", ALL)
def test_regression_fit_predicts_values_in_the_targets_units(name):
    fit, _ = regression_fit(name)
    _, _, xt, yt = regression_data()
    out = fit.predict_proba(xt)
    assert out.shape == (len(xt), 1) and out.dtype == np.float64 and np.isfinite(out).all()
    rmse = float(np.sqrt(((out[:, 0] - yt) ** 2).mean()))
    # better than the mean: it learned from the target, offset and scale included (a few tiny rounds each)
    assert rmse < 0.95 * yt.std(), (name, rmse, yt.std())
    np.testing.assert_allclose(get_family(name).proba(fit.model, xt), out, atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_regression_save_load_round_trip_and_same_seed(name, tmp_path):
    fit, model_cfg = regression_fit(name)
    xt = regression_data()[2]
    save_model(tmp_path / "m.pt", fit.model, model_cfg)
    model, cfg, _ = load_model(tmp_path / "m.pt")
    assert cfg.task == "regression" and cfg.n_classes == 1
    np.testing.assert_allclose(get_family(name).proba(model, xt), fit.predict_proba(xt), atol=1e-4, rtol=1e-6)
    again, _ = regression_fit(name)
    np.testing.assert_allclose(again.predict_proba(xt), fit.predict_proba(xt), atol=1e-4, rtol=1e-6)
