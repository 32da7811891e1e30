"""The REST control plane: `raysemble api`, a FastAPI app in front of Ray Jobs.

    POST   /sweeps               spec as JSON, or YAML (Content-Type application/yaml | text/yaml) -> 202 {"id"}
    GET    /sweeps               every raysemble sweep on the cluster
    GET    /sweeps/{id}          state, trials done/total, best so far, MLflow run, registered models
    GET    /sweeps/{id}/trials   every trial with its score, attempts and the nodes it ran on
    DELETE /sweeps/{id}          cancel (202)
    POST   /sweeps/{id}/resume   continue a cancelled or failed sweep as a new job (202)
    POST   /sweeps/{id}/deploy   serve the sweep's registered models (202 {"id": deploy job})
    GET    /healthz              no auth
    GET    /openapi.json         this API's OpenAPI document (no auth; it holds no secrets)

Every route but /healthz and /openapi.json needs `Authorization: Bearer <token>` (401 otherwise; compared in constant
time). The API keeps no state: sweeps are Ray Jobs (their metadata names the sweep) and their
progress is read from the sweep directories and MLflow, so a restarted API sees everything.
Specs are validated here (service.spec's one parse path with the server's Policy: tracking set by the server, the operator's Budget, serve
fields that open the service refused unless allowed, model.factory refused unless its module is under
an operator's --allow-factory prefix) before anything is submitted: an invalid spec is a 422 listing
"field.path: message" lines and launches nothing. An allowed factory module is not shipped with the
job: it must be importable on the cluster (installed there by the operator).
A body is parsed and checked in service.gate's few worker processes, never on the event loop, its data
from a sample (the first rows' features, every row's label, files opened inside the data roots with no
link followed: trainers.data.files); more checks than the gate holds get a 503 with Retry-After, a
check past its time limit a 422. The job that runs the sweep opens its data inside the same roots.
Errors are JSON {"error": ..., "problems": [...]}; user input never causes a 5xx. A cluster that
does not answer is a 503.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.home import locations
from service import cluster, gate
from service.spec import Budget, Policy, SpecError, SweepSpec, parse_spec, read_spec

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
JSON_TYPES = ("application/json",)


@dataclass
class Settings:
    address: str
    token: str
    data_roots: list[Path] = field(default_factory=list)
    home: str = ""  # RAYSEMBLE_HOME of every submitted job (a path on this, the head, node)
    mlflow_uri: str = ""
    storage_path: str | None = None
    max_body_bytes: int = 1024 * 1024
    job_command: str = "run"  # what a submitted sweep's job runs: run (the whole pipeline) | sweep
    budget: Budget = field(default_factory=Budget)  # what one sweep may ask of the cluster
    allow_serve_fields: bool = False  # may a spec set serve.host, .token, .port, replicas, GPUs...?
    factory_prefixes: tuple[str, ...] = ()  # modules model.factory may name (--allow-factory); none: no user code
    # spec checks (service.gate): at once, waiting, seconds each; the data's first rows checked (the job
    # loads it all)
    check_workers: int = gate.DEFAULT_WORKERS
    check_queue: int = gate.DEFAULT_QUEUE
    check_timeout_s: float = gate.DEFAULT_TIMEOUT_S
    sample_rows: int = 1000

    @classmethod
    def build(cls, *, address: str, token: str, data_roots=(), home: str | None = None, mlflow_uri: str | None = None,
              storage_path: str | None = None, max_body_bytes: int = 1024 * 1024,
              job_command: str = "run", budget: Budget | None = None, allow_serve_fields: bool = False,
              factory_prefixes=()) -> "Settings":
        where = locations(mlflow_uri, home=home)
        return cls(address, token, [Path(r).expanduser().resolve() for r in data_roots], str(where.home),
                   where.mlflow_uri, storage_path, max_body_bytes, job_command, budget or Budget(),
                   allow_serve_fields, tuple(factory_prefixes))

    def policy(self) -> Policy:
        return Policy(data_roots=self.data_roots, tracking="server", mlflow_uri=self.mlflow_uri,
                      storage_path=self.storage_path, budget=self.budget, sample_rows=self.sample_rows,
                      allow_serve_fields=self.allow_serve_fields,
                      # never None (Policy's "any module"): over HTTP only the operator's prefixes run
                      factory_prefixes=tuple(self.factory_prefixes or ()))


class ErrorBody(BaseModel):
    """Every error: what went wrong, and for a spec one "field.path: message" line per problem."""

    model_config = ConfigDict(extra="forbid")

    error: str
    problems: list[str] | None = None


class Submitted(BaseModel):
    id: str
    name: str
    command: str


def _errors(*codes: int) -> dict:
    words = {400: "unreadable body or header", 401: "missing or wrong bearer token",
             404: "no such sweep", 409: "a sweep of that name exists, or the sweep's state forbids it",
             413: "body larger than the server's limit", 415: "Content-Type not JSON or YAML",
             422: "invalid spec or request: one problem per line", 502: "the Ray cluster failed the request",
             503: "the Ray cluster does not answer, or every spec check is busy (Retry-After)"}
    return {code: {"model": ErrorBody, "description": words[code]} for code in codes}


_CLUSTER = (401, 502, 503)
_SPEC_BODY = {"$ref": "#/components/schemas/SweepSpec"}
_POST_SWEEPS = {"requestBody": {"required": True, "description": "a sweep spec (see SweepSpec), JSON or YAML",
                                "content": {t: {"schema": _SPEC_BODY} for t in JSON_TYPES + YAML_TYPES}}}


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document plus what it cannot see: the raw spec body (read by hand, so JSON and
    YAML share one path) and the bearer scheme (checked by hand, in constant time)."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes, description=__doc__)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        spec_schema = SweepSpec.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(spec_schema.pop("$defs", {}))
        schemas["SweepSpec"] = spec_schema
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, ops in doc["paths"].items():
            for op in ops.values():
                if path != "/healthz":
                    op["security"] = [{"bearer": []}]
        app.openapi_schema = doc
    return app.openapi_schema


class ApiError(Exception):
    def __init__(self, status: int, message: str, problems: list[str] | None = None, headers: dict | None = None):
        self.status, self.message, self.problems, self.headers = status, message, problems, headers
        super().__init__(message)


def _error_response(status: int, message: str, problems: list[str] | None = None, headers=None) -> JSONResponse:
    body = {"error": message}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, status_code=status, headers=headers)


_STATUS = {cluster.UnknownSweep: 404, cluster.Conflict: 409, cluster.Unauthorized: 502, cluster.ClusterError: 502,
           cluster.Unreachable: 503}


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="raysemble control plane", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    app.openapi = lambda: _openapi(app)
    expected = settings.token.encode()
    checks = gate.Gate(settings.check_workers, settings.check_queue, settings.check_timeout_s)
    app.router.on_shutdown.append(checks.close)
    clients: dict[str, object] = {}

    def client():
        if "c" not in clients:
            clients["c"] = cluster.connect(settings.address)
        return clients["c"]

    def call(fn, *args):
        """A jobs call on the cluster; a lost connection drops the cached client so the next call redials."""
        try:
            return fn(client(), *args)
        except (cluster.Unreachable, cluster.Unauthorized):
            clients.pop("c", None)
            raise

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return _error_response(e.status, e.message, e.problems, e.headers)

    @app.exception_handler(cluster.JobsError)
    async def _jobs_error(request: Request, e: cluster.JobsError):
        return _error_response(_STATUS.get(type(e), 400), str(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        return _error_response(e.status_code, str(e.detail), headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in x['loc'])}: {x['msg']}" for x in e.errors()]
        return _error_response(422, "invalid request", problems)

    def require_token(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)
        if not ok:
            raise ApiError(401, "a valid bearer token expected (Authorization: Bearer <token>)",
                           headers={"WWW-Authenticate": "Bearer"})

    @app.get("/healthz", responses={200: {"description": "the API answers"}})
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    api = APIRouter(dependencies=[Depends(require_token)])

    @api.post("/sweeps", status_code=202, response_model=Submitted, openapi_extra=_POST_SWEEPS,
              responses={202: {"description": "submitted; Location names the sweep"},
                         **_errors(400, 409, 413, 415, 422, *_CLUSTER)})
    async def create_sweep(request: Request):
        text, kind = await _read_body(request, settings.max_body_bytes)
        try:
            spec = await checks.run(_check_body, text, kind, settings.policy())
        except gate.Busy:
            raise ApiError(503, "busy checking other specs: retry later",
                           headers={"Retry-After": str(gate.RETRY_AFTER_S)}) from None
        except (gate.TooSlow, gate.WorkerLost) as e:
            raise ApiError(422, "invalid spec", [f"<spec>: {e}"]) from None
        except _Unreadable as e:
            raise ApiError(400, "unreadable body", e.problems) from None
        except SpecError as e:
            raise ApiError(422, "invalid spec", e.problems) from None
        result = await run_in_threadpool(
            lambda: call(lambda c: cluster.submit(c, spec, home=settings.home, mlflow_uri=settings.mlflow_uri,
                                               command=settings.job_command, home_is_local=True,
                                               data_roots=settings.data_roots)))
        return JSONResponse({"id": result["id"], "name": result["name"], "command": result["command"]},
                            status_code=202, headers={"Location": f"/sweeps/{result['id']}"})

    @api.get("/sweeps", responses=_errors(*_CLUSTER))
    def list_sweeps() -> dict[str, list[dict]]:
        return {"sweeps": call(cluster.list_sweeps)}

    @api.get("/sweeps/{sweep_id}", responses=_errors(404, 422, *_CLUSTER))
    def get_sweep(sweep_id: str) -> dict:
        return call(cluster.status, sweep_id)

    @api.get("/sweeps/{sweep_id}/trials", responses=_errors(404, 422, *_CLUSTER))
    def get_trials(sweep_id: str) -> dict:
        return call(cluster.sweep_trials, sweep_id)

    @api.delete("/sweeps/{sweep_id}", status_code=202, responses={202: {"description": "cancelled, or had ended"},
                                                                   **_errors(404, 422, *_CLUSTER)})
    def cancel_sweep(sweep_id: str) -> dict:
        return JSONResponse(call(cluster.cancel, sweep_id), status_code=202)

    @api.post("/sweeps/{sweep_id}/resume", status_code=202,
              responses={202: {"description": "resume job submitted"}, **_errors(404, 409, 422, *_CLUSTER)})
    def resume_sweep(sweep_id: str) -> dict:
        return JSONResponse(call(cluster.resume, sweep_id), status_code=202)

    @api.post("/sweeps/{sweep_id}/deploy", status_code=202,
              responses={202: {"description": "deploy job submitted"}, **_errors(404, 409, 422, *_CLUSTER)})
    def deploy_sweep(sweep_id: str) -> dict:
        return JSONResponse(call(cluster.deploy, sweep_id), status_code=202)

    app.include_router(api)
    return app


class _Unreadable(SpecError):
    """A body that is no spec text at all (400, not 422)."""


def _check_body(text: str, kind: str, policy: Policy) -> SweepSpec:
    """On a gate worker: the body's text read (YAML can be slow) and checked by the one parse path."""
    try:
        raw = read_spec(text, "<body>", kind, untrusted=True)
    except SpecError as e:
        raise _Unreadable(e.problems) from None
    return parse_spec(raw, None, policy)


async def _read_body(request: Request, limit: int) -> tuple[str, str]:
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit()) or len(length) > 18:
            raise ApiError(400, "Content-Length: a byte count expected")
        if int(length) > limit:
            raise ApiError(413, f"a body of at most {limit} bytes expected, but got {length}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"a body of at most {limit} bytes expected, but got more")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype in YAML_TYPES:
        kind = "yaml"
    elif ctype in JSON_TYPES or ctype.endswith("+json"):
        kind = "json"
    else:
        raise ApiError(415, f"Content-Type: one of {list(JSON_TYPES + YAML_TYPES)} expected, but got {ctype!r}")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "body: UTF-8 text expected") from None
    if not text.strip():
        raise ApiError(400, "body: a sweep spec expected, but the body is empty")
    return text, kind


def serve_api(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
