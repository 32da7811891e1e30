"""Serving options (the spec's `serve` section, and `raysemble serve --config`)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_batch_size: int = Field(32, ge=1, le=4096)  # @serve.batch
    batch_wait_timeout_s: float = Field(0.002, ge=0.0, le=1.0)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(8.0, gt=0)
    max_ongoing_requests: int = Field(64, ge=1)
    num_cpus: float = Field(0.5, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    max_instances: int = Field(1024, ge=1)  # rows per request
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)  # larger bodies get 413
    token: str | None = None  # bearer token for prediction routes; None = open (local use)
