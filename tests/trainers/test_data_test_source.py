"""data.test_source: a predefined test set is the held-out split itself, never re-split."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.trainers.test_data_idx import mnist_like, write_idx
from trainers.data import DataConfig, DataError, holdout_split, load_dataset, split_indices


def test_idx_test_files_are_exactly_the_held_out_rows(tmp_path):
    train, train_images, train_labels = mnist_like(tmp_path, "train", n=30, gz=True)
    test, test_images, test_labels = mnist_like(tmp_path, "t10k", n=9, seed=1)
    for fraction, seed in [(0.2, 0), (0.5, 7)]:  # neither changes a predefined split
        cfg = DataConfig(source=str(train), test_source=str(test), test_fraction=fraction, split_seed=seed)
        ds = load_dataset(cfg)
        train_idx, test_idx = split_indices(ds, cfg)
        assert ds.n_predefined_test == 9 and len(ds.y) == 39
        assert train_idx.tolist() == list(range(30)) and test_idx.tolist() == list(range(30, 39))
        assert np.array_equal(ds.x[test_idx], test_images.reshape(9, -1).astype(np.float32))
        assert np.array_equal(ds.y[test_idx], test_labels) and np.array_equal(ds.x[train_idx],
                                                                             train_images.reshape(30, -1))


def test_without_test_source_the_split_is_the_seeded_stratified_one():
    cfg = DataConfig(source="sklearn:iris", test_fraction=0.2, split_seed=3)
    ds = load_dataset(cfg)
    assert ds.n_predefined_test == 0
    for got, expected in zip(split_indices(ds, cfg), holdout_split(ds.y, 0.2, 3)):
        assert np.array_equal(got, expected)


def _images(root, classes, value=0):
    for i, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for j in range(2):
            Image.new("L", (6, 6), 10 * i + j + value).save(root / name / f"{j}.png")
    return root


def test_image_test_dir_with_fewer_classes_keeps_the_training_indices(tmp_path):
    train = _images(tmp_path / "train", ["ant", "bee", "cow"])
    test = _images(tmp_path / "test", ["ant", "cow"], value=100)  # no "bee": "cow" must stay class 2
    cfg = DataConfig(source=str(train), test_source=str(test), image_shape=(1, 4, 4))
    ds = load_dataset(cfg)
    assert ds.classes == ["ant", "bee", "cow"] and ds.y.tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 2, 2]
    assert ds.x[6:, 0].tolist() == [100, 101, 110, 111]


def test_test_classes_must_be_training_classes(tmp_path):
    train = _images(tmp_path / "train", ["ant", "bee"])
    test = _images(tmp_path / "test", ["ant", "bee", "owl"])
    with pytest.raises(DataError, match=r"^data.test_source: labels among data.source's 2 classes expected, but 2 "
                                        r"rows have a label data.source lacks \(classes \['owl'\]\)"):
        load_dataset(DataConfig(source=str(train), test_source=str(test), image_shape=(1, 4, 4)))


def _csv(path, frame):
    frame.to_csv(path, index=False)
    return str(path)


def test_tabular_test_sources_match_by_columns_and_never_echo_labels(tmp_path):
    frame = pd.DataFrame({"a": np.arange(12.0), "b": np.arange(12.0), "label": ["x", "y", "z"] * 4})
    train = _csv(tmp_path / "train.csv", frame)
    frame.iloc[:3].to_parquet(tmp_path / "test.parquet")  # another tabular file kind is fine
    ds = load_dataset(DataConfig(source=train, test_source=str(tmp_path / "test.parquet"), target="label"))
    assert ds.n_predefined_test == 3 and ds.y[-3:].tolist() == [0, 1, 2]
    # columns are matched by name: reordered ones are the same features
    reordered = load_dataset(DataConfig(source=train, target="label",
                                        test_source=_csv(tmp_path / "t1.csv", frame[["b", "a", "label"]] * [1, 2, 1])))
    assert reordered.x[-1].tolist() == [22.0, 11.0]  # a (doubled), b of the last test row: data.source's order
    with pytest.raises(DataError, match=r"^data.test_source: the feature columns of data.source expected, but "
                                        r"t2.csv lacks \['b'\]"):
        load_dataset(DataConfig(source=train, target="label",
                                test_source=_csv(tmp_path / "t2.csv", frame[["a", "label"]])))
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(source=train, target="label",
                                test_source=_csv(tmp_path / "t3.csv", frame.assign(label="TOPSECRET"))))
    assert str(err.value) == ("data.test_source: labels among data.source's 3 classes expected, but 12 rows have a "
                              "label data.source lacks")


def test_test_source_kind_shape_and_location(tmp_path):
    train, _, _ = mnist_like(tmp_path / "a")
    other, _, _ = mnist_like(tmp_path / "b", "t10k", rows=5, cols=4)
    with pytest.raises(DataError, match=r"^data.test_source: image shape \[1, 4, 5\] like data.source expected, "
                                        r"but got \[1, 5, 4\]"):
        load_dataset(DataConfig(source=str(train), test_source=str(other)))
    write_idx(tmp_path / "b" / "t10k-images-idx3-ubyte", np.zeros((3, 4, 5), np.uint8))
    write_idx(tmp_path / "b" / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    assert load_dataset(DataConfig(source=str(train), test_source=str(other))).n_predefined_test == 3
    pd.DataFrame({"a": [1.0] * 20, "target": [0, 1] * 10}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"^data.test_source: a source of data.source's kind \(IDX\) expected, "
                                        r"but got tabular$"):
        load_dataset(DataConfig(source=str(train), test_source=str(tmp_path / "t.csv")))
    with pytest.raises(DataError, match="^data.test_source: an existing file or directory expected"):
        load_dataset(DataConfig(source=str(train), test_source=str(tmp_path / "nope")))
    for bad in ("sklearn:iris", "s3://bucket/t10k-images-idx3-ubyte"):
        with pytest.raises(ValueError, match="a local file or directory path expected"):
            DataConfig(source=str(train), test_source=bad)
    # any local path is a valid schema value; its kind is decided at load time
    assert DataConfig(source="data/train-images-idx3-ubyte.gz").source.endswith(".gz")
    assert DataConfig(source="data/images").source == "data/images"


def test_spec_uses_the_predefined_split_for_its_checks_and_prepare_writes_it(tmp_path, home, monkeypatch):
    from service import sweep
    from service.spec import SpecError, parse_spec
    from tests.conftest import tiny_spec

    data = tmp_path / "data"
    mnist_like(data, "train", n=30)
    mnist_like(data, "t10k", n=3, seed=1)
    raw = tiny_spec("predefined", data={"source": "data/train-images-idx3-ubyte", "test_fraction": 0.01,
                                        "test_source": "data/t10k-images-idx3-ubyte"}, cv={"folds": 10})
    # 0.01 of 33 rows would be too few for 3 classes, but test_fraction is unused; 10 folds fit 10 rows per class
    spec = parse_spec(raw, base_dir=tmp_path)
    assert spec.data.test_source == str(data / "t10k-images-idx3-ubyte")  # absolute, like data.source
    assert spec.data.image_shape == (1, 4, 5)  # inferred from the header, kept in the spec
    with pytest.raises(SpecError, match=r"smallest class's training rows \(10\)"):
        parse_spec(raw | {"cv": {"folds": 11}}, base_dir=tmp_path)

    with np.load(sweep.prepare(spec).files.split_file) as split:
        assert split["train_idx"].tolist() == list(range(30)) and split["test_idx"].tolist() == [30, 31, 32]
