"""Open Inference Protocol (KServe v2) over REST: request parsing and response encoding.

Supports Triton's binary tensor data extension, which tritonclient.http uses by default: the body
is a JSON header of `Inference-Header-Content-Length` bytes followed by the raw little-endian,
row-major tensors of every input that carries a `binary_data_size` parameter, in input order.
Outputs come back as binary when the request asks for it (`binary_data` on an output, or
`binary_data_output` on the request), as JSON otherwise.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from serving.validate import (FLOAT32_MAX, InputError, NonFiniteOutput, as_float32, check_batch, check_shape,
                              from_validation_error, header_integer, parse_json, shown, validate_object)

HEADER_LENGTH = "inference-header-content-length"
INPUT_NAME = "input"
DATATYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
BINARY_DATATYPES = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8"}
# the request id is echoed in the response: bounded, so a response stays proportional to its rows
MAX_REQUEST_ID_CHARS = 256

_Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
_FLAT = TypeAdapter(list[_Number])
_NESTED = TypeAdapter(list[list[_Number]])


class _Tensor(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class InferInput(_Tensor):
    name: str
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferRequestedOutput(_Tensor):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(_Tensor):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[InferRequestedOutput] | None = None


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class InferOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[InferOutput]


@dataclass
class ParsedInfer:
    x: Any  # (rows, n_features) float32, what the models compute in; a table model's: a DataFrame of columns
    datatype: str  # of the input (FP32 or FP64), also the datatype of the probabilities sent back
    outputs: list[str]  # names, in the order asked for
    binary: list[bool]  # per output: send as binary?
    request_id: str | None


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON part, binary part) of an infer body."""
    if header_length is None:
        return body, b""
    n = header_integer(header_length, "Inference-Header-Content-Length")
    if n > len(body):
        raise InputError("Inference-Header-Content-Length", f"at most the body size ({len(body)} bytes)", str(n))
    return body[:n], body[n:]


def _flag(params: dict | None, key: str, where: str) -> bool:
    value = (params or {}).get(key, False)
    if not isinstance(value, bool):
        raise InputError(f"{where}.parameters.{key}", "true or false", shown(value))
    return value


def _json_tensor(data: list, rows: int, cols: int, field: str) -> np.ndarray:
    try:
        if data and isinstance(data[0], list):
            values = [v for row in _NESTED.validate_python(data) for v in row]
        else:
            values = _FLAT.validate_python(data)
    except ValidationError as e:
        raise from_validation_error(e, field) from None
    if len(values) != rows * cols:
        raise InputError(field, f"{rows * cols} values for shape [{rows}, {cols}]", f"{len(values)} values")
    return as_float32(np.asarray(values, dtype=np.float64).reshape(rows, cols), field)


def _binary_tensor(raw: bytes, rows: int, cols: int, dtype: np.dtype, field: str) -> np.ndarray:
    need = rows * cols * dtype.itemsize
    if len(raw) != need:
        raise InputError(field, f"{need} bytes for shape [{rows}, {cols}] of {dtype.name}", f"{len(raw)} bytes")
    return as_float32(np.frombuffer(raw, dtype=dtype).reshape(rows, cols), field)


def _request(body: bytes, header_length: str | None) -> tuple[InferRequest, bytes]:
    """The request's JSON part, checked, and the binary tensors after it."""
    head, binary = split_body(body, header_length)
    try:
        obj = parse_json(head)
    except InputError as e:
        if header_length is None:  # binary tensors sent without their framing header
            raise InputError(e.field, "JSON (or a JSON header of Inference-Header-Content-Length bytes "
                             "followed by binary tensors)", e.got) from None
        raise
    req = validate_object(obj, InferRequest, "'inputs'")
    if req.id is not None and len(req.id) > MAX_REQUEST_ID_CHARS:
        raise InputError("id", f"at most {MAX_REQUEST_ID_CHARS} characters (MAX_REQUEST_ID_CHARS)",
                         f"{len(req.id)} characters")
    return req, binary


