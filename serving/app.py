"""The Ray Serve application: an HTTP ingress (FastAPI) and the models behind it.

topology "single": one ingress deployment loads ensemble and student itself and batches each
(@serve.batch) in-process: the request crosses one hop, proxy -> ingress replica.
topology "split": the ingress forwards to a ModelDeployment per model (own replicas, autoscaling,
GPUs); one more hop per request.

Entry points: `serve_models(...)` (what `raysemble serve` calls), `build_app(args)` (an
application builder for Ray's `serve run serving.app:build_app ensemble=DIR` and `serve deploy`
config files, see examples/serve.yaml).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from ray import serve
from ray.serve.handle import DeploymentHandle

from serving.cluster import start_ray
from serving.config import ServeConfig
from serving.home import Locations, locations
from serving.loader import Source, parse_source
from serving.routes import build_api
from serving.runner import ModelRunner

logger = logging.getLogger(__name__)


class AppArgs(BaseModel):
    """Arguments of build_app: what `serve run serving.app:build_app ensemble=... student=...` passes."""

    model_config = ConfigDict(extra="forbid")

    ensemble: str  # a bundle directory or models:/NAME/VERSION
    student: str | None = None
    config: ServeConfig = ServeConfig()


def _runner(name: str, source: Source, cfg: ServeConfig) -> ModelRunner:
    return ModelRunner(name, source, cfg.max_batch_size, cfg.batch_wait_timeout_s, cfg.num_gpus)


class ModelDeployment:
    """One model in its own replicas (topology split)."""

    def __init__(self, name: str, source: str, config: dict):
        self.runner = _runner(name, parse_source(source), ServeConfig.model_validate(config))

    async def predict(self, x: np.ndarray, votes: bool) -> dict:
        return await self.runner.predict(x, votes)

    async def describe(self) -> dict:
        return await self.runner.describe()

    async def check_health(self) -> None:  # on the replica's loop, between batches
        self.runner.check()


class RemoteModel:
    """The routes' view of a ModelDeployment: one handle call per request."""

    def __init__(self, name: str, source: Source, handle: DeploymentHandle, ttl_s: float = 2.0):
        self.name, self.handle, self.ttl_s = name, handle, ttl_s
        self.aliases = [source.registered_name] if source.registered_name else []
        self._info: dict | None = None
        self._at = 0.0

    async def describe(self) -> dict:
        if self._info is None or time.monotonic() - self._at > self.ttl_s:
            self._info, self._at = await self.handle.describe.remote(), time.monotonic()
        return self._info

    async def predict(self, x: np.ndarray, votes: bool) -> dict:
        return await self.handle.predict.remote(x, votes)

    async def ready(self) -> bool:
        try:
            await self.describe()
            return True
        except Exception:
            return False


@serve.ingress()
class Ingress:
    def __init__(self, ensemble: str, student: str | None, config: dict, handles: dict | None = None):
        self.config = ServeConfig.model_validate(config)
        sources = {"ensemble": parse_source(ensemble)}
        if student is not None:
            sources["student"] = parse_source(student)
        if handles:
            self.models = [RemoteModel(n, sources[n], handles[n]) for n in sources]
            self.local = []
        else:
            self.local = [_runner(n, s, self.config) for n, s in sources.items()]
            self.models = self.local

    def __serve_build_asgi_app__(self):
        return build_api(self.models, self.config)

    async def check_health(self) -> None:  # on the replica's loop, between batches
        for runner in self.local:
            runner.check()


def _options(name: str, cfg: ServeConfig, num_gpus: float, env: dict[str, str]) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "name": name,
        "max_ongoing_requests": cfg.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": cfg.num_cpus, "num_gpus": num_gpus,
                              **({"runtime_env": {"env_vars": env}} if env else {})},
        "health_check_period_s": cfg.health_check_period_s,
        "health_check_timeout_s": cfg.health_check_timeout_s,
        "graceful_shutdown_timeout_s": cfg.graceful_shutdown_timeout_s,
    }
    if cfg.min_replicas == cfg.max_replicas:
        opts["num_replicas"] = cfg.min_replicas
    else:
        opts["autoscaling_config"] = {"min_replicas": cfg.min_replicas, "max_replicas": cfg.max_replicas,
                                      "target_ongoing_requests": cfg.target_ongoing_requests}
    return opts


def _registry_env(sources: list[Source]) -> dict[str, str]:
    """Replicas resolve models:/ URIs themselves (serving.home): hand them the driver's locations."""
    stores = [s.store for s in sources if s.registered_name]
    return stores[0].env() if stores else {}


