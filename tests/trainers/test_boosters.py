"""What the boosting-library families (trainers/families/_booster.py) add beyond the conformance suite:
native categorical splits on a table's category codes, the trial's CPUs as threads, payload checks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainers.families import FAMILIES, ModelConfig, get_family, start_fit
from trainers.families._booster import BoosterFamily, trial_threads
from trainers.loop import split_params
from trainers.tables import Table
from trainers.tables.schema import ColumnSchema

BOOSTERS = sorted(n for n, f in FAMILIES.items() if isinstance(f, BoosterFamily))
# one tree of one split: only a split on a set of categories separates the classes below
STUMPS = {"lightgbm": {"num_leaves": 2, "min_child_samples": 1, "min_data_per_group": 1, "cat_smooth": 0.0},
          "xgboost": {"max_depth": 1, "max_cat_to_onehot": 1},
          "catboost": {"depth": 1, "one_hot_max_size": 1, "random_strength": 0.0, "subsample": 1.0}}


def test_every_booster_has_stump_settings():
    assert BOOSTERS and sorted(STUMPS) == BOOSTERS


def cities(n: int, seed: int) -> tuple[Table, np.ndarray]:
    rng = np.random.default_rng(seed)
    city = rng.choice(["lima", "oslo", "paris", "rome", "kiev", "bonn"], n)
    frame = pd.DataFrame({"city": city})
    # classes interleaved in the codes' order (by frequency, then name): no threshold on a code separates them
    y = np.isin(city, ["lima", "paris", "kiev"]).astype(np.int64)
    schema = ColumnSchema.model_validate({"columns": [{"name": "city", "kind": "categorical"}]})
    return Table(frame, schema), y


@pytest.mark.parametrize("name", BOOSTERS)
def test_a_category_set_is_split_natively(name):
    x, y = cities(600, 0)
    base = ModelConfig(family=name, in_features=1, n_classes=2)
    model_cfg, fit_cfg = split_params({"family": name, "n_estimators": 1, "rounds": 1, "learning_rate": 0.5,
                                       **STUMPS[name]}, base)
    fit = start_fit(model_cfg, fit_cfg, x, y, seed=0)
    fit.advance()
    xt, yt = cities(200, 1)
    assert (fit.predict_proba(xt).argmax(1) == yt).mean() == 1.0


@pytest.mark.parametrize("name", BOOSTERS)
@pytest.mark.parametrize("payload", [{}, {"lightgbm": b"x", "xgboost": "x", "catboost": "x"}])
def test_a_payload_without_the_librarys_model_is_refused_by_name(name, payload):
    with pytest.raises(ValueError, match=f"'{name}' .* model must hold in the {name} payload, but got"):
        get_family(name).load(ModelConfig(family=name, in_features=2, n_classes=2), payload)


def test_catboost_bytes_it_cannot_read_are_refused_by_name():
    with pytest.raises(ValueError, match="'catboost' binary model must hold in the catboost payload, but got 7 bytes"):
        get_family("catboost").load(ModelConfig(family="catboost", in_features=2, n_classes=2), {"catboost": b"garbage"})


@pytest.mark.parametrize("value, threads", [(None, 1), ("3", 3), ("0", 1), ("lots", 1)])
def test_threads_are_the_cpus_ray_gave_the_trial(monkeypatch, value, threads):
    if value is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert trial_threads() == threads
