"""Serving options (the spec's `serve` section, and `raysemble serve --config`)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"  # 0.0.0.0 to listen on every interface (then set a token)
    port: int = Field(8000, ge=1, le=65535)
    # haproxy: Ray's bundled HAProxy on host:port in front of ingress replicas that serve HTTP
    # themselves (fewest hops); proxy: Ray's Python HTTP proxy. Applies when raysemble starts Ray.
    ingress: Literal["haproxy", "proxy"] = "haproxy"
    app_name: str = Field("raysemble", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # the Serve application
    # single: the HTTP ingress holds both models (one hop, fastest on a few cores);
    # split: ingress + one deployment per model (each scales and takes GPUs on its own)
    topology: Literal["single", "split"] = "single"
    max_batch_size: int = Field(32, ge=1, le=4096)  # @serve.batch: requests per forward pass
    # @serve.batch: how long a batch waits to fill; 0 = take what is queued (batches still form under load)
    batch_wait_timeout_s: float = Field(0.0, ge=0.0, le=1.0)
    min_replicas: int = Field(1, ge=0)  # per deployment; min == max means a fixed replica count
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(8.0, gt=0)  # autoscaling target per replica
    max_ongoing_requests: int = Field(64, ge=1)  # per replica; >= max_batch_size or batches never fill
    num_cpus: float = Field(0.5, ge=0)  # per replica
    num_gpus: float = Field(0.0, ge=0)  # per model replica; > 0 runs the forward pass on CUDA
    max_instances: int = Field(1024, ge=1)  # rows per request
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)  # larger bodies get 413
    token: str | None = None  # bearer token for prediction routes; None = open (local use)
    health_check_period_s: float = Field(10.0, gt=0)  # Serve runs a real prediction this often
    health_check_timeout_s: float = Field(30.0, gt=0)
    graceful_shutdown_timeout_s: float = Field(20.0, ge=0)  # an old replica finishes in-flight requests

    @model_validator(mode="after")
    def _consistent(self) -> "ServeConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas <= max_replicas must hold, but got {self.min_replicas} > "
                             f"{self.max_replicas}")
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(f"max_ongoing_requests >= max_batch_size must hold (or batches never fill), but got "
                             f"{self.max_ongoing_requests} < {self.max_batch_size}")
        return self
