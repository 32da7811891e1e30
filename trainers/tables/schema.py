"""The column schema of a table: which columns are features, and of which kind (numeric or categorical),
inferred from a source's columns and the spec's overrides, recorded with the sweep and with every
model that reads the table. One owner of how a raw column becomes a feature column (`apply`): the
loaders, test_source and served records all go through it.

Rules (the spec's data.categorical / data.numeric / data.drop win over them):
- bool, string and pandas `category` columns are categorical; integer and float columns numeric
  (an integer column is categorical only when data.categorical names it);
- a datetime column (datetime64, or strings that all parse as ISO 8601 dates) is expanded into numeric
  parts <name>.year, .month, .day, .day_of_week (and .hour, .minute where any value has a time of day);
- an ID-like column (a categorical one whose every value is different, 20 rows or more) is kept but
  reported: data.drop leaves it out.
Missing values (empty cells, NaN, data.na_values markers) are allowed in every feature column.
Limits are named constants, checked before anything big is built; errors name the column, never a value.
"""
from __future__ import annotations

from typing import Iterable, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

MAX_COLUMNS = 2000  # feature columns of one table
MAX_COLUMN_NAME_CHARS = 256
MAX_CELL_CHARS = 1000  # one categorical value
ID_LIKE_MIN_ROWS = 20
FLOAT32_MAX = float(np.finfo(np.float32).max)
DATE_PARTS = ("year", "month", "day", "day_of_week")
TIME_PARTS = ("hour", "minute")


class TableError(ValueError):
    """A table that does not fit its schema; the message names the column, never a cell's value."""


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=MAX_COLUMN_NAME_CHARS)
    kind: Literal["numeric", "categorical"]


class ColumnSchema(BaseModel):
    """Feature columns in order, the source columns left out, and the datetime sources expanded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[Column] = Field(max_length=MAX_COLUMNS)
    dropped: list[str] = Field(default_factory=list)  # data.drop (and the target)
    # source column -> the parts it became (each a numeric column named <source>.<part>)
    datetimes: dict[str, list[str]] = Field(default_factory=dict)
    id_like: list[str] = Field(default_factory=list)  # reported only: unique per row

    def names(self, kind: str | None = None) -> list[str]:
        return [c.name for c in self.columns if kind is None or c.kind == kind]

    def source_columns(self) -> list[str]:
        """The raw columns a row must (or may) carry: features, and the datetime columns they came from."""
        parts = {f"{src}.{p}" for src, ps in self.datetimes.items() for p in ps}
        return [c.name for c in self.columns if c.name not in parts] + list(self.datetimes)

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Raw columns -> the feature frame: datetimes expanded, numeric columns float64 (NaN missing),
        categorical columns strings (NaN missing), in schema order. A missing column is all missing."""
        out = {}
        for source, parts in self.datetimes.items():
            if source not in frame and all(f"{source}.{p}" in frame for p in parts):
                continue  # the parts themselves (an earlier apply's output): read as numbers below
            when = _as_datetime(frame[source] if source in frame else pd.Series([pd.NaT] * len(frame)), source)
            for part in parts:
                out[f"{source}.{part}"] = getattr(when.dt, part).to_numpy(dtype=np.float64, na_value=np.nan)
        for col in self.columns:
            if col.name in out:
                continue
            raw = frame[col.name] if col.name in frame else pd.Series([np.nan] * len(frame), dtype="float64")
            if col.kind == "numeric":
                out[col.name] = numeric(raw, col.name)
            else:  # object, as pandas would otherwise infer its string dtype for these
                out[col.name] = pd.Series(categorical(raw, col.name), index=frame.index, dtype="object", copy=False)
        # arrays, one DataFrame built at the end: pandas' work per column cost a served row most of its time
        return pd.DataFrame({c.name: out[c.name] for c in self.columns}, index=frame.index)


