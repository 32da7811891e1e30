"""The HTTP API (FastAPI): v1 JSON routes, Open Inference Protocol v2 routes, OpenAPI at /docs.

`build_api(models, config)` takes the served models as objects with `name`, `aliases`,
`describe()`, `predict(x, votes)` and `ready()`, so the same routes serve models held in the
ingress process (one hop) and models behind their own deployments.

Every response is strict JSON (or Triton binary tensors): rows whose model outputs are not finite
are refused with a 400 naming them, and the encoder refuses NaN/Infinity (a clear 500) should any
other path produce one. A response holds at most ServeConfig.max_output_values_per_row values per input row.
"""
from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import oip
from serving.config import ServeConfig
from serving.records import records_frame
from serving.schemas import ErrorResponse, ModelsResponse, PredictRequest, PredictResponse, RecordsRequest
from serving.validate import (FLOAT32_MAX, InputError, NonFiniteOutput, check_content_length, check_content_type,
                              check_finite_outputs, check_output_values, decode_body, parse_json, rows_matrix, shown,
                              validate_object)

logger = logging.getLogger(__name__)

JSON_TYPES = ("application/json",)
INFER_TYPES = ("application/json", "application/octet-stream")
# A response holds at most config.max_output_values_per_row values per input row (probabilities +
# prediction + votes), so its size is a fixed multiple of the request's rows (<= max_instances): return_votes / a votes output on
# an ensemble of many members is refused (400) past it. Outputs are named at most once, the request id
# is at most oip.MAX_REQUEST_ID_CHARS; model name, version and labels come from the operator's bundle.


class ServedModel(Protocol):
    name: str
    aliases: list[str]

    async def describe(self) -> dict: ...

    async def predict(self, x: np.ndarray, votes: bool) -> dict: ...  # see ModelRunner.predict

    async def ready(self) -> bool: ...


