"""Tabular sources: scikit-learn's bundled sets, a CSV / Parquet / NPZ file, a directory of Parquet shards.
Files are read as they are (trainers.data.frames decides how their columns become features).

Every file is opened once through trainers.data.files (a regular file, inside the data roots when
sandboxed) and its size is checked from what the format says before any row is decoded: a CSV's byte
size, a Parquet file's metadata (rows, uncompressed column chunks), an NPZ member's header (shape x
dtype). With Files.sample_rows set (the REST API validating a spec), only the first rows' features
are read, and every row's label is counted without being kept (trainers.data.common.Frame.counts)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from trainers.data.common import MAX_IN_MEMORY_BYTES, DataError, Frame, LabelCounts, Rows, fits_in_memory, shown
from trainers.data.files import Files

MAX_PARQUET_SHARDS = 10_000  # *.parquet files in one shard directory
MAX_TABLE_BYTES = 2 * 2**30  # a CSV's bytes, or a Parquet source's uncompressed column chunks
MAX_SAMPLE_BYTES = 8 * 2**20  # text of the rows a sample reads (Files.sample_rows)
LABEL_CHUNK_ROWS = 200_000  # rows per chunk when a sample counts the labels of a large file
PARQUET_SUFFIXES = (".parquet", ".pq")


def load_sklearn(name: str) -> Rows:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = [str(n) for n in getattr(bunch, "feature_names", [f"x{i}" for i in range(bunch.data.shape[1])])]
    return Rows(np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target), names, "table")


def _unreadable(field: str, what: str, name: str, err: Exception) -> DataError:
    """A reader's failure: only the CSV parser's own wording (line and field counts) is shown; other
    readers' messages (decoders, Arrow) can quote the file's bytes, so only their type is."""
    import pandas as pd

    why = str(err).splitlines()[0][:200] if isinstance(err, pd.errors.ParserError) else type(err).__name__
    return DataError(f"{field}: a readable {what} file expected, but reading {shown(name)} failed ({why})")


def _too_large(field: str, name: str, size: int, limit: int, what: str) -> None:
    if size > limit:
        raise DataError(f"{field}: at most {limit} bytes of {what} expected, but {shown(name)} has {size}")


def load_file(path: Path, target: str, field: str, files: Files, na_values: list[str] = ()) -> Frame | Rows:
    """A single .csv / .parquet / .pq / .npz file."""
    suffix = path.suffix.lower()
    with files.open(path, field) as f:
        if suffix == ".npz":
            return _load_npz(f, path.name, target, field, files.sample_rows)
        if suffix == ".csv":
            _too_large(field, path.name, files.size(f), MAX_TABLE_BYTES, "CSV text")
            return _read_csv(f, path.name, target, field, na_values, files.sample_rows)
        try:
            return _read_parquet([(f, path.name)], path.name, target, field, na_values, files.sample_rows)
        except DataError as err:
            if "readable Parquet shards" not in str(err):
                raise
            raise DataError(f"{field}: a readable .parquet file expected, but reading {path.name} failed "
                            f"({str(err).rsplit('(', 1)[-1]}") from None


def _read_csv(f, name: str, target: str, field: str, na_values, sample_rows: int | None) -> Frame:
    import pandas as pd

    markers = list(na_values) or None
    try:
        if sample_rows is None:
            return Frame(pd.read_csv(f, na_values=markers, low_memory=False), name)
        # the first rows, from at most MAX_SAMPLE_BYTES of text (whole lines only)
        head = f.read(MAX_SAMPLE_BYTES)
        if len(head) == MAX_SAMPLE_BYTES and b"\n" in head:
            head = head[:head.rindex(b"\n") + 1]
        frame = pd.read_csv(io.BytesIO(head), na_values=markers, low_memory=False, nrows=sample_rows)
        if target not in frame.columns:
            return Frame(frame, name)
        # every row's label, counted chunk by chunk (only the counts are kept)
        f.seek(0)
        counts = LabelCounts()
        missing = 0
        for chunk in pd.read_csv(f, usecols=[target], na_values=markers, chunksize=LABEL_CHUNK_ROWS):
            missing += int(chunk[target].isna().sum())
            counts.add(chunk[target].dropna().tolist())
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad file, never a crash
        raise _unreadable(field, ".csv", name, err) from None
    return Frame(frame, name, counts=counts, missing_targets=missing)


def _missing_markers(frame, na_values):
    """data.na_values in a Parquet table's text columns become missing (read_csv does it for CSV)."""
    if not na_values:
        return frame
    import pandas as pd

    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col]):
            frame[col] = frame[col].where(~frame[col].astype("object").isin(list(na_values)))
    return frame


