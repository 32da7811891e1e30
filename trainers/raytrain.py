"""Running an in-process training function as a one-worker Ray Train (TorchTrainer) run.

Refits and distillation are one model each, so one worker; the point of going through Ray
Train is placement (a GPU node of the cluster, CPUs reserved beside other work) and Ray's
failure handling, not data parallelism. The function runs unchanged inside the worker, so the
in-process path and the Ray path train exactly the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def _entry(config: dict) -> Any:
    import ray

    # the payload travels through the object store, not the pickled config (Ray's advice for data)
    return config["fn"](ray.get(config["payload"]))


def run_on_ray_train(fn: Callable[[dict], Any], payload: dict, *, name: str, storage_path: str | Path | None = None,
                     cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0) -> Any:
    """fn(payload) on one Ray Train worker; returns what fn returned (rank 0's return value).

    `fn` must be a module-level function (pickled by reference). Needs a running Ray session.
    """
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        raise RuntimeError("a running Ray session (ray.init) must hold, but got none")
    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker > 0 else {})}
    from trainers.torch_backend import CudaAwareTorchConfig

    trainer = TorchTrainer(
        _entry,
        torch_config=CudaAwareTorchConfig(),
        train_loop_config={"fn": fn, "payload": ray.put(payload)},
        scaling_config=ScalingConfig(num_workers=1, use_gpu=gpus_per_worker > 0, resources_per_worker=resources),
        run_config=RunConfig(name=name, storage_path=_storage(storage_path)),
    )
    return trainer.fit().return_value


def state_to_numpy(state: dict) -> dict:
    """A state_dict as numpy arrays: Ray Train refuses to return torch tensors from a worker."""
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def state_from_numpy(state: dict) -> dict:
    import torch

    # arrays from Ray's object store are read-only; torch wants memory it may write
    return {k: torch.from_numpy(v.copy()) for k, v in state.items()}


def _storage(path: str | Path | None) -> str | None:
    """Ray wants absolute local paths; URIs (s3://, gs://, ...) pass as they are."""
    if path is None or "://" in str(path):
        return None if path is None else str(path)
    return str(Path(path).resolve())