def parse_infer(body: bytes, header_length: str | None, n_features: int, max_instances: int,
                available_outputs: tuple[str, ...], default_outputs: tuple[str, ...]) -> ParsedInfer:
    """A v2 infer body (JSON, or JSON + binary tensors) -> the input matrix and the outputs to send."""
    req, binary = _request(body, header_length)
    if len(req.inputs) != 1:
        raise InputError("inputs", f"exactly 1 input tensor named {INPUT_NAME!r}", f"{len(req.inputs)}")
    inp, field = req.inputs[0], "inputs[0]"
    if inp.name != INPUT_NAME:
        raise InputError(f"{field}.name", repr(INPUT_NAME), shown(inp.name))
    if inp.datatype not in DATATYPES:
        raise InputError(f"{field}.datatype", " or ".join(DATATYPES), shown(inp.datatype))
    rows, cols = check_shape(inp.shape, n_features, max_instances, f"{field}.shape")
    size = (inp.parameters or {}).get("binary_data_size")
    dtype = DATATYPES[inp.datatype]
    if size is not None:
        if inp.data is not None:
            raise InputError(f"{field}", "either data or parameters.binary_data_size", "both")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InputError(f"{field}.parameters.binary_data_size", "a non-negative integer", shown(size))
        if header_length is None:
            raise InputError("Inference-Header-Content-Length", "the header when binary_data_size is used",
                             "no header")
        if size != len(binary):
            raise InputError(f"{field}.parameters.binary_data_size",
                             f"the size of the binary data after the JSON header ({len(binary)} bytes)", str(size))
        x = _binary_tensor(binary, rows, cols, dtype, f"{field} binary data")
    else:
        if inp.data is None:
            raise InputError(f"{field}.data", "a list of numbers (or parameters.binary_data_size)", "nothing")
        if binary:
            raise InputError("body", "no bytes after the JSON header unless an input has binary_data_size",
                             f"{len(binary)} extra bytes")
        x = _json_tensor(inp.data, rows, cols, f"{field}.data")
    names, flags = _outputs(req, available_outputs, default_outputs)
    return ParsedInfer(x=x, datatype=inp.datatype, outputs=names, binary=flags, request_id=req.id)


def parse_infer_table(body: bytes, header_length: str | None, inputs: list[dict], max_instances: int,
                      available_outputs: tuple[str, ...], default_outputs: tuple[str, ...]) -> ParsedInfer:
    """A table model's v2 infer body: one input per column, named as the column (as tritonclient sends a
    multi-input model), shape [rows] or [rows, 1]; numbers (FP32/FP64/INT32/INT64) for numeric columns,
    BYTES for the others, JSON or binary. A column left out is missing in every row."""
    from serving.records import NUMERIC_TYPES, TEXT_TYPE, decode_bytes, decode_numbers, tensors_frame

    req, binary = _request(body, header_length)
    kinds = {c["name"]: c["kind"] for c in inputs}
    rows_seen, tensors, offset = None, [], 0
    for i, inp in enumerate(req.inputs):
        field = f"inputs[{i}]"
        if inp.name not in kinds:
            raise InputError(f"{field}.name", f"one of the model's columns {list(kinds)[:10]}"
                             + ("..." if len(kinds) > 10 else ""), shown(inp.name))
        if inp.name in [t[0] for t in tensors]:
            raise InputError(f"{field}.name", "each column at most once", f"{inp.name!r} again")
        allowed = list(NUMERIC_TYPES) if kinds[inp.name] == "numeric" else [TEXT_TYPE]
        if inp.datatype not in allowed:
            raise InputError(f"{field}.datatype", " or ".join(allowed) + f" for column {inp.name!r}",
                             shown(inp.datatype))
        if len(inp.shape) not in (1, 2) or (len(inp.shape) == 2 and inp.shape[1] != 1):
            raise InputError(f"{field}.shape", "[rows] or [rows, 1]", shown(inp.shape))
        rows = inp.shape[0]
        check_batch(rows, max_instances, f"{field}.shape")
        if rows_seen is not None and rows != rows_seen:
            raise InputError(f"{field}.shape", f"{rows_seen} rows like inputs[0]", f"{rows}")
        rows_seen = rows
        size = (inp.parameters or {}).get("binary_data_size")
        if size is not None:
            if inp.data is not None:
                raise InputError(field, "either data or parameters.binary_data_size", "both")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise InputError(f"{field}.parameters.binary_data_size",
                                 f"a size within the binary data left after the JSON header "
                                 f"({len(binary) - offset} bytes)", shown(size))
            if header_length is None:
                raise InputError("Inference-Header-Content-Length", "the header when binary_data_size is used",
                                 "no header")
            raw = binary[offset:offset + size]
            offset += size
            values = (decode_bytes(raw, rows, f"{field} binary data") if inp.datatype == TEXT_TYPE
                      else decode_numbers(raw, rows, inp.datatype, f"{field} binary data"))
        else:
            if inp.data is None:
                raise InputError(f"{field}.data", "a list of values (or parameters.binary_data_size)", "nothing")
            values = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in inp.data]
            if len(values) != rows:
                raise InputError(f"{field}.data", f"{rows} values for shape {inp.shape}", f"{len(values)} values")
        tensors.append((inp.name, inp.datatype, values))
    if offset != len(binary):
        raise InputError("body", "no bytes after the binary tensors the inputs declare",
                         f"{len(binary) - offset} extra bytes")
    frame = tensors_frame(tensors, inputs, rows_seen)
    names, flags = _outputs(req, available_outputs, default_outputs)
    return ParsedInfer(x=frame, datatype="FP32", outputs=names, binary=flags, request_id=req.id)


