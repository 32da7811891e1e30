"""Where raysemble keeps its state: the one resolver every command, job and serving replica calls.

    RAYSEMBLE_HOME        the home directory (default ./.raysemble, made absolute at resolution)
    MLFLOW_TRACKING_URI   the MLflow store (default: SQLite under the home); a spec's
                          tracking.mlflow_uri wins over it for that sweep
    MLFLOW_REGISTRY_URI   the model registry (default: the tracking store)
    tune storage          <home>/tune unless a spec's tracking.storage_path names one

It sits in serving/, the lowest layer that needs it (a replica resolves models:/ URIs), so that
service/ and serving/ share it without an upward import. A process that starts another one (a Ray
Serve replica, a Ray Job) hands over `Locations.env()`, and the child resolves the same answer.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HOME_VAR = "RAYSEMBLE_HOME"
# the two defaults, one place: a command uses ./.raysemble of the directory it runs in (a project's
# sweeps beside the project); a Ray Job runs in a throwaway working directory that Ray deletes after
# the job, so on the cluster the default is the home directory of the user the cluster runs as
DEFAULT_HOME = ".raysemble"
CLUSTER_HOME = "~/.raysemble"
SQLITE = "sqlite:///"
LOCK_SUFFIX = ".lock"  # beside a SQLite store: held while the store's tables are created
_created: set[str] = set()  # SQLite stores this process has seen created (prepare() is called often)


def _absolute_sqlite(uri: str) -> str:
    """sqlite:///relative.db is relative to whatever directory opens it; pin it to this one."""
    if uri.startswith(SQLITE) and not uri.removeprefix(SQLITE).startswith("/"):
        return SQLITE + str(Path(uri.removeprefix(SQLITE)).resolve())
    return uri


@dataclass(frozen=True)
class Locations:
    home: Path  # RAYSEMBLE_HOME, absolute
    mlflow_uri: str  # tracking store
    registry_uri: str  # model registry
    tune_storage: str  # Ray Tune's storage_path (a directory, or any URI Ray accepts)

    @property
    def artifact_location(self) -> str | None:
        """Artifacts of new experiments in a SQLite store: beside the store, not ./mlruns of whatever
        directory runs the driver (a Ray Job's throwaway working dir, say). None: the store's default."""
        if not self.mlflow_uri.startswith(SQLITE):
            return None
        return (Path(self.mlflow_uri.removeprefix(SQLITE)).parent / "mlartifacts").resolve().as_uri()

    def prepare(self) -> "Locations":
        """Create a local store (directories, tables) before MLflow opens it."""
        for uri in {self.mlflow_uri, self.registry_uri}:
            if uri.startswith(SQLITE):
                _create_sqlite_store(uri)
        return self

    @contextmanager
    def active(self) -> Iterator["Locations"]:
        """MLflow's fluent API (log_model, registration) reads process-wide URIs: point them here for
        the block only, so a caller's own settings are back afterwards."""
        from mlflow.tracking._model_registry import utils as registry
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        names = ("MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_URI")
        # MLflow's own restore unsets MLFLOW_TRACKING_URI when its fluent URI was unset, even if the
        # user's environment set it: put the environment back as it was
        saved, env = registry._registry_uri, {n: os.environ.get(n) for n in names}
        registry.set_registry_uri(self.registry_uri)
        try:
            with _use_tracking_uri(self.mlflow_uri):
                yield self
        finally:
            registry._registry_uri = saved
            for name, value in env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def env(self) -> dict[str, str]:
        """What a child process needs to resolve these same locations."""
        return {HOME_VAR: str(self.home), "MLFLOW_TRACKING_URI": self.mlflow_uri,
                "MLFLOW_REGISTRY_URI": self.registry_uri}

    def known_stores(self) -> list[str]:
        """Local MLflow stores under the home: its SQLite files, one level down at most."""
        if not self.home.is_dir():
            return []
        return sorted(SQLITE + str(p) for pattern in ("*.db", "*/*.db") for p in self.home.glob(pattern))


def _create_sqlite_store(uri: str) -> None:
    """MLflow creates a missing store's tables when it first opens it, unguarded: two sweeps submitted
    together to a fresh cluster both ran its migrations, and one failed ("table ... already exists").
    One process at a time creates it here, under a lock file beside the store (every process that shares
    the store sees it, wherever its temp dir is)."""
    if uri in _created:
        return
    path = Path(uri.removeprefix(SQLITE))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + LOCK_SUFFIX), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        from mlflow import MlflowClient

        # opening the tracking store creates and migrates every table, the registry's included
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    _created.add(uri)


def locations(mlflow_uri: str | None = None, storage_path: str | None = None,
              home: str | Path | None = None) -> Locations:
    """Resolve every place state lives. Arguments are a spec's or a command's explicit choices,
    which win over the environment; None means "the default for this process"."""
    root = Path(os.path.expanduser(str(home or os.environ.get(HOME_VAR) or DEFAULT_HOME))).resolve()
    tracking = _absolute_sqlite(mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE}{root}/mlflow.db")
    # a spec that names its own store keeps its registry there too
    registry = tracking if mlflow_uri else _absolute_sqlite(os.environ.get("MLFLOW_REGISTRY_URI") or tracking)
    tune = storage_path or str(root / "tune")
    if "://" not in tune:
        tune = str(Path(tune).expanduser().resolve())
    return Locations(root, tracking, registry, tune)
