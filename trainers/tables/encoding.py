"""TableEncoding: table rows -> the numeric matrix a family fits on, learnt from one fit's training rows
only (a fold's, or the whole training split for refits and students) and stored in the model's config
(trainers.families.config.ModelConfig.table), so every saved model carries the encoding that built it.

Two styles, a family's choice (Family.table_encoding):
- "onehot" (networks, linear models, kernels, neighbours, forests): a numeric column is imputed with
  its training median, plus a 0/1 missing-indicator column where the training rows had missing
  values; a categorical column becomes one 0/1 column per kept category (the MAX_ONEHOT most frequent
  in the training rows), one for any other value (rare, or first seen at prediction time: "unknown",
  never an error) and one for missing.
- "ordinal" (gradient boosting with native categorical splits): numeric columns as they are (NaN stays
  missing); a categorical column becomes its category's code 0..K-1 (the MAX_ORDINAL most frequent),
  K for any other value, NaN for missing; `categorical_columns` lists the code columns.

Fitting uses scikit-learn's statistics (SimpleImputer's median) and pandas' counts; transforming is a
few array operations with no fitted Python objects inside, so it is fast at batch 1 (a served
ensemble encodes per member group) and the state is plain JSON: nothing is pickled.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from trainers.tables.schema import ColumnSchema
from trainers.tables.table import Table

MAX_ONEHOT = 32  # kept categories per column, one-hot style (the rest share the "other" column)
MAX_ORDINAL = 250  # kept categories per column, ordinal style (gradient boosting bins: < 255 with other)
Style = Literal["onehot", "ordinal"]


class NumericEncoding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    fill: float = 0.0  # the training rows' median (onehot style): what a missing value becomes
    indicator: bool = False  # onehot style: a missing-indicator column follows (the training rows had missing)


class CategoricalEncoding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    categories: list[str] = Field(max_length=MAX_ORDINAL)  # most frequent first (ties: by value)


class TableEncoding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    style: Style
    columns: ColumnSchema  # how raw records become the feature columns this encoding reads
    numeric: list[NumericEncoding]
    categorical: list[CategoricalEncoding]

    @classmethod
    def fit(cls, table: Table, style: Style) -> "TableEncoding":
        from sklearn.impute import SimpleImputer

        frame = table.frame
        numeric = []
        num_names = table.schema.names("numeric")
        if num_names:
            values = frame[num_names].to_numpy(dtype=np.float64)
            seen = ~np.isnan(values).all(0)  # SimpleImputer drops all-missing columns: 0 for those
            medians = np.zeros(len(num_names))
            if seen.any():
                medians[seen] = SimpleImputer(strategy="median").fit(values[:, seen]).statistics_
            missing = np.isnan(values).any(0)
            numeric = [NumericEncoding(name=n, fill=float(m), indicator=bool(style == "onehot" and miss))
                       for n, m, miss in zip(num_names, medians, missing)]
        limit = MAX_ONEHOT if style == "onehot" else MAX_ORDINAL
        categorical = []
        for name in table.schema.names("categorical"):
            counts = frame[name].dropna().value_counts()
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            categorical.append(CategoricalEncoding(name=name, categories=[str(k) for k, _ in ranked]))
        return cls(style=style, columns=table.schema, numeric=numeric, categorical=categorical)

    @property
    def width(self) -> int:
        if self.style == "ordinal":
            return len(self.numeric) + len(self.categorical)
        return (len(self.numeric) + sum(n.indicator for n in self.numeric)
                + sum(len(c.categories) + 2 for c in self.categorical))

    @property
    def categorical_columns(self) -> list[int]:
        """Positions of the category-code columns in the encoded matrix (ordinal style)."""
        return list(range(len(self.numeric), self.width)) if self.style == "ordinal" else []

    def column_names(self) -> list[str]:
        if self.style == "ordinal":
            return [n.name for n in self.numeric] + [c.name for c in self.categorical]
        out = []
        for n in self.numeric:
            out += [n.name] + ([f"{n.name}=<missing>"] if n.indicator else [])
        for c in self.categorical:
            out += [f"{c.name}={v}" for v in c.categories] + [f"{c.name}=<other>", f"{c.name}=<missing>"]
        return out

    def transform(self, table: Table) -> np.ndarray:
        """(rows, width) float32; missing numbers NaN in ordinal style."""
        return Encoder(self).transform(table)


class Encoder:
    """A TableEncoding made ready to transform many times (a served ensemble's members, call after call):
    its fills, category lookups and every output column's position built once, not per call. A call
    writes into one float32 matrix (no per-part arrays to concatenate): at batch 1 the encoding is most
    of a small student's time."""

    def __init__(self, encoding: TableEncoding):
        self.ordinal = encoding.style == "ordinal"
        self.width = encoding.width
        self.numeric = tuple(n.name for n in encoding.numeric)
        self.fills = np.array([n.fill for n in encoding.numeric])
        flags = [n.indicator for n in encoding.numeric]
        # onehot: a numeric column's position, then its missing-indicator's right after it (if it has one)
        self.value_at = np.cumsum([0] + [1 + f for f in flags[:-1]], dtype=np.int64)[:len(flags)]
        self.flagged = np.flatnonzero(flags)
        self.flag_at = self.value_at[self.flagged] + 1
        start = len(self.numeric) if self.ordinal else len(self.numeric) + len(self.flagged)
        # per categorical column: its name, value -> code, K (the code of any other value), first position
        self.lookups = []
        for c in encoding.categorical:
            self.lookups.append((c.name, {v: i for i, v in enumerate(c.categories)}, len(c.categories), start))
            start += 1 if self.ordinal else len(c.categories) + 2

    def transform(self, table: Table) -> np.ndarray:
        """(rows, width) float32; missing numbers NaN in ordinal style."""
        n = len(table)
        out = np.zeros((n, self.width), dtype=np.float32)
        if self.numeric:
            values = table.numbers(self.numeric)
            if self.ordinal:
                out[:, :len(self.numeric)] = values
            else:
                missing = np.isnan(values)
                out[:, self.value_at] = np.where(missing, self.fills, values)
                out[:, self.flag_at] = missing[:, self.flagged]
        rows = np.arange(n)
        for name, lookup, k, at in self.lookups:
            codes = _codes(table.column(name), lookup, k)  # 0..K-1, K other, -1 missing
            if self.ordinal:
                out[:, at] = np.where(codes < 0, np.nan, codes)
            else:
                out[rows, at + np.where(codes < 0, k + 1, codes)] = 1.0
        return out


def _codes(values: np.ndarray, lookup: dict[str, int], other: int) -> np.ndarray:
    """Each value's code in lookup; `other` for any other value; -1 for missing."""
    return np.fromiter((-1 if not isinstance(v, str) else lookup.get(v, other) for v in values),
                       dtype=np.int64, count=len(values))
