"""Running an in-process training function on Ray: as a Ray task, or as a one-worker Ray Train
(TorchTrainer) run.

Refits and distillation are one model each, so one worker; the point of going through Ray is
placement (a GPU node of the cluster, CPUs reserved beside other work) and Ray's failure handling,
not data parallelism. A task gives both (num_cpus/num_gpus, retries when its worker dies) without a
worker group and a controller, whose start-up (some 15 s here) dominates models this small: the
same reason one-worker trials run `in_trial` under `resources.executor: auto`. So a task is the
default, and Ray Train runs them when the spec's executor resolves to `ray_train`. The function runs
unchanged either way, so the in-process path and both Ray paths train exactly the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def _entry(config: dict) -> Any:
    import ray

    # the payload travels through the object store, not the pickled config (Ray's advice for data)
    return config["fn"](ray.get(config["payload"]))


def running_ray():
    """The ray module, once a running Ray session (ray.init) is checked for: work sent to Ray from
    outside one would otherwise start a private local cluster of its own."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("a running Ray session (ray.init) must hold, but got none")
    return ray


def _task_entry(fn: Callable[[dict], Any], payload: dict) -> Any:
    return fn(payload)  # Ray resolves the payload's object ref before a task runs


def run_on_ray(fn: Callable[[dict], Any], payload: dict, *, name: str, storage_path: str | Path | None = None,
               cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, ray_train: bool = False) -> Any:
    """fn(payload) on Ray: in one task holding these CPUs/GPUs, or with ray_train on one Ray Train
    worker (run_on_ray_train, which alone uses storage_path). Needs a running Ray session."""
    if ray_train:
        return run_on_ray_train(fn, payload, name=name, storage_path=storage_path, cpus_per_worker=cpus_per_worker,
                                gpus_per_worker=gpus_per_worker)
    ray = running_ray()
    task = ray.remote(_task_entry).options(name=name, num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)
    return ray.get(task.remote(fn, ray.put(payload)))


def run_on_ray_train(fn: Callable[[dict], Any], payload: dict, *, name: str, storage_path: str | Path | None = None,
                     cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0) -> Any:
    """fn(payload) on one Ray Train worker; returns what fn returned (rank 0's return value).

    `fn` must be a module-level function (pickled by reference). Needs a running Ray session.
    """
    ray = running_ray()
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

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
