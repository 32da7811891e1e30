"""The HTTP API (FastAPI): v1 JSON routes, Open Inference Protocol v2 routes, OpenAPI at /docs.

`build_api(models, config)` takes the served models as objects with `name`, `aliases`,
`describe()`, `predict(x, votes)` and `ready()`, so the same routes serve models held in the
ingress process (one hop) and models behind their own deployments.
"""
from __future__ import annotations

import hmac
import json
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import oip
from serving.config import ServeConfig
from serving.schemas import ErrorResponse, ModelsResponse, PredictRequest, PredictResponse
from serving.validate import (InputError, check_content_length, check_content_type, decode_body, parse_json,
                              rows_matrix, shown, validate_object)

JSON_TYPES = ("application/json",)
INFER_TYPES = ("application/json", "application/octet-stream")


class ServedModel(Protocol):
    name: str
    aliases: list[str]

    async def describe(self) -> dict: ...

    async def predict(self, x: np.ndarray, votes: bool) -> dict: ...

    async def ready(self) -> bool: ...


def _json(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status,
                    media_type="application/json", headers=headers)


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


def build_api(models: list[ServedModel], config: ServeConfig) -> FastAPI:
    by_name: dict[str, ServedModel] = {}
    for m in models:
        by_name[m.name] = m
        for alias in m.aliases:
            by_name.setdefault(alias, m)

    app = FastAPI(title="raysemble", summary="Serves a raysemble ensemble and its student",
                  docs_url="/docs", redoc_url=None)
    errors = {"model": ErrorResponse}
    err_responses = {400: errors, 401: errors, 404: errors, 413: errors, 415: errors}

    @app.exception_handler(InputError)
    async def _input_error(request: Request, e: InputError):
        return _error(e, with_field=not request.url.path.startswith("/v2"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        return _json({"error": f"{request.method} {request.url.path}: {e.detail}"}, e.status_code)

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
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": PredictRequest.model_json_schema()}}}})
    async def predict(name: str, request: Request):
        check_token(request, config.token)
        model = lookup(name)
        check_content_type(request.headers.get("content-type"), JSON_TYPES)
        obj = parse_json(await read_body(request, config.max_body_bytes))
        req = validate_object(obj, PredictRequest, "'instances'")
        info = await model.describe()
        x = rows_matrix(req.instances, info["n_features"], config.max_instances)
        if req.return_votes and info["members"] < 2:
            raise InputError("return_votes", f"false for {model.name!r} (one member, no votes)", "true")
        out = await model.predict(x, req.return_votes)
        payload = {"predictions": out["labels"], "probabilities": out["probabilities"].tolist(),
                   "model": model.name, "version": out["version"]}
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

    @app.get("/v2/health/ready", tags=["v2"])
    async def ready():
        ok = all([await m.ready() for m in models])
        return _json({"ready": ok}, 200 if ok else 503)

    async def _metadata(name: str, version: str | None = None):
        model = lookup(name)
        info = await model.describe()
        if version is not None:
            pinned(model, version, info["version"])
        return _json(oip.model_metadata(model.name, info["version"], info["n_features"], len(info["classes"]),
                                        info["classes"], tuple(info["outputs"]), info["members"]))

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
        parsed = oip.parse_infer(body, header, info["n_features"], config.max_instances,
                                 tuple(info["outputs"]), ("probabilities", "predictions"))
        out = await model.predict(parsed.x, "votes" in parsed.outputs)
        labels = oip.label_datatype(info["classes"])
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

    app.get("/v2/models/{name}", tags=["v2"])(_metadata)
    app.get("/v2/models/{name}/versions/{version}", tags=["v2"])(_metadata)
    app.get("/v2/models/{name}/ready", tags=["v2"])(_model_ready)
    app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"])(_model_ready)
    infer_doc = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": oip.InferRequest.model_json_schema()}}}}
    app.post("/v2/models/{name}/infer", tags=["v2"], openapi_extra=infer_doc,
             response_model=oip.InferResponse)(_infer)
    app.post("/v2/models/{name}/versions/{version}/infer", tags=["v2"], openapi_extra=infer_doc,
             response_model=oip.InferResponse)(_infer)

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        return JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"}, 500)

    return app