def _outputs(req: InferRequest, available_outputs: tuple[str, ...],
             default_outputs: tuple[str, ...]) -> tuple[list[str], list[bool]]:
    """The outputs to send, in the order asked for, and whether each goes as binary."""
    all_binary = _flag(req.parameters, "binary_data_output", "request")
    if req.outputs is None:
        names, flags = list(default_outputs), [all_binary] * len(default_outputs)
    else:
        names, flags = [], []
        for i, out in enumerate(req.outputs):
            if out.name not in available_outputs:
                raise InputError(f"outputs[{i}].name", f"one of {list(available_outputs)}", shown(out.name))
            if out.name in names:  # a repeated output would send the same tensor again: one per name
                raise InputError(f"outputs[{i}].name", "each output named at most once",
                                 f"{out.name!r} again (also outputs[{names.index(out.name)}])")
            names.append(out.name)
            has = out.parameters is not None and "binary_data" in out.parameters
            flags.append(_flag(out.parameters, "binary_data", f"outputs[{i}]") if has else all_binary)
    return names, flags


def _bytes_tensor(values: list[str]) -> bytes:
    parts = []
    for v in values:
        b = str(v).encode()
        parts.append(struct.pack("<I", len(b)) + b)
    return b"".join(parts)


def label_datatype(classes: list, task: str = "classification") -> str:
    """The datatype of `predictions` (and `votes`): a regression target's values are FP64; labels are
    INT64 when every one is an integer (checked within int64 where the data loads), else BYTES."""
    if task == "regression":
        return "FP64"
    return "INT64" if all(isinstance(c, int) and not isinstance(c, bool) for c in classes) else "BYTES"


