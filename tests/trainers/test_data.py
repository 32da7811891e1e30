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
    (lambda f: f.assign(b=[np.inf] + [1.0] * (len(f) - 1)), "column 'b': finite numbers or missing values expected"),
    (lambda f: f.drop(columns=["label"]), "data.target: a column of d.csv expected, but got 'label'"),
    (lambda f: f.assign(label=[None] * len(f)), "every row of d.csv lacks one"),
    (lambda f: f.assign(label=["x" * 300] * len(f)), "data.target: labels of at most 256 characters expected"),
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
        load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="label", numeric=["a"]))
    assert str(err.value) == ("data.source: column 'a': numbers expected, but 30 values are not numbers (declare it "
                              "in data.categorical, or list the markers in data.na_values)")
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


def test_strings_missing_values_and_a_word_target_make_a_typed_table(tmp_path):
    frame = _frame().assign(a=["u", "v", None] * 10, b=[np.nan] + [1.0] * 29, label=[None] + ["x", "y"] * 14 + ["z"])
    frame.to_csv(tmp_path / "d.csv", index=False)
    ds = load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="label"))
    assert ds.dropped_rows == 1 and len(ds.y) == 29 and ds.classes == ["x", "y", "z"]
    assert [(c.name, c.kind) for c in ds.schema.columns] == [("a", "categorical"), ("b", "numeric")]
    assert ds.x.frame["a"].isna().sum() == 10 and ds.x.frame["b"].isna().sum() == 0  # row 0 went with its target


def test_markers_declarations_and_drops_shape_the_table(tmp_path):
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(30)], "code": [1, 2, 3] * 10, "hp": ["?", "7", "8"] * 10,
                          "when": pd.date_range("2024-01-01", periods=30, freq="6h").astype(str),
                          "label": [0, 1] * 15})
    frame.to_csv(tmp_path / "d.csv", index=False)
    ds = load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="label", categorical=["code"],
                                 na_values=["?"]))
    kinds = {c.name: c.kind for c in ds.schema.columns}
    assert kinds == {"id": "categorical", "code": "categorical", "hp": "numeric", "when.year": "numeric",
                     "when.month": "numeric", "when.day": "numeric", "when.day_of_week": "numeric",
                     "when.hour": "numeric", "when.minute": "numeric"}
    assert ds.schema.id_like == ["id"] and ds.x.frame["hp"].isna().sum() == 10 and ds.classes == [0, 1]
    dropped = load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="label", drop=["id", "when", "hp"]))
    assert dropped.schema is None and dropped.x.shape == (30, 1)  # numbers only, nothing missing: a matrix
    with pytest.raises(DataError, match=r"^data.source: data.drop: columns of the source expected, but got \['nope'\]"):
        load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="label", drop=["nope"]))


def test_labels_are_checked_where_they_are_loaded(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 2))
    for labels, message in [(np.array([0, 1, np.inf, 0, 1, 0]), "finite labels expected, but 1 are NaN or infinite"),
                            (np.array([2**63, 1, 0, 1, 0, 1], dtype=np.uint64), "within the 64-bit signed integer"),
                            (np.array([b"\xff", b"a"] * 3), "UTF-8 text labels expected")]:
        np.savez(tmp_path / "d.npz", X=x, y=labels)
        with pytest.raises(DataError, match=message):
            load_dataset(DataConfig(source=str(tmp_path / "d.npz"), target="y"))
    np.savez(tmp_path / "d.npz", X=x, y=np.array([3, 2**40, 3, 2**40, 3, 2**40], dtype=np.uint64))
    assert load_dataset(DataConfig(source=str(tmp_path / "d.npz"), target="y")).classes == [3, 2**40]


# ---- a numeric target: data.task ----

def _prices(n=60):
    rng = np.random.default_rng(1)
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "city": rng.choice(["paris", "oslo", None], n), "price": 100 + 20 * a})


def test_a_numeric_target_is_regression_under_auto_and_classes_stay_classes(tmp_path):
    _prices().to_csv(tmp_path / "p.csv", index=False)
    ds = load_dataset(DataConfig(source=str(tmp_path / "p.csv"), target="price"))
    assert ds.task == "regression" and ds.classes == [] and ds.n_outputs == 1
    assert ds.y.dtype == np.float64 and ds.y[:3] == pytest.approx(_prices()["price"][:3].to_numpy())
    assert ds.source_counts.tolist() == [60]
    ds = load_dataset(DataConfig(source=str(tmp_path / "p.csv"), target="city"))
    assert ds.task == "classification" and ds.classes == ["oslo", "paris"]  # rows without a city dropped
    # the spec decides either way: whole numbers as a number to predict, or a float column as classes
    counts = _prices().assign(n=np.arange(60) % 5)
    counts.to_csv(tmp_path / "c.csv", index=False)
    assert load_dataset(DataConfig(source=str(tmp_path / "c.csv"), target="n")).task == "classification"
    assert load_dataset(DataConfig(source=str(tmp_path / "c.csv"), target="n", task="regression")).task == "regression"


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.assign(price=["cheap"] * len(f)), "data.target: numbers for a regression target (data.task) "
                                                   "expected, but some values are text"),
    (lambda f: f.assign(price=[np.inf] + [1.5] * (len(f) - 1)), "finite numbers for a regression target expected, "
                                                                "but 1 are NaN or infinite"),
])
def test_a_regression_target_that_is_not_numbers_is_named(tmp_path, mutate, message):
    mutate(_prices()).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(DataConfig(source=str(tmp_path / "p.csv"), target="price", task="regression"))


def test_images_cannot_be_a_regression_target(tmp_path):
    from PIL import Image

    for label in ("1", "2"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        Image.new("L", (4, 4), 9).save(tmp_path / "imgs" / label / "a.png")
    cfg = dict(source=str(tmp_path / "imgs"), image_shape=(1, 4, 4))
    assert load_dataset(DataConfig(**cfg)).task == "classification"  # folder names are classes
    with pytest.raises(DataError, match="data.task: classification for image directory data"):
        load_dataset(DataConfig(**cfg, task="regression"))


def test_a_sample_counts_a_regression_targets_rows_in_bounded_memory(tmp_path, monkeypatch):
    """The API's sample: every row counted, distinct values kept only up to a limit (a numeric target
    has about as many as rows), and more distinct numbers than kept still read as regression."""
    import trainers.data.common as common
    from trainers.data.files import Files

    monkeypatch.setattr(common, "MAX_COUNTED_LABELS", 50)
    _prices(400).to_csv(tmp_path / "p.csv", index=False)
    ds = load_dataset(DataConfig(source=str(tmp_path / "p.csv"), target="price"), files=Files(sample_rows=20))
    assert ds.sampled and ds.task == "regression" and ds.source_counts.tolist() == [400] and len(ds.y) == 20
    frame = _prices(400).assign(price=np.arange(400))  # whole numbers, but 400 distinct: a number
    frame.to_csv(tmp_path / "q.csv", index=False)
    ds = load_dataset(DataConfig(source=str(tmp_path / "q.csv"), target="price"), files=Files(sample_rows=20))
    assert ds.task == "regression"
    with pytest.raises(DataError, match="data.target: at most 100000 classes expected, but got more"):
        load_dataset(DataConfig(source=str(tmp_path / "q.csv"), target="price", task="classification"),
                     files=Files(sample_rows=20))
