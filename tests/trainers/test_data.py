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


def test_errors_name_columns_and_dtypes_never_values(tmp_path):
    _frame().assign(a=["TOPSECRET"] * 30).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="label"))
    assert str(err.value) == "data.source: numeric feature columns expected, but column 'a' has dtype str"
    (tmp_path / "d.parquet").write_text("TOPSECRET,1\n")  # not Parquet: the reader's message is not shown
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(source=str(tmp_path / "d.parquet"), target="label"))
    assert "TOPSECRET" not in str(err.value) and str(err.value).startswith(
        "data.source: a readable .parquet file expected, but reading d.parquet failed (")


def test_shapes_and_seeds_are_bounded():
    with pytest.raises(ValueError, match=r"C\*H\*W <= 16777216 must hold"):
        DataConfig(source="sklearn:digits", image_shape=(65536, 65536, 65536))
    with pytest.raises(ValueError, match="less than or equal to 65536"):
        DataConfig(source="sklearn:digits", image_shape=(1, 1, 65537))
    assert DataConfig(source="sklearn:digits", image_shape=(1, 4096, 4096)).image_shape == (1, 4096, 4096)
    with pytest.raises(ValueError, match=r"C\*H\*W"):
        DataConfig(source="sklearn:digits", image_shape=(1, 4096, 4097))
    assert DataConfig(source="sklearn:digits", split_seed=2**32 - 1).split_seed == 2**32 - 1
    with pytest.raises(ValueError, match="less than or equal to 4294967295"):
        DataConfig(source="sklearn:digits", split_seed=2**32)
    with pytest.raises(ValueError, match="valid string"):
        DataConfig(source=b"sklearn:digits")
