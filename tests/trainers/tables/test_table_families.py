"""Every family on a raw table (strings, booleans, missing values, a word target) through the path a
sweep takes: the loader's typed Table, a fit whose encoding is learnt on its own training rows only,
the saved model (config + encoding) read back by the predictor from records. And the proof that a
fold learns nothing from its validation rows: a category and a numeric range seen only there leave
the fold's model exactly as it was."""
from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trainers.checkpoint import load_model
from trainers.data import DataConfig, load_dataset
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families import FAMILIES, ModelConfig, start_fit
from trainers.kfold import TrialData, make_folds, train_folds
from trainers.train_config import split_params
from trainers.tables import Table, is_table

FACTORY = "tests.trainers.factory_models:build"
SMALL = {"mlp": {"hidden": 16, "depth": 1, "epochs": 3, "lr": 0.02}, "torch": {"width": 8, "epochs": 3, "lr": 0.02},
         "hist_gb": {"max_iter": 10, "rounds": 2}, "random_forest": {"n_estimators": 8, "rounds": 2},
         "extra_trees": {"n_estimators": 8, "rounds": 2}, "logreg": {"max_iter": 300}, "svc": {}, "knn": {},
         "lightgbm": {"n_estimators": 10, "rounds": 2, "min_child_samples": 5, "min_data_per_group": 5},
         "xgboost": {"n_estimators": 10, "rounds": 2, "max_depth": 3}}
FLAT = sorted(n for n, f in FAMILIES.items() if not f.needs_image_shape)


def raw_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n)
    city = rng.choice(["paris", "rome", "oslo", "lima"], n)
    member = rng.choice([True, False], n)
    income = rng.normal(50, 10, n) + 8 * (city == "oslo")
    label = np.where(age + 10 * (city == "paris") > 45, "yes", np.where(member, "maybe", "no"))
    frame = pd.DataFrame({"age": age, "city": city, "member": member, "income": income, "label": label})
    frame.loc[::9, "age"] = np.nan
    frame.loc[::13, "city"] = None
    frame.loc[::7, "income"] = np.nan
    return frame


@functools.cache
def table() -> tuple[Table, np.ndarray, list]:
    directory = Path(tempfile.mkdtemp(prefix="raw-table-"))
    raw_frame().to_csv(directory / "people.csv", index=False)
    ds = load_dataset(DataConfig(source=str(directory / "people.csv"), target="label"))
    shutil.rmtree(directory)
    return ds.x, ds.y, ds.classes


def base(name: str, n_classes: int) -> ModelConfig:
    return ModelConfig(family=name, in_features=4, n_classes=n_classes, factory=FACTORY if name == "torch" else None)


def test_the_loader_types_the_columns_and_keeps_the_labels():
    x, y, classes = table()
    assert is_table(x) and classes == ["maybe", "no", "yes"] and len(y) == len(x) == 240
    assert [(c.name, c.kind) for c in x.schema.columns] == [
        ("age", "numeric"), ("city", "categorical"), ("member", "categorical"), ("income", "numeric")]
    assert x.frame["city"].isna().sum() == len(range(0, 240, 13)) and x.frame["member"].iloc[0] in ("True", "False")


@pytest.mark.parametrize("name", FLAT)
def test_a_family_fits_a_raw_table_and_its_saved_model_answers_records(name, tmp_path):
    torch.manual_seed(0)
    x, y, classes = table()
    model_cfg, fit_cfg = split_params({"family": name, **SMALL.get(name, {})}, base(name, len(classes)))
    fit = start_fit(model_cfg, fit_cfg, x[:180], y[:180], seed=0)
    for _ in range(fit.rounds):
        fit.advance()
    assert fit.model_cfg.table is not None and fit.model_cfg.in_features == fit.model_cfg.table.width
    proba = fit.predict_proba(x[180:])
    assert proba.shape == (60, 3) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    from trainers.checkpoint import save_model

    save_model(tmp_path / "m.pt", fit.model, fit.model_cfg)
    model, cfg, _ = load_model(tmp_path / "m.pt")
    predictor = EnsemblePredictor([model], [cfg], classes=classes)
    np.testing.assert_allclose(predictor.predict_proba(x[180:]), proba, atol=1e-5)
    # records as a client sends them: by name, a key left out or null is missing, a category never seen
    # (and a boolean as JSON gives it) is no error
    records = [{"age": 30.0, "city": "atlantis", "member": True}, {"income": None}, {}]
    out = predictor.predict_proba(records)
    assert out.shape == (3, 3) and np.isfinite(out).all()
    assert predictor.predict(records)[0] in classes
    as_frame = predictor.predict_proba(pd.DataFrame(records))
    np.testing.assert_allclose(as_frame, out)