def _json(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    # allow_nan=False: a NaN that got past the output checks is a clear server error, never a bare NaN token
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise NonFiniteOutput("response: finite values must hold (JSON has no NaN or Infinity), but got one") from None
    return Response(text, status_code=status, media_type="application/json", headers=headers)


def _error(e: InputError, with_field: bool = True) -> Response:
    """v1 errors name the field separately; Open Inference Protocol errors are {"error": "..."} only."""
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    return _json({"error": e.message, "field": e.field} if with_field else {"error": e.message}, e.status, headers)


async def read_body(request: Request, max_body_bytes: int) -> bytes:
    """The whole body, refused (413) once the declared or the streamed size passes the limit."""
    check_content_length(request.headers.get("content-length"), max_body_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            raise InputError("body", f"at most {max_body_bytes} bytes (max_body_bytes)",
                             f"more than {max_body_bytes} bytes", 413)
        chunks.append(chunk)
    body = b"".join(chunks)
    return decode_body(body, request.headers.get("content-encoding"), max_body_bytes)


def check_token(request: Request, token: str | None) -> None:
    if not token:
        return
    got = request.headers.get("authorization", "")
    scheme, _, value = got.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise InputError("Authorization", "'Bearer <token>' with the configured token",
                         "no Authorization header" if not got else "another credential", 401)


def _input_width(models: list[ServedModel]) -> int | None:
    """The features per row, when every model states it (held in this process) and they agree; else
    None (models behind their own deployments answer only through describe())."""
    widths = {getattr(m, "n_features", None) for m in models}
    return widths.pop() if len(widths) == 1 and None not in widths else None


def _input_columns(models: list[ServedModel]) -> list[dict] | None:
    """A table model's columns, when every served model is one of the same columns; else None."""
    found = {json.dumps(getattr(m, "inputs", None)) for m in models}
    return json.loads(found.pop()) if len(found) == 1 else None


_JSON_TYPES = {"numeric": ["number", "null"], "categorical": ["string", "number", "boolean", "null"],
               "datetime": ["string", "null"]}


def _records_doc(config: ServeConfig, columns: list[dict]) -> dict:
    """RecordsRequest's schema narrowed to the served table's columns and 1..max_instances records."""
    schema = RecordsRequest.model_json_schema()
    record = {"type": "object", "additionalProperties": False,
              "properties": {c["name"]: {"type": _JSON_TYPES[c["kind"]]} for c in columns}}
    schema["properties"]["instances"].update(minItems=1, maxItems=config.max_instances, items=record)
    schema["examples"] = [{"instances": [{c["name"]: None for c in columns}], "return_votes": False}]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _predict_doc(config: ServeConfig, width: int | None, columns: list[dict] | None = None) -> dict:
    """PredictRequest's schema with what the route also checks: 1..max_instances rows of float32 numbers,
    `width` of them per row when known (a table model's: records of its columns)."""
    if columns:
        return _records_doc(config, columns)
    schema = PredictRequest.model_json_schema()
    schema["properties"]["instances"].update(minItems=1, maxItems=config.max_instances)
    row = schema["properties"]["instances"]["items"]
    row["items"].update(minimum=-FLOAT32_MAX, maximum=FLOAT32_MAX)
    if width is not None:
        row.update(minItems=width, maxItems=width)
        schema["examples"] = [{"instances": [[0.0] * width], "return_votes": False}]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _infer_doc(config: ServeConfig, width: int | None, columns: list[dict] | None = None) -> dict:
    """JSON, or (Triton's binary extension) a JSON header of Inference-Header-Content-Length bytes
    followed by the raw tensors: both bodies and the header are documented, so a fuzzer sends them."""
    return {
        "parameters": [{"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                        "description": "bytes of JSON header before binary tensors (binary extension)",
                        "schema": {"type": "integer", "minimum": 0}}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": oip.infer_request_schema(config.max_instances, width, columns)},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    }


def build_api(models: list[ServedModel], config: ServeConfig) -> FastAPI:
    max_output_values_per_row = config.max_output_values_per_row
    by_name: dict[str, ServedModel] = {}
    for m in models:
        by_name[m.name] = m
        for alias in m.aliases:
            by_name.setdefault(alias, m)

    width, columns = _input_width(models), _input_columns(models)
    app = FastAPI(title="raysemble", summary="Serves a raysemble ensemble and its student",
                  docs_url="/docs", redoc_url=None)
    errors = {"model": ErrorResponse}
    err_responses = {400: errors, 401: errors, 404: errors, 413: errors, 415: errors}
    infer_responses = {**err_responses, 200: {"content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}, "description": "JSON, or binary outputs after a "
        "JSON header of Inference-Header-Content-Length bytes"}}
    not_found, not_ready = {404: errors}, {503: {"description": "not ready"}}

    @app.exception_handler(InputError)
    async def _input_error(request: Request, e: InputError):
        return _error(e, with_field=not request.url.path.startswith("/v2"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        path = request.url.path  # echoed, bounded: an error is never much larger than its fixed text
        path = path if len(path) <= 200 else path[:197] + "..."
        return _json({"error": f"{request.method} {path}: {e.detail}"}, e.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError):
        first = e.errors()[0]
        return _json({"error": f"{'.'.join(map(str, first['loc']))}: {first['msg']}"}, 400)

    def lookup(name: str) -> ServedModel:
        model = by_name.get(name)
        if model is None:
            raise InputError("model", f"one of {sorted(by_name)}", shown(name), 404)
        return model

    def pinned(model: ServedModel, version: str, current: str) -> None:
        if version != current:
            raise InputError("version", f"the served version {current!r} of {model.name!r}", shown(version), 404)

    # ---- v1 ----------------------------------------------------------------------------------

    @app.get("/v1/models", response_model=ModelsResponse, tags=["v1"])
    async def list_models():
        return _json({"models": [await m.describe() for m in models]})

    @app.post("/v1/models/{name}/predict", response_model=PredictResponse, tags=["v1"], responses=err_responses,
              openapi_extra=_predict_doc(config, width, columns))
    async def predict(name: str, request: Request):
        check_token(request, config.token)
        model = lookup(name)
        check_content_type(request.headers.get("content-type"), JSON_TYPES)
        obj = parse_json(await read_body(request, config.max_body_bytes))
        info = await model.describe()
        if info.get("inputs"):  # a table model: records by column name
            req = validate_object(obj, RecordsRequest, "'instances' (records)")
            x = records_frame(req.instances, info["inputs"], config.max_instances)
        else:
            req = validate_object(obj, PredictRequest, "'instances'")
            x = rows_matrix(req.instances, info["n_features"], config.max_instances)
        if req.return_votes and info["members"] < 2:
            raise InputError("return_votes", f"false for {model.name!r} (one member, no votes)", "true")
        regression = info.get("task") == "regression"
        per_row = {"predictions": 1} if regression else {"probabilities": len(info["classes"]), "predictions": 1}
        if req.return_votes:
            per_row["votes"] = info["members"]
        check_output_values(per_row, max_output_values_per_row, "return_votes" if req.return_votes else "model")
        out = await model.predict(x, req.return_votes)
        check_finite_outputs(out["bad_rows"], "instances", len(x))
        payload = {"predictions": out["labels"], "model": model.name, "version": out["version"]}
        if not regression:
            payload["probabilities"] = out["probabilities"].tolist()
        if req.return_votes:
            payload["votes"] = out["votes"]
        return _json(payload)

    # ---- v2 (Open Inference Protocol) ----------------------------------------------------------

    @app.get("/v2", tags=["v2"])
    async def server_metadata():
        return _json({"name": "raysemble", "version": "1", "extensions": ["binary_tensor_data"]})

    @app.get("/v2/health/live", tags=["v2"])
    async def live():
        return _json({"live": True})

    @app.get("/v2/health/ready", tags=["v2"], responses=not_ready)
    async def ready():
        ok = all([await m.ready() for m in models])
        return _json({"ready": ok}, 200 if ok else 503)

    async def _metadata(name: str, version: str | None = None):
        model = lookup(name)
        info = await model.describe()
        if version is not None:
            pinned(model, version, info["version"])
        return _json(oip.model_metadata(model.name, info["version"], info["n_features"], len(info["classes"]),
                                        info["classes"], tuple(info["outputs"]), info["members"], info.get("inputs"),
                                        info.get("task", "classification")))

    async def _model_ready(name: str, version: str | None = None):
        model = lookup(name)
        if version is not None:
            pinned(model, version, (await model.describe())["version"])
        ok = await model.ready()
        return _json({"name": model.name, "ready": ok}, 200 if ok else 503)

    async def _infer(name: str, request: Request, version: str | None = None):
        check_token(request, config.token)
        model = lookup(name)
        info = await model.describe()
        if version is not None:
            pinned(model, version, info["version"])
        header = request.headers.get(oip.HEADER_LENGTH)
        check_content_type(request.headers.get("content-type"), INFER_TYPES if header is not None else JSON_TYPES)
        body = await read_body(request, config.max_body_bytes)
        task = info.get("task", "classification")
        defaults = tuple(o for o in ("probabilities", "predictions") if o in info["outputs"])
        if info.get("inputs"):
            parsed = oip.parse_infer_table(body, header, info["inputs"], config.max_instances,
                                           tuple(info["outputs"]), defaults)
        else:
            parsed = oip.parse_infer(body, header, info["n_features"], config.max_instances,
                                     tuple(info["outputs"]), defaults)
        widths = {"probabilities": len(info["classes"]), "predictions": 1, "votes": info["members"]}
        check_output_values({n: widths[n] for n in parsed.outputs}, max_output_values_per_row, "outputs")
        out = await model.predict(parsed.x, "votes" in parsed.outputs)
        check_finite_outputs(out["bad_rows"], "inputs[0]", len(parsed.x), indexed=False)
        labels = oip.label_datatype(info["classes"], task)
        proba_type = parsed.datatype
        values = {"probabilities": (proba_type, out["probabilities"]),
                  "predictions": (labels, out["labels"]),
                  "votes": (labels, out["votes"])}
        body, head_len = oip.encode_response(model.name, out["version"], parsed.request_id,
                                             [(n, *values[n]) for n in parsed.outputs], parsed.binary)
        if head_len is None:
            return Response(body, media_type="application/json")
        return Response(body, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(head_len)})

    meta = {"response_model": oip.ModelMetadata, "responses": not_found}
    app.get("/v2/models/{name}", tags=["v2"], **meta)(_metadata)
    app.get("/v2/models/{name}/versions/{version}", tags=["v2"], **meta)(_metadata)
    app.get("/v2/models/{name}/ready", tags=["v2"], responses={**not_found, **not_ready})(_model_ready)
    app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"],
            responses={**not_found, **not_ready})(_model_ready)
    infer = {"tags": ["v2"], "openapi_extra": _infer_doc(config, width, columns), "response_model": oip.InferResponse,
             "responses": infer_responses}
    app.post("/v2/models/{name}/infer", **infer)(_infer)
    app.post("/v2/models/{name}/versions/{version}/infer", **infer)(_infer)

    def openapi() -> dict:
        """FastAPI's document, with the served model names as the values of {name}: a client (or a
        fuzzer) learns which names exist; any other name is a 404."""
        doc = FastAPI.openapi(app)
        for item in doc["paths"].values():
            for operation in item.values():
                for param in operation.get("parameters", []):
                    if param["in"] == "path" and param["name"] == "name" and by_name:
                        param["schema"]["enum"] = sorted(by_name)
        return doc

    app.openapi = openapi

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        # the message may hold server paths or model internals: the log has it, the client the type only
        logger.error("%s %s failed", request.method, request.url.path, exc_info=e)
        if isinstance(e, NonFiniteOutput):
            return JSONResponse({"error": f"internal error: {e}"}, 500)
        return JSONResponse({"error": f"internal error: {type(e).__name__} (details in the server log)"}, 500)

    return app