def make_app(ensemble: str, student: str | None = None, config: ServeConfig | None = None,
             store: Locations | None = None):
    """The bound application (not yet running). store: where models:/ URIs are looked up
    (default: serving.home.locations() of this process; replicas inherit it)."""
    cfg = config or ServeConfig()
    store = store or locations()
    sources = [parse_source(ensemble, store)] + ([parse_source(student, store)] if student else [])
    env = _registry_env(sources)
    ingress = serve.deployment(Ingress)
    payload = cfg.model_dump()
    if cfg.topology == "single":
        return ingress.options(**_options("Ingress", cfg, cfg.num_gpus, env)).bind(ensemble, student, payload)
    model = serve.deployment(ModelDeployment)
    handles = {"ensemble": model.options(**_options("Ensemble", cfg, cfg.num_gpus, env))
               .bind("ensemble", ensemble, payload)}
    if student is not None:
        handles["student"] = model.options(**_options("Student", cfg, cfg.num_gpus, env)).bind(
            "student", student, payload)
    return ingress.options(**_options("Ingress", cfg, 0.0, env)).bind(ensemble, student, payload, handles)


def build_app(args: dict):
    """Application builder for Ray's CLI: `serve run serving.app:build_app ensemble=DIR [student=DIR]`."""
    parsed = AppArgs.model_validate(args)
    return make_app(parsed.ensemble, parsed.student, parsed.config)


def serve_config(ensemble: str, student: str | None = None, config: ServeConfig | None = None) -> dict:
    """A Ray Serve config (ServeDeploySchema) for `serve deploy FILE` / `serve run FILE`."""
    cfg = config or ServeConfig()
    args: dict[str, Any] = {"ensemble": ensemble, "config": cfg.model_dump(exclude_defaults=True)}
    if student is not None:
        args["student"] = student
    return {"proxy_location": "EveryNode", "http_options": {"host": cfg.host, "port": cfg.port},
            "applications": [{"name": cfg.app_name, "route_prefix": "/", "import_path": "serving.app:build_app",
                              "args": args}]}


def base_url(config: ServeConfig) -> str:
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
    return f"http://{host}:{config.port}"


def curl_example(url: str, n_features: int, token: str | None = None, inputs: list[dict] | None = None) -> str:
    """A curl line that gets an answer: a row of zeros, or a table model's record with every column
    null (missing values are what such a model must take anyway)."""
    import json
    import shlex

    row = {c["name"]: None for c in inputs} if inputs else [0.0] * n_features
    body = json.dumps({"instances": [row]}, separators=(", ", ": "))
    auth = f" -H 'Authorization: Bearer {token}'" if token else ""
    return (f"curl -s {url}/v1/models/ensemble/predict -H 'Content-Type: application/json'{auth} "
            f"-d {shlex.quote(body)}")


def curl_for(url: str, token: str | None = None, timeout_s: float = 30.0) -> str:
    """A working curl line for the served ensemble: waits until the app answers, reads its input width."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            models = httpx.get(f"{url}/v1/models", timeout=5).json()["models"]
            break
        except (httpx.HTTPError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    ensemble = next(m for m in models if m["name"] == "ensemble")
    return curl_example(url, ensemble["n_features"], token, ensemble.get("inputs"))


def serve_models(ensemble: str, student: str | None = None, config: ServeConfig | None = None,
                 blocking: bool = False, store: Locations | None = None) -> str:
    """Start (or update in place) the raysemble app on Ray Serve; returns the base URL.

    Connects to the Ray cluster named by RAY_ADDRESS, else starts a local one (see serving.cluster).
    Deploying again with the same app_name rolls the replicas over to the new models without
    dropping requests.
    With blocking=True, serves until Ctrl-C, then deletes the app.
    """
    cfg = config or ServeConfig()
    app = make_app(ensemble, student, cfg, store)  # checks the sources before anything starts
    started = start_ray(cfg)
    if (not started and cfg.ingress == "haproxy" and not os.environ.get("RAY_ADDRESS")
            and os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") != "1"):
        logger.warning("Ray was started without serving.cluster.ingress_env(config); serving through Ray's "
                       "Python proxy (slower). Apply that environment before Ray starts for the fast ingress.")
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    serve.run(app, name=cfg.app_name, route_prefix="/", blocking=False)
    url = base_url(cfg)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            serve.delete(cfg.app_name)
    return url
