"""What every source loader shares: the error type, the loaded-but-unencoded rows, small checks."""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the float32 feature matrix a source may decode into memory; larger data streams (issue 11, later)
MAX_IN_MEMORY_BYTES = 8 * 2**30


class DataError(ValueError):
    """A problem with the data a spec points at; the message names the field."""


MAX_COUNTED_LABELS = 100_000  # distinct labels a sample keeps counting (trainers.families.config.MAX_CLASSES)


class LabelCounts(Counter):
    """A sample's count of every row's label, bounded: a numeric target of a large file has about as
    many distinct values as rows, so past MAX_COUNTED_LABELS distinct labels no new one is kept (`many`),
    while `rows` still counts every labelled row. Memory: at most MAX_COUNTED_LABELS plus one chunk's keys."""

    def __init__(self):
        super().__init__()
        self.rows, self.many = 0, False

    def add(self, labels: list) -> None:
        self.rows += len(labels)
        if not self.many:
            self.update(labels)
            self.many = len(self) > MAX_COUNTED_LABELS


@dataclass(frozen=True)
class Rows:
    """One source's rows before class encoding: what load_dataset combines."""

    x: object  # (n, features) float32 / float64 array, or a trainers.tables.Table of typed columns
    labels: np.ndarray  # (n,) original labels
    feature_names: list[str]
    # "table" (CSV / Parquet / NPZ files and Parquet shard directories), "idx" or "images":
    # data.test_source must be of the same kind as data.source
    kind: str
    image_shape: tuple[int, int, int] | None = None  # known from the source itself (IDX header, declared dir)
    # a sample (trainers.data.files.Files.sample_rows): x and labels are the first rows only, counts every
    # row's label -> how many rows have it
    counts: LabelCounts | None = None


@dataclass(frozen=True)
class Frame:
    """A tabular source as read (features and target, data.na_values already missing): how its rows
    become features is decided with data.test_source's frame beside it (trainers.data.frames)."""

    frame: object  # pandas DataFrame
    name: str  # the file (or shards) as errors name it
    counts: LabelCounts | None = None  # a sample's: every labelled row's label -> count (frame: the first rows)
    missing_targets: int = 0  # a sample's: rows of the whole file without a target


def no_missing(x: np.ndarray, names: list[str], field: str = "data.source") -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        cols = [names[i] for i in np.flatnonzero(bad.any(0))[:5]]
        raise DataError(f"{field}: finite feature values expected, but {int(bad.sum())} are missing "
                        f"or infinite (columns {cols})")


def fits_in_memory(rows: int, features: int, field: str, itemsize: int = 4) -> None:
    """Refuse before decoding: a header's (or a listing's) counts decide, never the bytes read. itemsize:
    bytes per value as decoded (the float32 matrix's 4 by default)."""
    need = rows * features * itemsize
    if need > MAX_IN_MEMORY_BYTES:
        raise DataError(f"{field}: at most {MAX_IN_MEMORY_BYTES} bytes of float32 features in memory expected, "
                        f"but {rows} rows x {features} features need {need}")


def shown(name: str) -> str:
    """A file name as errors show it: quoted, and short (names are the user's, contents never shown)."""
    return repr(name[:80] + ("..." if len(name) > 80 else ""))


MAX_LABEL_CHARS = 256  # one class label (a target value, a class folder's name)


def check_targets(values: np.ndarray, field: str = "data.target") -> np.ndarray:
    """A regression target as it will be trained on: float64, finite. Never echoes a value."""
    try:
        out = np.asarray(values).astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{field}: numbers for a regression target (data.task) expected, but some values are "
                        f"text") from None
    bad = ~np.isfinite(out)
    if bad.any():
        raise DataError(f"{field}: finite numbers for a regression target expected, but {int(bad.sum())} are NaN "
                        f"or infinite")
    return out


def check_labels(labels: np.ndarray, field: str = "data.target") -> np.ndarray:
    """Labels as they will be trained on, stored and served, checked once where the data is loaded:
    numbers finite and within int64, text valid UTF-8 of at most MAX_LABEL_CHARS characters, one kind
    (a column mixing numbers and text is read as text). Never echoes a label."""
    values = np.asarray(labels)
    if values.dtype.kind == "u":
        if values.size and int(values.max()) > np.iinfo(np.int64).max:
            raise DataError(f"{field}: labels within the 64-bit signed integer range expected, but "
                            f"{int((values > np.iinfo(np.int64).max).sum())} are larger")
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"{field}: finite labels expected, but {int(bad.sum())} are NaN or infinite")
        return values
    if values.dtype.kind in "iub":
        return values
    items = values.tolist()
    if values.dtype.kind == "S" or any(isinstance(v, bytes) for v in items):
        try:
            items = [v.decode("utf-8") if isinstance(v, bytes) else v for v in items]
        except UnicodeDecodeError:
            raise DataError(f"{field}: UTF-8 text labels expected, but some are not valid UTF-8") from None
    if any(isinstance(v, float) and not np.isfinite(v) for v in items):
        raise DataError(f"{field}: finite labels expected, but some are NaN or infinite")
    if any(isinstance(v, str) for v in items):
        items = [v if isinstance(v, str) else str(v) for v in items]
        long = sum(len(v) > MAX_LABEL_CHARS for v in items)
        if long:
            raise DataError(f"{field}: labels of at most {MAX_LABEL_CHARS} characters expected, but {long} are longer")
        try:
            for v in items:
                v.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"{field}: labels that are valid UTF-8 text expected, but some are not (undecodable "
                            f"bytes in a file or folder name)") from None
        return np.array(items, dtype=object)
    if all(isinstance(v, (bool, np.bool_)) for v in items):
        return np.array(items, dtype=bool)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items):
        return check_labels(np.array(items), field)
    return check_labels(np.array([str(v) for v in items], dtype=object), field)
