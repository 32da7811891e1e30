"""Shared fixtures: one real local Ray per test module, a temp raysemble home per test."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a test Ray is local and private; tests opt in to tokens
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

import torch  # noqa: E402

# in-process training in tests: two intra-op threads on two shared cores only fight (each step ~100x
# slower under load); trial processes set their own thread count
torch.set_num_threads(1)


def tiny_spec(name: str, **sections) -> dict:
    """A spec small enough for a 2-core machine; sections override whole keys."""
    spec = {
        "name": name,
        "data": {"source": "sklearn:digits", "image_shape": [1, 8, 8], "test_fraction": 0.2},
        "cv": {"folds": 3, "seed": 0},
        "search": {"algorithm": "random", "num_trials": 2, "max_concurrent": 2,
                   "space": {"lr": {"loguniform": [0.002, 0.01]}}, "fixed": {"epochs": 3, "hidden": 32}},
    }
    for key, value in sections.items():
        spec[key] = value
    return spec


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """RAYSEMBLE_HOME and the MLflow store inside a temp dir."""
    monkeypatch.setenv("RAYSEMBLE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


@pytest.fixture(scope="module")
def ray_session():
    import ray

    # short temp dir: Ray's socket paths must stay under the UNIX socket length limit
    temp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
