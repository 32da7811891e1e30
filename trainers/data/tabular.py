"""Tabular sources: scikit-learn's bundled sets, a CSV / Parquet / NPZ file, a directory of Parquet shards.
Files are read as they are (trainers.data.frames decides how their columns become features)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trainers.data.common import DataError, Frame, Rows, inside, shown

MAX_PARQUET_SHARDS = 10_000  # *.parquet files in one shard directory
PARQUET_SUFFIXES = (".parquet", ".pq")


def load_sklearn(name: str) -> Rows:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = [str(n) for n in getattr(bunch, "feature_names", [f"x{i}" for i in range(bunch.data.shape[1])])]
    return Rows(np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target), names, "table")


def load_file(path: Path, target: str, field: str, na_values: list[str] = ()) -> Frame:
    """A single .csv / .parquet / .pq / .npz file."""
    if path.suffix.lower() == ".npz":
        return _load_npz(path, target, field)

    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, na_values=list(na_values) or None, low_memory=False)
        else:
            frame = _missing_markers(pd.read_parquet(path), na_values)
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad file, never a crash
        # only the parser's own wording (line and field counts) is shown: other readers' messages
        # (decoders, Arrow) can quote the file's bytes
        why = str(err).splitlines()[0][:200] if isinstance(err, pd.errors.ParserError) else type(err).__name__
        raise DataError(f"{field}: a readable {path.suffix} file expected, but reading "
                        f"{path.name} failed ({why})") from None
    return Frame(frame, path.name)


def _missing_markers(frame, na_values):
    """data.na_values in a Parquet table's text columns become missing (read_csv does it for CSV)."""
    if not na_values:
        return frame
    import pandas as pd

    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col]):
            frame[col] = frame[col].where(~frame[col].astype("object").isin(list(na_values)))
    return frame


def load_parquet_dir(path: Path, target: str, field: str, na_values: list[str] = ()) -> Frame:
    """Every top-level *.parquet / *.pq shard of a directory, in name order, as one table. Names starting
    with "." or "_" are skipped (Spark's _SUCCESS, .crc files: Arrow's own rule); other files are ignored;
    a subdirectory is an error (a partitioned layout would silently lose its partition columns)."""
    return _load_shards(path, parquet_shards(path, field), field, na_values)


def parquet_shards(path: Path, field: str = "data.source") -> list[Path]:
    """The shard files of a Parquet directory, in the order they are read (name order)."""
    shards, home = [], Path(os.path.realpath(path))
    for entry in sorted(path.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            raise DataError(f"{field}: a flat directory of Parquet shards expected, but got subdirectory "
                            f"{shown(entry.name)}")
        if entry.suffix.lower() in PARQUET_SUFFIXES:
            inside(entry, home, field)
            shards.append(entry)
            if len(shards) > MAX_PARQUET_SHARDS:
                raise DataError(f"{field}: at most {MAX_PARQUET_SHARDS} Parquet shards expected, but "
                                f"{path.name} has more")
    return shards


def _load_shards(path: Path, shards: list[Path], field: str, na_values: list[str]) -> Frame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for shard in shards:
        try:
            tables.append(pq.read_table(shard))
        except Exception as err:  # noqa: BLE001 - Arrow's message can quote the file's bytes: its type only
            raise DataError(f"{field}: readable Parquet shards expected, but reading {shown(shard.name)} "
                            f"failed ({type(err).__name__})") from None
        if not tables[-1].schema.equals(tables[0].schema):
            # names and types only, never values
            raise DataError(f"{field}: every shard with the columns of {shown(shards[0].name)} expected, but "
                            f"{shown(shard.name)} has {_columns(tables[-1].schema)} instead of "
                            f"{_columns(tables[0].schema)}")
    if not tables:
        raise DataError(f"{field}: at least one *.parquet shard expected, but {path.name} has none")
    return Frame(_missing_markers(pa.concat_tables(tables).to_pandas(), na_values), f"{path.name}/*.parquet")


def _columns(schema) -> list[str]:
    return [f"{str(f.name)[:40]}: {f.type}" for f in list(schema)[:20]]


def _load_npz(path: Path, target: str, field: str) -> Rows:
    """An NPZ file: "X" (rows, ...) numbers and the target array. Missing values (NaN) make it a table
    of numeric columns x0, x1, ... (trainers.data.frames)."""
    with np.load(path, allow_pickle=False) as arrays:
        for key in ("X", target):
            if key not in arrays:
                raise DataError(f"data.target: NPZ arrays 'X' and {target!r} expected, "
                                f"but {path.name} has {sorted(arrays.files)}")
        x, labels = arrays["X"], arrays[target]
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{field}: numeric array 'X' of shape (rows, ...) expected, "
                        f"but got dtype {x.dtype} shape {x.shape}")
    x = x.reshape(len(x), -1).astype(np.float64)
    if labels.ndim != 1 or len(labels) != len(x):
        raise DataError(f"data.target: {len(x)} labels expected (one per row of X), but got shape "
                        f"{labels.shape}")
    names = [f"x{i}" for i in range(x.shape[1])]
    if np.isnan(x).any():
        import pandas as pd

        return Frame(pd.DataFrame(x, columns=names).assign(**{target: labels}), path.name)
    if np.isinf(x).any():
        raise DataError(f"{field}: finite feature values or NaN for missing ones expected, but {int(np.isinf(x).sum())} "
                        f"are infinite")
    return Rows(x, labels, names, "table")
