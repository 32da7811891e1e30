import numpy as np
import pandas as pd
import pytest

from trainers.data import DataConfig, DataError, holdout_split, load_dataset


def _frame(n=30):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "label": ["x", "y", "z"] * (n // 3)})


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_tabular_files_load_with_encoded_labels(tmp_path, suffix):
    path = tmp_path / f"d.{suffix}"
    getattr(_frame(), f"to_{suffix}")(path, **({"index": False} if suffix == "csv" else {}))
    ds = load_dataset(DataConfig(source=str(path), target="label"))
    assert ds.x.shape == (30, 2) and ds.classes == ["x", "y", "z"] and set(ds.y) == {0, 1, 2}


def test_npz_with_images(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.random.rand(12, 1, 2, 2), y=np.arange(12) % 2)
    ds = load_dataset(DataConfig(source=str(tmp_path / "d.npz"), target="y", image_shape=(1, 2, 2)))
    assert ds.x.shape == (12, 4)


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.assign(a=["u"] * len(f)), "column 'a' has dtype"),
    (lambda f: f.assign(b=[np.nan] + [1.0] * (len(f) - 1)), "1 are missing or infinite"),
    (lambda f: f.drop(columns=["label"]), "data.target: a column of d.csv expected, but got 'label'"),
    (lambda f: f.assign(label=[None] + ["x"] * (len(f) - 1)), "no missing labels expected"),
])
def test_bad_files_are_clear_errors(tmp_path, mutate, message):
    mutate(_frame()).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="label"))


def test_wrong_image_shape_and_unknown_sources(tmp_path):
    with pytest.raises(DataError, match=r"C\*H\*W must equal the feature count 64"):
        load_dataset(DataConfig(source="sklearn:digits", image_shape=(1, 4, 4)))
    with pytest.raises(ValueError, match="sklearn:iris"):
        DataConfig(source="sklearn:mnist")
    with pytest.raises(ValueError, match="URL"):
        DataConfig(source="https://example.com/x.csv")


def test_holdout_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(4), 25)
    tr, te = holdout_split(y, 0.2, 0)
    assert set(tr).isdisjoint(te) and len(tr) + len(te) == 100
    assert np.bincount(y[te]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(te, holdout_split(y, 0.2, 0)[1])
