"""A directory of Parquet shards: one table, the rules of one Parquet file, bad shards named."""
import numpy as np
import pandas as pd
import pytest

import trainers.data.tabular as tabular
from trainers.data import DataConfig, DataError, load_dataset


def _frame(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "label": ["x", "y", "z"] * (n // 3)})


def _shards(folder, frame, parts=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in reversed(range(parts)):  # written out of order: rows follow the shards' names
        frame.iloc[i * len(frame) // parts:(i + 1) * len(frame) // parts].to_parquet(folder / f"part-{i}.parquet")
    return folder


def test_shards_read_as_one_table_in_name_order(tmp_path):
    frame = _frame()
    root = _shards(tmp_path / "shards", frame)
    (root / "_SUCCESS").write_text("")
    (root / ".part-0.parquet.crc").write_bytes(b"TOPSECRET")
    (root / "README.md").write_text("not a shard")
    ds = load_dataset(DataConfig(source=str(root), target="label"))
    frame.to_csv(tmp_path / "whole.csv", index=False)
    whole = load_dataset(DataConfig(source=str(tmp_path / "whole.csv"), target="label"))
    assert ds.x.shape == (30, 2) and np.array_equal(ds.x, whole.x) and np.array_equal(ds.y, whole.y)
    assert ds.classes == ["x", "y", "z"] and ds.feature_names == ["a", "b"]


@pytest.mark.parametrize("damage, message", [
    (lambda r: _frame(9).rename(columns={"b": "c"}).to_parquet(r / "part-3.parquet"),
     r"every shard with the columns of 'part-0.parquet' expected, but 'part-3.parquet' has \['a: double', "
     r"'c: double', 'label: .*'\] instead of \['a: double', 'b: double', 'label: .*'\]"),
    (lambda r: (r / "part-1.parquet").write_text("TOPSECRET"),
     r"readable Parquet shards expected, but reading 'part-1.parquet' failed \(ArrowInvalid\)"),
    (lambda r: (r / "year=2020").mkdir(),
     "a flat directory of Parquet shards expected, but got subdirectory 'year=2020'"),
    (lambda r: _frame(9).assign(a=["s"] * 9).to_parquet(r / "part-3.parquet"), "every shard with the columns"),
])
def test_bad_shards_are_named_never_quoted(tmp_path, damage, message):
    root = _shards(tmp_path / "shards", _frame())
    damage(root)
    with pytest.raises(DataError, match="^data.source: " + message) as err:
        load_dataset(DataConfig(source=str(root), target="label"))
    assert "TOPSECRET" not in str(err.value)


def test_column_rules_are_the_single_files(tmp_path):
    root = _shards(tmp_path / "shards", _frame().assign(b=[np.inf] + [1.0] * 29))
    with pytest.raises(DataError, match="column 'b': finite numbers or missing values expected"):
        load_dataset(DataConfig(source=str(root), target="label"))
    with pytest.raises(DataError, match=r"^data.target: a column of shards/\*.parquet expected, but got 'y'"):
        load_dataset(DataConfig(source=str(root), target="y"))


def test_shard_count_limit(tmp_path, monkeypatch):
    root = _shards(tmp_path / "shards", _frame())
    monkeypatch.setattr(tabular, "MAX_PARQUET_SHARDS", 3)
    assert len(load_dataset(DataConfig(source=str(root), target="label")).y) == 30
    monkeypatch.setattr(tabular, "MAX_PARQUET_SHARDS", 2)
    with pytest.raises(DataError, match="^data.source: at most 2 Parquet shards expected, but shards has more"):
        load_dataset(DataConfig(source=str(root), target="label"))


def test_a_linked_shard_is_refused_inside_the_data_roots(tmp_path):
    from trainers.data.files import Files

    root = _shards(tmp_path / "shards", _frame())
    _frame().to_parquet(tmp_path / "outside.parquet")
    (root / "part-9.parquet").symlink_to(tmp_path / "outside.parquet")
    assert len(load_dataset(DataConfig(source=str(root), target="label")).y) == 60  # the user's own: followed
    with pytest.raises(DataError, match=r"^data.source: a regular file inside the data roots expected, but "
                                        r"'part-9.parquet' is not one \(missing, a link, or another kind of file\)$"):
        load_dataset(DataConfig(source=str(root), target="label"), files=Files([tmp_path]))