@pytest.mark.parametrize("name", FLAT)
def test_a_fold_learns_nothing_from_its_validation_rows(name, tmp_path):
    """Fold 0's validation rows get a category and a numeric range no other row has: the fold's encoding
    and model are exactly those of the untouched table."""
    x, y, classes = table()
    folds = make_folds(y, 3, True, 0)
    val = folds[0]
    changed = x.frame.copy()
    changed.loc[val, "city"] = "only-in-validation"
    changed.loc[val, "income"] = 1e6 + np.arange(len(val))
    base_cfg = base(name, len(classes)).model_dump(mode="json")
    params = {"family": name, **SMALL.get(name, {})}

    def fold0(rows) -> Path:
        data = TrialData(x=rows, y=y, folds=folds, base_model=base_cfg, metric="accuracy")
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"

        def report(metrics, directory):
            if directory is not None:
                shutil.copytree(directory, out, dirs_exist_ok=True)

        torch.manual_seed(0)
        train_folds(data, params, [0], report)
        return out / "fold_0.pt"

    a, b = load_model(fold0(x)), load_model(fold0(Table(changed, x.schema)))
    assert a[1] == b[1]  # the config, the encoding learnt from the training rows included
    assert "only-in-validation" not in a[1].table.model_dump_json()
    train = np.setdiff1d(np.arange(len(y)), val)
    pa = EnsemblePredictor([a[0]], [a[1]], classes=classes).predict_proba(x[train])
    pb = EnsemblePredictor([b[0]], [b[1]], classes=classes).predict_proba(x[train])
    np.testing.assert_array_equal(pa, pb)


def test_refits_and_students_encode_the_whole_training_split_themselves():
    """members: refit and the student fit their own encodings on all the training rows they get."""
    from trainers.config import DistillConfig, StudentConfig
    from trainers.distill import distill, student_model_config
    from trainers.ensemble.refit import refit_all

    x, y, classes = table()
    jobs = [{"model": base(name, len(classes)).model_dump(mode="json"),
             "params": {"family": name, **SMALL[name]}, "seed": 0} for name in ("mlp", "hist_gb")]
    out = refit_all({"jobs": jobs, "x": x, "y": y})
    configs = [ModelConfig.model_validate(o["config"]) for o in out]
    assert [c.table.style for c in configs] == ["onehot", "ordinal"]
    assert all(c.in_features == c.table.width for c in configs)
    # every category of the split is known to a refit (each fold saw only its own share)
    assert sorted(configs[0].table.categorical[0].categories) == sorted(x.frame["city"].dropna().unique())
    from trainers.families import get_family

    teacher = EnsemblePredictor([get_family(c.family).load(c, o["dump"]) for c, o in zip(configs, out)], configs,
                                classes=classes)
    cfg = DistillConfig(student=StudentConfig(hidden=8), epochs=2)
    student_cfg = student_model_config(cfg.student, teacher.configs[0], x)
    assert student_cfg.table is not None and student_cfg.in_features == student_cfg.table.width
    model, losses = distill(cfg, student_cfg, x, y, teacher, seed=0)
    student = EnsemblePredictor([model], [student_cfg], classes=classes, kind="student")
    assert set(student.predict([{"city": "paris"}, {}])) <= set(classes) and len(losses) == 2
    with pytest.raises(ValueError, match="distill.mixup_alpha: 0 for a table's rows expected"):
        distill(cfg.model_copy(update={"mixup_alpha": 0.2}), student_cfg, x, y, teacher, seed=0)