def _read_parquet(parts: list, name: str, target: str, field: str, na_values, sample_rows: int | None) -> Frame:
    """Parquet files (open file objects with their names), read as one table: every file's metadata is
    checked first (the same columns and types; rows x uncompressed chunks within MAX_TABLE_BYTES)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    opened, total = [], 0
    for f, part in parts:
        try:
            pf = pq.ParquetFile(f)
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{field}: readable Parquet shards expected, but reading {shown(part)} failed "
                            f"({type(err).__name__})") from None
        if opened and not pf.schema_arrow.equals(opened[0][0].schema_arrow):
            # names and types only, never values
            raise DataError(f"{field}: every shard with the columns of {shown(opened[0][1])} expected, but "
                            f"{shown(part)} has {_columns(pf.schema_arrow)} instead of "
                            f"{_columns(opened[0][0].schema_arrow)}")
        meta = pf.metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        _too_large(field, part, total, MAX_TABLE_BYTES, "uncompressed Parquet columns")
        fits_in_memory(meta.num_rows, max(meta.num_columns, 1) * 2, field)  # 8-byte cells at least
        opened.append((pf, part))
    if not opened:
        raise DataError(f"{field}: at least one *.parquet shard expected, but {name} has none")
    try:
        if sample_rows is None:
            table = pa.concat_tables([pf.read() for pf, _ in opened])
            return Frame(_missing_markers(table.to_pandas(), na_values), name)
        head = next(opened[0][0].iter_batches(batch_size=sample_rows), None)
        frame = (pa.Table.from_batches([head]) if head is not None else opened[0][0].schema_arrow.empty_table())
        frame = _missing_markers(frame.to_pandas(), na_values)
        if target not in frame.columns:
            return Frame(frame, name)
        counts = LabelCounts()
        missing = 0
        for pf, _ in opened:
            for batch in pf.iter_batches(batch_size=LABEL_CHUNK_ROWS, columns=[target]):
                labels = _missing_markers(batch.to_pandas(), na_values)[target]
                missing += int(labels.isna().sum())
                counts.add(labels.dropna().tolist())
    except Exception as err:  # noqa: BLE001 - Arrow's message can quote the file's bytes: its type only
        raise DataError(f"{field}: readable Parquet shards expected, but reading {shown(name)} failed "
                        f"({type(err).__name__})") from None
    return Frame(frame, name, counts=counts, missing_targets=missing)


def load_parquet_dir(path: Path, target: str, field: str, files: Files, na_values: list[str] = ()) -> Frame:
    """Every top-level *.parquet / *.pq shard of a directory, in name order, as one table. Names starting
    with "." or "_" are skipped (Spark's _SUCCESS, .crc files: Arrow's own rule); other files are ignored;
    a subdirectory is an error (a partitioned layout would silently lose its partition columns)."""
    shards = parquet_shards(path, field, files)
    handles = [files.open(shard, field) for shard in shards]
    try:
        return _read_parquet([(h, s.name) for h, s in zip(handles, shards)], f"{path.name}/*.parquet", target, field,
                             na_values, files.sample_rows)
    finally:
        for h in handles:
            h.close()


def parquet_shards(path: Path, field: str = "data.source", files: Files | None = None) -> list[Path]:
    """The shard files of a Parquet directory, in the order they are read (name order)."""
    shards = []
    for name, kind in (files or Files()).listdir(path, field):
        if name.startswith((".", "_")):
            continue
        if kind == "dir":
            raise DataError(f"{field}: a flat directory of Parquet shards expected, but got subdirectory "
                            f"{shown(name)}")
        if name.lower().endswith(PARQUET_SUFFIXES):
            shards.append(path / name)
            if len(shards) > MAX_PARQUET_SHARDS:
                raise DataError(f"{field}: at most {MAX_PARQUET_SHARDS} Parquet shards expected, but "
                                f"{path.name} has more")
    return shards


def _columns(schema) -> list[str]:
    return [f"{str(f.name)[:40]}: {f.type}" for f in list(schema)[:20]]


def _npy(archive: zipfile.ZipFile, key: str, name: str, field: str, max_rows: int | None = None) -> np.ndarray:
    """One array of an NPZ, its header checked (numbers or text, shape x itemsize within memory) before any
    value is read; max_rows: only the first rows of a C-ordered array."""
    info = archive.getinfo(f"{key}.npy")
    _too_large(field, name, info.file_size, MAX_IN_MEMORY_BYTES, f"array {key!r}")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(member, max_header_size=10_000)
        if dtype.hasobject:
            raise DataError(f"{field}: arrays of numbers or text expected, but {shown(name)}'s {key!r} holds "
                            f"Python objects (pickles are never loaded)")
        count = int(np.prod(shape, dtype=object))
        _too_large(field, name, count * dtype.itemsize, MAX_IN_MEMORY_BYTES, f"array {key!r}")
        if max_rows is not None and shape and not fortran and shape[0] > max_rows:
            shape = (max_rows, *shape[1:])
            count = int(np.prod(shape, dtype=object))
        raw = member.read(count * dtype.itemsize)
    if len(raw) < count * dtype.itemsize:
        raise DataError(f"{field}: {count} values for array {key!r} expected, but {shown(name)} is truncated")
    out = np.frombuffer(raw, dtype=dtype)
    return out.reshape(shape[::-1]).T if fortran else out.reshape(shape)


def _load_npz(f, name: str, target: str, field: str, sample_rows: int | None) -> Frame | Rows:
    """An NPZ file: "X" (rows, ...) numbers and the target array. Missing values (NaN) make it a table
    of numeric columns x0, x1, ... (trainers.data.frames)."""
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{field}: a readable .npz file expected, but reading {shown(name)} failed "
                        f"({type(err).__name__})") from None
    with archive:
        files_in = [n.removesuffix(".npy") for n in archive.namelist()]
        for key in ("X", target):
            if key not in files_in:
                raise DataError(f"data.target: NPZ arrays 'X' and {target!r} expected, "
                                f"but {name} has {sorted(files_in)[:20]}")
        try:
            x = _npy(archive, "X", name, field, sample_rows)
            labels = _npy(archive, target, name, field)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - a malformed member: its type only
            raise DataError(f"{field}: a readable .npz file expected, but reading {shown(name)} failed "
                            f"({type(err).__name__})") from None
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{field}: numeric array 'X' of shape (rows, ...) expected, "
                        f"but got dtype {x.dtype} shape {x.shape}")
    x = x.reshape(len(x), -1).astype(np.float64)
    if labels.ndim != 1 or (sample_rows is None and len(labels) != len(x)):
        raise DataError(f"data.target: {len(x)} labels expected (one per row of X), but got shape "
                        f"{labels.shape}")
    counts = None
    if sample_rows is not None:
        counts = LabelCounts()
        for start in range(0, len(labels), LABEL_CHUNK_ROWS):
            counts.add(labels[start:start + LABEL_CHUNK_ROWS].tolist())
        labels = labels[:len(x)]
    names = [f"x{i}" for i in range(x.shape[1])]
    if np.isnan(x).any():
        import pandas as pd

        return Frame(pd.DataFrame(x, columns=names).assign(**{target: labels}), name, counts=counts)
    if np.isinf(x).any():
        raise DataError(f"{field}: finite feature values or NaN for missing ones expected, but "
                        f"{int(np.isinf(x).sum())} are infinite")
    return Rows(x, labels, names, "table", counts=counts)
