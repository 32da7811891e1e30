"""Input checks for the HTTP routes, as pure functions.

Every check raises InputError, whose message reads "<field>: <what must hold>, but got <what>",
and whose status is the HTTP status the route answers with (400, 413 or 415).
"""
from __future__ import annotations

import json
import re
import zlib
from typing import Any, Iterable

import numpy as np
from pydantic import ValidationError


FLOAT32_MAX = float(np.finfo(np.float32).max)


class InputError(ValueError):
    """A request the server refuses; never a server fault."""

    def __init__(self, field: str, expected: str, got: str, status: int = 400):
        self.field, self.expected, self.got, self.status = field, expected, got, status
        super().__init__(f"{field}: {expected} expected, but got {got}")

    @property
    def message(self) -> str:
        return str(self)


class NonFiniteOutput(ValueError):
    """A response about to carry NaN or Infinity: a server fault (the output checks should have refused
    the rows), answered as a clear 500 rather than invalid JSON. The message holds no request data."""


def shown(value: Any, limit: int = 60) -> str:
    """A short repr for error messages: the start of long inputs only; JSON's names for non-finite numbers."""
    if isinstance(value, float) and not np.isfinite(value):
        return "NaN" if np.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_content_type(value: str | None, accepted: Iterable[str], allow_missing: bool = True) -> None:
    """The media type (parameters such as charset ignored) must be one of `accepted`."""
    accepted = tuple(accepted)
    if not value:
        if allow_missing:
            return
        raise InputError("Content-Type", " or ".join(accepted), "no Content-Type header", 415)
    media = value.split(";", 1)[0].strip().lower()
    if media not in accepted:
        raise InputError("Content-Type", " or ".join(accepted), shown(value), 415)


# at most 20 ASCII digits: str.isdigit() also takes '²' or Arabic-Indic digits, on which int() fails or
# which no client sends, and a 5000-digit value would make int() raise (a 500) before any size check
_DECIMAL = re.compile(r"[0-9]{1,20}")


def header_integer(value: str, field: str) -> int:
    """A non-negative decimal header value (Content-Length, Inference-Header-Content-Length)."""
    text = value.strip(" \t")
    if not _DECIMAL.fullmatch(text):
        raise InputError(field, "a non-negative integer (at most 20 digits 0-9, no sign)", shown(value))
    return int(text)


def check_content_length(value: str | None, max_body_bytes: int) -> int | None:
    """The declared body size, checked before the body is read."""
    if value is None:
        return None
    size = header_integer(value, "Content-Length")
    if size > max_body_bytes:
        raise InputError("body", f"at most {max_body_bytes} bytes (max_body_bytes)", f"{size} bytes", 413)
    return size


