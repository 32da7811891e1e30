"""Serving options (the spec's `serve` section, and `raysemble serve --config`)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

MAX_REPLICAS = 1024


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # 0.0.0.0 to listen on every interface (then set a token)
    host: StrictStr = Field("127.0.0.1", min_length=1, max_length=255)
    port: int = Field(8000, ge=1, le=65535)
    # haproxy: Ray's bundled HAProxy on host:port in front of ingress replicas that serve HTTP
    # themselves (fewest hops); proxy: Ray's Python HTTP proxy. Applies when raysemble starts Ray.
    ingress: Literal["haproxy", "proxy"] = "haproxy"
    app_name: StrictStr = Field("raysemble", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # the Serve application
    # single: the HTTP ingress holds both models (one hop, fastest on a few cores);
    # split: ingress + one deployment per model (each scales and takes GPUs on its own)
    topology: Literal["single", "split"] = "single"
    max_batch_size: int = Field(32, ge=1, le=4096)  # @serve.batch: requests per forward pass
    # @serve.batch: how long a batch waits to fill; 0 = take what is queued (batches still form under load)
    batch_wait_timeout_s: float = Field(0.0, ge=0.0, le=1.0)
    min_replicas: int = Field(1, ge=0, le=MAX_REPLICAS)  # per deployment; min == max means a fixed replica count
    max_replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    target_ongoing_requests: float = Field(8.0, gt=0, le=100_000)  # autoscaling target per replica
    max_ongoing_requests: int = Field(64, ge=1, le=100_000)  # per replica; >= max_batch_size or batches never fill
    num_cpus: float = Field(0.5, ge=0, le=1024)  # per replica
    num_gpus: float = Field(0.0, ge=0, le=64)  # per model replica; > 0 runs the forward pass on CUDA
    max_instances: int = Field(1024, ge=1, le=1_000_000)  # rows per request
    # values one input row may add to a response (probabilities + prediction + per-member votes)
    max_output_values_per_row: int = Field(1024, ge=1, le=1_000_000)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=1 << 30)  # larger bodies get 413
    # bearer token for prediction routes; None = open (local use)
    token: StrictStr | None = Field(None, min_length=1, max_length=4096)
    health_check_period_s: float = Field(10.0, gt=0, le=3600)  # Serve runs a real prediction this often
    health_check_timeout_s: float = Field(30.0, gt=0, le=3600)
    graceful_shutdown_timeout_s: float = Field(20.0, ge=0, le=3600)  # an old replica finishes in-flight requests

    @model_validator(mode="after")
    def _consistent(self) -> "ServeConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas <= max_replicas must hold, but got {self.min_replicas} > "
                             f"{self.max_replicas}")
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(f"max_ongoing_requests >= max_batch_size must hold (or batches never fill), but got "
                             f"{self.max_ongoing_requests} < {self.max_batch_size}")
        return self
