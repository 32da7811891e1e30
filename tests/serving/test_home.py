"""serving/home.py: where state lives, and a local store created once however many processes open it."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

from serving.home import LOCK_SUFFIX, SQLITE

REPO = Path(__file__).resolve().parents[2]

# each process imports everything first, then waits for the others: the stores are opened together
_PREPARE = """
import sys, time
from pathlib import Path
from serving.home import locations
import mlflow.store.tracking.sqlalchemy_store
Path(sys.argv[2]).touch()
while not Path(sys.argv[3]).exists():
    time.sleep(0.005)
locations(mlflow_uri=sys.argv[1], home=sys.argv[4]).prepare()
"""


def test_processes_preparing_one_fresh_store_together_all_succeed_and_create_it_once(tmp_path):
    uri, go, n = f"{SQLITE}{tmp_path}/store/mlflow.db", tmp_path / "go", 4
    procs = [subprocess.Popen([sys.executable, "-c", _PREPARE, uri, str(tmp_path / f"ready{i}"), str(go),
                               str(tmp_path / "home")], cwd=REPO, stderr=subprocess.PIPE, text=True)
             for i in range(n)]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{i}").exists() for i in range(n)) and time.monotonic() < deadline:
            time.sleep(0.05)
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * n, [e[-2000:] for e in errors]
    assert (tmp_path / "store" / f"mlflow.db{LOCK_SUFFIX}").exists()
    # one store, migrated: the default experiment exists and a registry call works on it
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert client.search_registered_models() == []