def numeric(raw: pd.Series, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing; a value that is no number is an error naming it."""
    if isinstance(raw.dtype, np.dtype) and raw.dtype.kind in "biuf":  # plain numpy numbers and bools
        values = raw.to_numpy(dtype=np.float64)
    elif pd.api.types.is_bool_dtype(raw) or pd.api.types.is_numeric_dtype(raw):  # pandas' nullable dtypes
        values = raw.astype("float64").to_numpy()
    elif (values := _plain_numbers(raw)) is None:  # strings, bools, numpy scalars: pandas' own parsing
        try:
            converted = pd.to_numeric(raw.astype("object").where(raw.notna(), None), errors="coerce")
        except OverflowError:  # an integer past float64 (pandas raises instead of coercing it)
            raise TableError(f"column {name[:80]!r}: numbers within float32 range (|x| <= {FLOAT32_MAX:.4g}) "
                             f"expected, but got an integer beyond even float64") from None
        bad = converted.isna() & raw.notna()
        if bad.any():
            raise TableError(f"column {name[:80]!r}: numbers expected, but {int(bad.sum())} values are not numbers "
                             f"(declare it in data.categorical, or list the markers in data.na_values)")
        values = converted.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        raise TableError(f"column {name[:80]!r}: finite numbers or missing values expected, but got "
                         f"{int(np.isinf(values).sum())} infinite values")
    huge = int((np.abs(values) > FLOAT32_MAX).sum())
    if huge:  # the models compute in float32, where these would be infinite
        raise TableError(f"column {name[:80]!r}: numbers within float32 range (|x| <= {FLOAT32_MAX:.4g}) expected, "
                         f"but got {huge} beyond it")
    return values


def _plain_numbers(raw: pd.Series) -> np.ndarray | None:
    """An object column of Python ints, floats and None (served records are) as float64, or None when it
    holds anything else. The same numbers pd.to_numeric gives, without its cost per call."""
    values = raw.to_numpy(dtype=object)
    if not all(v is None or type(v) is float or type(v) is int for v in values):
        return None
    try:
        return values.astype(np.float64)
    except OverflowError:  # an int past float64: pandas' path says which column
        return None


def categorical(raw: pd.Series, name: str) -> np.ndarray:
    """A categorical column as Python strings with NaN for missing ("" counts as missing)."""
    values = raw.to_numpy(dtype=object)
    missing = pd.isna(values)
    text = np.array([v if isinstance(v, str) else str(v) for v in values], dtype=object)
    text[missing] = np.nan
    empty = np.array([isinstance(v, str) and v == "" for v in text], dtype=bool)
    text[empty] = np.nan
    long = [len(v) for v in text if isinstance(v, str) and len(v) > MAX_CELL_CHARS]
    if long:
        raise TableError(f"column {name[:80]!r}: values of at most {MAX_CELL_CHARS} characters expected, but "
                         f"{len(long)} are longer (up to {max(long)})")
    return text


def _as_datetime(raw: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    return pd.to_datetime(raw.astype("object"), errors="coerce", format="ISO8601", utc=False)


def _looks_like_dates(raw: pd.Series) -> bool:
    """Strings that all parse as ISO 8601 dates (a digit-dash-digit shape first, so codes like "A1" never do)."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return True
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        return False
    present = raw.dropna()
    if present.empty:
        return False
    text = present.astype(str)
    if not text.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    return bool(parsed.notna().all())


def infer(frame: pd.DataFrame, target: str | None, categorical_cols: Iterable[str] = (),
          numeric_cols: Iterable[str] = (), drop: Iterable[str] = ()) -> ColumnSchema:
    """The schema of a source's columns (the target and data.drop left out), spec overrides applied."""
    categorical_cols, numeric_cols, drop = list(categorical_cols), list(numeric_cols), list(drop)
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise TableError(f"distinct column names expected, but {[n[:40] for n in twice[:5]]} appear more than once")
    for field, listed in (("data.categorical", categorical_cols), ("data.numeric", numeric_cols),
                          ("data.drop", drop)):
        unknown = [c for c in listed if c not in names]
        if unknown:
            raise TableError(f"{field}: columns of the source expected, but got {[c[:40] for c in unknown[:5]]} "
                             f"(columns: {[n[:40] for n in names[:20]]})")
        if target in listed:
            raise TableError(f"{field}: feature columns expected, but got the target {target!r}")
    both = sorted(set(categorical_cols) & set(numeric_cols))
    if both:
        raise TableError(f"data.categorical and data.numeric: a column in one of them expected, but "
                         f"{[c[:40] for c in both[:5]]} are in both")
    features = [n for n in names if n != target and n not in drop]
    if not features:
        raise TableError(f"at least one feature column expected, but the source has only the target {target!r}"
                         + (" and data.drop's columns" if drop else ""))
    if len(features) > MAX_COLUMNS:
        raise TableError(f"at most {MAX_COLUMNS} feature columns expected, but got {len(features)}")
    long = [n for n in features if len(n) > MAX_COLUMN_NAME_CHARS]
    if long:
        raise TableError(f"column names of at most {MAX_COLUMN_NAME_CHARS} characters expected, but got one of "
                         f"{len(long[0])}")
    columns, datetimes, id_like = [], {}, []
    for name in features:
        raw = frame[name]
        if name in categorical_cols:
            kind = "categorical"
        elif name in numeric_cols:
            kind = "numeric"
        elif _looks_like_dates(raw):
            when = _as_datetime(raw, name)
            timed = bool(((when.dt.hour.fillna(0) != 0) | (when.dt.minute.fillna(0) != 0)).any())
            datetimes[name] = list(DATE_PARTS + (TIME_PARTS if timed else ()))
            columns += [Column(name=f"{name}.{p}", kind="numeric") for p in datetimes[name]]
            continue
        elif pd.api.types.is_bool_dtype(raw) or not pd.api.types.is_numeric_dtype(raw):
            kind = "categorical"
        else:
            kind = "numeric"
        columns.append(Column(name=name, kind=kind))
        if kind == "categorical" and len(raw) >= ID_LIKE_MIN_ROWS and raw.notna().all() and raw.nunique() == len(raw):
            id_like.append(name)
    dropped = ([target] if target in names else []) + drop
    return ColumnSchema(columns=columns, dropped=dropped, datetimes=datetimes, id_like=id_like)