def decode_body(body: bytes, encoding: str | None, max_body_bytes: int) -> bytes:
    """Undo Content-Encoding gzip/deflate (tritonclient can compress requests), bounded in size."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise InputError("Content-Encoding", "identity, gzip or deflate", shown(encoding), 415)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_body_bytes + 1)
    except zlib.error as e:
        raise InputError("body", f"{encoding}-compressed data", f"undecodable data ({e})") from None
    if len(out) > max_body_bytes or inflater.unconsumed_tail:
        raise InputError("body", f"at most {max_body_bytes} bytes once decompressed (max_body_bytes)",
                         "more", 413)
    return out


def parse_json(body: bytes | str, field: str = "body") -> Any:
    """JSON text -> Python value. NaN/Infinity literals parse here and are refused by the schemas."""
    if not body:
        raise InputError(field, "a JSON object", "an empty body")
    try:
        return json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)  # RFC 8259: UTF-8
    except UnicodeDecodeError as e:
        raise InputError(field, "UTF-8 JSON text", f"undecodable bytes ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InputError(field, "valid JSON", f"a syntax error at line {e.lineno} column {e.colno}: {e.msg}") from None
    except ValueError as e:  # an integer literal of more than 4300 digits
        raise InputError(field, "valid JSON with numbers of at most 4300 digits", str(e).split(":")[0]) from None
    except RecursionError:
        raise InputError(field, "JSON nested at most ~1000 levels deep", "deeper nesting") from None


def field_path(loc: Iterable[Any], prefix: str = "") -> str:
    """('instances', 0, 3) -> 'instances[0][3]'."""
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


_EXPECTED = {
    "float_type": "a number", "int_type": "an integer", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "dict_type": "a JSON object",
    "model_type": "a JSON object", "finite_number": "a finite number", "missing": "this field",
    "extra_forbidden": "no such field", "too_short": "a longer list", "too_long": "a shorter list",
    "int_parsing": "an integer", "float_parsing": "a number", "greater_than_equal": "a larger value",
    "literal_error": "one of the allowed values", "int_from_float": "an integer",
}


def from_validation_error(error: ValidationError, prefix: str = "") -> InputError:
    """The first pydantic error, reworded as one InputError naming its field."""
    first = error.errors(include_url=False)[0]
    where = field_path(first["loc"], prefix)
    kind = first["type"]
    if kind == "missing":
        return InputError(where, "a value for this required field", "nothing")
    if kind == "extra_forbidden":
        return InputError(where, "only the documented fields", f"an unknown field {where!r}")
    expected = _EXPECTED.get(kind, first["msg"].removeprefix("Input should be ").lower())
    if kind == "float_type" and isinstance(first["input"], int) and not isinstance(first["input"], bool):
        expected = "a number within float range"  # an integer too large for a float
    if kind in ("too_short", "too_long", "literal_error", "greater_than_equal"):
        expected = first["msg"].removeprefix("Input should be ").removeprefix("Input should have ")
    return InputError(where, expected, shown(first["input"]))


def validate_object(obj: Any, schema: type, expected: str):
    """A parsed JSON body as `schema` (a pydantic model): not an object, or not valid, is an InputError."""
    if not isinstance(obj, dict):
        raise InputError("body", f"a JSON object with {expected}", f"a JSON {type(obj).__name__}")
    try:
        return schema.model_validate(obj)
    except ValidationError as e:
        raise from_validation_error(e) from None


def check_batch(n_rows: int, max_instances: int, field: str) -> None:
    if n_rows < 1:
        raise InputError(field, "at least 1 row", "0 rows (an empty batch)")
    if n_rows > max_instances:
        raise InputError(field, f"at most {max_instances} rows (max_instances)", f"{n_rows} rows")


def rows_matrix(rows: list[list[float]], n_features: int, max_instances: int, field: str = "instances") -> np.ndarray:
    """Schema-checked rows (finite numbers, no bools or strings) -> (rows, n_features) float32."""
    check_batch(len(rows), max_instances, field)
    for i, row in enumerate(rows):
        if len(row) != n_features:
            raise InputError(f"{field}[{i}]", f"{n_features} features", f"{len(row)}")
    return as_float32(np.asarray(rows, dtype=np.float64), field, flat=False)


def check_shape(shape: list[int], n_features: int, max_instances: int, field: str) -> tuple[int, int]:
    """A declared tensor shape must be [rows, n_features]."""
    if len(shape) != 2:
        raise InputError(field, f"a 2-d shape [rows, {n_features}]", shown(shape))
    if shape[1] != n_features:
        raise InputError(field, f"[rows, {n_features}]", shown(shape))
    check_batch(shape[0], max_instances, field)
    return shape[0], shape[1]


def as_float32(x: np.ndarray, field: str, flat: bool = True) -> np.ndarray:
    """(rows, features) of any float type -> float32, what the models compute in. The first value that
    is not finite, or overflows float32 (1e300 is a fine float64), is named by its flat or [row][col] index."""
    with np.errstate(over="ignore"):  # an overflow is reported below, by index
        x32 = x.astype(np.float32, copy=False)
    # compared before the cast too: just past float32's max rounds down to it instead of to inf
    fits = np.isfinite(x32) & (np.abs(x) <= FLOAT32_MAX)
    if fits.all():
        return x32
    k = int(np.flatnonzero(~fits)[0])
    value = float(x.reshape(-1)[k])
    where = f"{field}[{k}]" if flat else f"{field}[{k // x.shape[1]}][{k % x.shape[1]}]"
    if np.isfinite(value):
        raise InputError(where, f"a number within float32 range (|x| <= {FLOAT32_MAX!r})", shown(value))
    raise InputError(where, "a finite number", shown(value))


def check_finite_outputs(bad_rows: list[int], field: str, n_rows: int, indexed: bool = True) -> None:
    """Rows whose model outputs are not finite (features so large they overflow the network) are
    refused, naming them: JSON cannot carry NaN, and a NaN probability is no answer. indexed: the
    field names rows (instances[3]); else the rows are listed after it (a tensor, inputs[0])."""
    if not bad_rows:
        return
    listed = ", ".join(map(str, bad_rows[:10])) + (", ..." if len(bad_rows) > 10 else "")
    where = f"{field}[{bad_rows[0]}]" if indexed else field
    raise InputError(where, "finite model outputs", f"NaN for {len(bad_rows)} of {n_rows} rows (rows {listed}: "
                     "features this large overflow the model)")


def check_output_values(per_row: dict[str, int], limit: int, field: str) -> None:
    """The response may hold at most `limit` values per input row (max_output_values_per_row):
    `per_row` maps each output asked for to its values per row (classes, 1, members)."""
    total = sum(per_row.values())
    if total > limit:
        parts = " + ".join(f"{n} {name}" for name, n in per_row.items())
        raise InputError(field, f"at most {limit} output values per row (max_output_values_per_row)",
                         f"{total} ({parts})")
