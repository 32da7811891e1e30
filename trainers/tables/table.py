"""Table: the rows of a user's table as they are (numeric columns as floats with NaN for a missing
value, categorical columns as strings with NaN), in the order of its column schema. What the data
loaders produce for CSV / Parquet sources and serving builds from records; the families read it only
through a fitted TableEncoding (trainers.tables.encoding)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from trainers.tables.schema import ColumnSchema, TableError


class Table:
    """A pandas DataFrame of the schema's feature columns, indexed by position like an array's rows."""

    def __init__(self, frame: pd.DataFrame, schema: ColumnSchema):
        self.frame = frame.reset_index(drop=True)
        self.schema = schema
        # columns as arrays, read once: an ensemble's members encode the same rows one after another
        # (a Table is never changed in place: its rows are selected into new Tables)
        self._arrays: dict = {}

    def __getstate__(self) -> dict:
        return {"frame": self.frame, "schema": self.schema}  # the arrays are remade where it is unpickled

    def __setstate__(self, state: dict) -> None:
        self.frame, self.schema, self._arrays = state["frame"], state["schema"], {}

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def shape(self) -> tuple[int, int]:
        return self.frame.shape

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def __getitem__(self, rows) -> "Table":
        """The rows at these positions (an index array, a boolean mask, a slice or a list)."""
        return Table(self.frame.iloc[rows], self.schema)

    def __repr__(self) -> str:
        return f"Table({len(self)} rows, columns {self.columns[:8]}{'...' if self.shape[1] > 8 else ''})"

    @classmethod
    def concat(cls, parts: Sequence["Table"]) -> "Table":
        return cls(pd.concat([p.frame for p in parts], ignore_index=True), parts[0].schema)

    def column(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = self.frame[name].to_numpy()
        return self._arrays[name]

    def numbers(self, names: tuple[str, ...]) -> np.ndarray:
        """(rows, len(names)) float64 of numeric columns."""
        if names not in self._arrays:
            # column by column: selecting a sub-frame first costs ~0.1 ms a call, most of a batch-1 encoding
            self._arrays[names] = np.column_stack([self.frame[n].to_numpy(dtype=np.float64) for n in names]) \
                if names else np.zeros((len(self.frame), 0))
        return self._arrays[names]


def is_table(x) -> bool:
    return isinstance(x, Table)


def as_table(x, schema: ColumnSchema) -> Table:
    """Rows for a model of this schema: a Table as it is, a pandas DataFrame or records (a list of
    {column: value} dicts; a missing key or None is a missing value) through the schema. Columns the
    schema does not know are ignored here: serving refuses them earlier, naming them."""
    if isinstance(x, Table):
        return x
    if isinstance(x, pd.DataFrame):
        frame = x
    elif isinstance(x, (list, tuple)) and all(isinstance(r, dict) for r in x):
        frame = pd.DataFrame.from_records(list(x), columns=schema.source_columns())
    else:
        raise TableError(f"rows of a table (records of columns {schema.source_columns()[:10]}) expected, but got "
                         f"{type(x).__name__}")
    return Table(schema.apply(frame), schema)
