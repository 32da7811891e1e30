"""The `raysemble` command: local sweeps (local.py), serving (serve.py), cluster jobs (cluster.py) and
the REST control plane (api.py), sharing one app, exit codes and printers (common.py)."""
from __future__ import annotations

import os

from service.cli import api as _api, cluster as _cluster, local as _local, serve as _serve  # noqa: F401 - registers
from service.cli.common import app


def main() -> None:
    # a terminal user reads our progress line and tables; MLflow's database set-up notes and
    # per-file download bars bury them (warnings and errors still show). Read when mlflow is imported.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    app()


__all__ = ["app", "main"]
