"""What the tests that submit sweeps to a local cluster share: the installed CLI run as a user runs it
(own RAYSEMBLE_HOME and MLflow store under the cluster's tmp dir), specs written there, polling."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from service import sweepdir
from tests.conftest import tiny_spec

RAYSEMBLE = str(Path(sys.executable).parent / "raysemble")


def cli(cluster, *args, timeout=300, **env) -> subprocess.CompletedProcess:
    full = cluster.client_env(RAYSEMBLE_HOME=str(cluster.tmp / "home"),
                              MLFLOW_TRACKING_URI=f"sqlite:///{cluster.tmp}/mlflow.db", **env)
    return subprocess.run([RAYSEMBLE, *args], env=full, capture_output=True, text=True, timeout=timeout,
                          cwd=cluster.tmp)


def last_json(proc: subprocess.CompletedProcess):
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_spec(cluster, name: str, **sections) -> Path:
    path = cluster.tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(name, **sections)))
    return path


def attempts_of(cluster, name: str) -> list[dict]:
    return sweepdir.SweepDir(cluster.tmp / "home" / "sweeps" / name).attempts()


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(what)


@contextlib.contextmanager
def started(cluster, tmp: Path, workers: int = 0):
    """The cluster's head (and `workers` extra nodes) up, `cluster.tmp` set; everything it started is
    stopped after, and nothing of it may be left running."""
    cluster.tmp = tmp
    try:
        cluster.start_head()
        cluster.workers = [cluster.add_worker() for _ in range(workers)]
        yield cluster
    finally:
        cluster.shutdown()
    assert cluster.leftovers() == []
