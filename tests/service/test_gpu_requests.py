"""GPU requests land on the process that trains: a simulated GPU node (Ray says GPU: 1, torch sees
no CUDA, as on this machine) shows where the request went and what happens without CUDA."""
from __future__ import annotations

import tempfile

import pytest

from service.progress import Silent
from service.spec import parse_spec
from service.sweep import run_sweep
from tests.conftest import tiny_spec


@pytest.fixture(scope="module")
def gpu_node():
    import ray
    import torch

    if torch.cuda.is_available():
        pytest.skip("a real GPU: this module simulates a GPU node without CUDA")
    temp = tempfile.mkdtemp(prefix="rg-", dir="/tmp")
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    yield ray
    ray.shutdown()


def _spec(name: str, **resources) -> dict:
    return tiny_spec(name, search={"algorithm": "random", "num_trials": 1, "max_failures": 0,
                                   "fixed": {"epochs": 1, "hidden": 16}},
                     resources={"executor": "in_trial", "gpus_per_worker": 1, **resources})


def test_in_trial_gpu_request_reserves_the_gpu_and_fails_naming_the_node_without_cuda(gpu_node, home):
    import json

    import ray

    sweep = run_sweep(parse_spec(_spec("nocuda")), Silent())
    (trial,) = sweep.trials
    assert trial.status == "ERROR"
    assert "resources.gpus_per_worker: CUDA in the training process expected, but node" in trial.error, trial.error
    assert ray.get_runtime_context().get_node_id() in trial.error
    attempts = [json.loads(line) for line in (sweep.dir / "attempts.jsonl").read_text().splitlines()]
    assert attempts and all(a["resources"].get("GPU") == 1.0 for a in attempts), attempts  # the trial held it


def test_cuda_missing_cpu_trains_on_cpu_holding_the_gpu(gpu_node, home):
    import json

    sweep = run_sweep(parse_spec(_spec("cpufallback", cuda_missing="cpu")), Silent())
    (trial,) = sweep.trials
    assert trial.status == "TERMINATED", trial.error
    attempts = [json.loads(line) for line in (sweep.dir / "attempts.jsonl").read_text().splitlines()]
    assert attempts and all(a["kind"] == "train" and a["resources"].get("GPU") == 1.0 for a in attempts), attempts


@pytest.mark.parametrize("cuda_missing", ["cpu", "error"])
def test_ray_train_trials_on_a_gpu_node_without_cuda_use_gloo_and_end(gpu_node, home, cuda_missing):
    """Ray Train would pick NCCL from the GPU reservation alone and fail in process-group set-up; the
    backend follows the workers' CUDA, so the trial trains on CPU (cuda_missing: cpu) or fails naming
    the node, and the sweep ends either way."""
    import json

    sweep = run_sweep(parse_spec(_spec(f"rt-{cuda_missing}", executor="ray_train", cuda_missing=cuda_missing)),
                      Silent())
    (trial,) = sweep.trials
    if cuda_missing == "cpu":
        assert trial.status == "TERMINATED", trial.error
        assert 0.0 < trial.mean_score <= 1.0
    else:
        assert trial.status == "ERROR"
        assert "resources.gpus_per_worker: CUDA in the training process expected" in trial.error, trial.error
        assert "NCCL" not in trial.error and "nccl" not in trial.error
    attempts = [json.loads(line) for line in (sweep.dir / "attempts.jsonl").read_text().splitlines()]
    assert attempts and [a["kind"] for a in attempts] == ["train", "worker"], attempts
    assert attempts[1]["resources"].get("GPU") == 1.0 and attempts[0]["resources"].get("GPU") is None  # the worker held it


def test_backend_is_nccl_only_when_every_worker_sees_cuda():
    from trainers.torch_backend import backend_for

    assert backend_for([True, True]) == "nccl"
    assert backend_for([True, False]) == "gloo"
    assert backend_for([False]) == "gloo"
