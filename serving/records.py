"""A table model's input: records by column name (v1) or one named tensor per column (Open Inference
Protocol), checked against the model's columns before anything is built. A missing key, a JSON null
(and "" for a category) is a missing value; a category first seen here is the model's "unknown". Every
refusal is an InputError naming the field (instances[3].city, inputs[1].data), never echoing more than
the start of a value.

Columns are typed by the model's column schema (trainers.tables): "numeric" takes a JSON number;
"categorical" a string, a number or a boolean (read as its text); "datetime" an ISO 8601 string.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from serving.validate import FLOAT32_MAX, InputError, check_batch, shown
from trainers.tables import MAX_CELL_CHARS, ColumnSchema

# datatypes a column's OIP input may have: numbers for numeric columns, text for the others
NUMERIC_TYPES = {"FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "INT64": "<i8"}
TEXT_TYPE = "BYTES"


def inputs_of(schema: ColumnSchema) -> list[dict]:
    """The columns a record carries, in order: {"name", "kind"} (datetime sources before expansion)."""
    parts = {f"{src}.{p}" for src, ps in schema.datetimes.items() for p in ps}
    out = [{"name": c.name, "kind": c.kind} for c in schema.columns if c.name not in parts]
    return out + [{"name": src, "kind": "datetime"} for src in schema.datetimes]


def _cell(value: Any, kind: str, where: str):
    """One record value as the schema reads it; None for missing."""
    if value is None:
        return None
    if kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(where, "a number or null", shown(value))
        number = float(value) if not isinstance(value, int) or abs(value) < 2**1023 else math.inf
        if not math.isfinite(number):
            raise InputError(where, "a finite number or null", shown(value))
        if abs(number) > FLOAT32_MAX:  # the models compute in float32: past its range is infinity there
            raise InputError(where, f"a number within float32 range (|x| <= {FLOAT32_MAX!r}) or null", shown(value))
        return number
    if isinstance(value, str):
        if len(value) > MAX_CELL_CHARS:
            raise InputError(where, f"a string of at most {MAX_CELL_CHARS} characters", f"{len(value)} characters")
        return value
    if kind == "categorical" and isinstance(value, (bool, int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(where, "a finite number, a string, a boolean or null", shown(value))
        return value
    expected = "an ISO 8601 date string or null" if kind == "datetime" else "a string, a number, a boolean or null"
    raise InputError(where, expected, shown(value))


def records_frame(instances: list, inputs: list[dict], max_instances: int, field: str = "instances"):
    """JSON records -> a pandas DataFrame of the model's columns (None where missing)."""
    import pandas as pd

    check_batch(len(instances), max_instances, field)
    kinds = {c["name"]: c["kind"] for c in inputs}
    columns: dict[str, list] = {name: [None] * len(instances) for name in kinds}
    for i, record in enumerate(instances):
        if not isinstance(record, dict):
            raise InputError(f"{field}[{i}]", f"a JSON object of columns {list(kinds)[:10]}", shown(record))
        for key, value in record.items():
            if key not in kinds:
                raise InputError(f"{field}[{i}].{shown(key, 40)}", f"one of the model's columns {list(kinds)[:10]}"
                                 + ("..." if len(kinds) > 10 else ""), "an unknown column")
            columns[key][i] = _cell(value, kinds[key], f"{field}[{i}].{key}")
    return pd.DataFrame({name: pd.Series(values, dtype="object") for name, values in columns.items()})


def tensors_frame(tensors: list[tuple[str, str, list]], inputs: list[dict], rows: int):
    """OIP inputs (name, datatype, flat values: numbers, strings, None) -> a DataFrame of the model's
    columns; an input the request leaves out is a column of missing values."""
    import pandas as pd

    kinds = {c["name"]: c["kind"] for c in inputs}
    columns: dict[str, list] = {name: [None] * rows for name in kinds}
    for i, (name, datatype, values) in enumerate(tensors):
        kind = kinds[name]
        for r, value in enumerate(values):
            if isinstance(value, float) and math.isnan(value) and kind == "numeric":
                value = None  # NaN in a number tensor: missing (binary tensors have no null)
            columns[name][r] = _cell(value, kind, f"inputs[{i}].data[{r}]")
    return pd.DataFrame({name: pd.Series(values, dtype="object") for name, values in columns.items()})


def datatype_of(kind: str) -> str:
    """The OIP datatype a column of this kind is listed with in the model's metadata."""
    return "FP64" if kind == "numeric" else TEXT_TYPE


def decode_bytes(raw: bytes, rows: int, field: str) -> list[str]:
    """Triton's BYTES tensor: each element a 4-byte little-endian length, then that many UTF-8 bytes."""
    out, at = [], 0
    for r in range(rows):
        if at + 4 > len(raw):
            raise InputError(field, f"{rows} length-prefixed strings", f"{r} before the data ends")
        n = int.from_bytes(raw[at:at + 4], "little")
        at += 4
        if n > 4 * MAX_CELL_CHARS or at + n > len(raw):
            raise InputError(field, f"strings of at most {MAX_CELL_CHARS} characters within the data",
                             f"element {r} of {n} bytes")
        try:
            out.append(raw[at:at + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(field, "UTF-8 strings", f"undecodable bytes in element {r}") from None
        at += n
    if at != len(raw):
        raise InputError(field, f"exactly {rows} length-prefixed strings", f"{len(raw) - at} bytes more")
    return out


def decode_numbers(raw: bytes, rows: int, datatype: str, field: str) -> list[float]:
    dtype = np.dtype(NUMERIC_TYPES[datatype])
    if len(raw) != rows * dtype.itemsize:
        raise InputError(field, f"{rows * dtype.itemsize} bytes for {rows} values of {datatype}", f"{len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype).astype(np.float64).tolist()