def encode_response(model_name: str, version: str, request_id: str | None,
                    tensors: list[tuple[str, str, np.ndarray | list]], binary: list[bool]) -> tuple[bytes, int | None]:
    """Outputs (name, datatype, values) -> (body, JSON header length or None when all JSON)."""
    outputs, chunks = [], []
    for (name, datatype, values), as_binary in zip(tensors, binary):
        arr = np.asarray(values) if datatype != "BYTES" else np.asarray(values, dtype=object)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if datatype != "BYTES" and not np.isfinite(arr).all():
            # callers refuse non-finite rows first; binary floats would carry NaN where JSON cannot
            raise NonFiniteOutput(f"output {name!r}: finite values must hold, but got NaN or Infinity")
        if as_binary:
            raw = (_bytes_tensor([str(v) for v in arr.reshape(-1)]) if datatype == "BYTES"
                   else np.ascontiguousarray(arr, dtype=BINARY_DATATYPES[datatype]).tobytes())
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            flat = arr.reshape(-1)
            entry["data"] = ([str(v) for v in flat] if datatype == "BYTES"
                             else flat.astype(BINARY_DATATYPES[datatype]).tolist())
        outputs.append(entry)
    head: dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": outputs}
    if request_id is not None:
        head["id"] = request_id
    try:
        text = json.dumps(head, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise NonFiniteOutput("response: finite values must hold (JSON has no NaN or Infinity), but got one") from None
    if not chunks:
        return text, None
    return text + b"".join(chunks), len(text)


OUTPUT_NAMES = ("probabilities", "predictions", "votes")


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def infer_request_schema(max_instances: int, width: int | None = None, columns: list[dict] | None = None) -> dict:
    """The JSON schema (self-contained, for OpenAPI) of what parse_infer accepts: InferRequest's fields,
    narrowed to one input named 'input' of shape [1..max_instances, width], FP32/FP64 within float32
    range, the known outputs. columns: a table model's, one input each (parse_infer_table)."""
    if columns:
        return _table_request_schema(max_instances, columns)
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    row = {"type": "array", "items": number}
    columns: dict = {"type": "integer", "minimum": 0}
    if width is not None:
        row.update(minItems=width, maxItems=width)
        columns = {"type": "integer", "enum": [width]}
    tensor_in = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
        "name": {"type": "string", "enum": [INPUT_NAME]},
        "shape": {"type": "array", "prefixItems": [{"type": "integer", "minimum": 1, "maximum": max_instances},
                                                   columns],
                  "minItems": 2, "maxItems": 2, "description": "[rows, n_features]"},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "parameters": _nullable({"type": "object", "properties": {
            "binary_data_size": {"type": "integer", "minimum": 0,
                                 "description": "bytes of this tensor after the JSON header (binary extension)"}}}),
        "data": _nullable({"type": "array", "items": {"anyOf": [number, row]},
                           "description": "row-major values, flat or one list per row"}),
    }}
    tensor_out = {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "enum": list(OUTPUT_NAMES), "description": "each at most once"},
        "parameters": _nullable({"type": "object", "properties": {"binary_data": {"type": "boolean"}}}),
    }}
    return {"type": "object", "required": ["inputs"], "properties": {
        "id": _nullable({"type": "string", "maxLength": MAX_REQUEST_ID_CHARS}),
        "parameters": _nullable({"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}}),
        "inputs": {"type": "array", "items": tensor_in, "minItems": 1, "maxItems": 1},
        "outputs": _nullable({"type": "array", "items": tensor_out, "maxItems": len(OUTPUT_NAMES)}),
    }}


def _table_request_schema(max_instances: int, columns: list[dict]) -> dict:
    from serving.records import NUMERIC_TYPES, TEXT_TYPE

    tensors = []
    for c in columns:
        numeric = c["kind"] == "numeric"
        value = {"type": ["number", "null"]} if numeric else {"type": ["string", "null"]}
        tensors.append({"type": "object", "required": ["name", "shape", "datatype"], "properties": {
            "name": {"type": "string", "enum": [c["name"]]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": max_instances},
                      "minItems": 1, "maxItems": 1, "description": "[rows]"},
            "datatype": {"type": "string", "enum": list(NUMERIC_TYPES) if numeric else [TEXT_TYPE]},
            "data": {"type": "array", "items": value}}})
    return {"type": "object", "required": ["inputs"], "properties": {
        "id": _nullable({"type": "string", "maxLength": MAX_REQUEST_ID_CHARS}),
        "inputs": {"type": "array", "items": {"anyOf": tensors}, "minItems": 1, "maxItems": len(columns)},
        "outputs": _nullable({"type": "array", "maxItems": len(OUTPUT_NAMES), "items": {
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "enum": list(OUTPUT_NAMES)}}}}),
    }}


def model_metadata(name: str, version: str, n_features: int, n_classes: int, classes: list,
                   outputs: tuple[str, ...], members: int, inputs: list[dict] | None = None,
                   task: str = "classification") -> dict:
    """inputs: a table model's columns ({"name", "kind"}), each its own input; None: one matrix input.
    A regression model's outputs are predictions (FP64) and votes (each member's value), no probabilities."""
    from serving.records import datatype_of

    labels = label_datatype(classes, task)
    shapes = {"probabilities": ("FP32", [-1, n_classes]), "predictions": (labels, [-1]),
              "votes": (labels, [-1, members])}
    tensors = ([TensorMetadata(name=c["name"], datatype=datatype_of(c["kind"]), shape=[-1]) for c in inputs]
               if inputs else [TensorMetadata(name=INPUT_NAME, datatype="FP32", shape=[-1, n_features])])
    return ModelMetadata(
        name=name, versions=[version], platform="raysemble_pytorch",
        inputs=tensors,
        outputs=[TensorMetadata(name=o, datatype=shapes[o][0], shape=shapes[o][1]) for o in outputs],
    ).model_dump()
