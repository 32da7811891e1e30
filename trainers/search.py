"""Ray Tune wiring: search algorithms, ASHA, and the trial function (in-trial or Ray Train)."""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from trainers.config import ResourcesConfig, SearchConfig
from trainers.kfold import TrialData, train_folds
from trainers.train_config import split_params


@dataclass
class Execution:
    """How each trial runs; picklable, travels to every trial process."""

    executor: str  # in_trial | ray_train
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 2
    train_storage: str = ""  # Ray Train runs of the ray_train path live here
    attempts_log: str = ""  # one JSON line per trial start (audit trail for resume/retry)
    # {trial_id: {"metrics": {...}, "checkpoint_dir": path}} of trials the sweep already recorded as
    # finished: Tune's experiment snapshot can lag a trial's end, and a restored sweep must not
    # train such a trial again, only replay its final result
    finished_file: str = ""
    parallelism: str = "folds"  # folds | ddp (ray_train only)
    cuda_missing: str = "error"  # error | cpu: a GPU-typed node where torch sees no CUDA
    hang_timeout_s: float | None = 300.0  # ray_train: see SearchConfig.hang_timeout_s

    @classmethod
    def from_spec(cls, resources: ResourcesConfig, search: SearchConfig, train_storage: str,
                  attempts_log: str, finished_file: str) -> "Execution":
        return cls(resources.resolved_executor(), resources.workers_per_trial, resources.cpus_per_worker,
                   resources.gpus_per_worker, search.max_failures, train_storage, attempts_log, finished_file,
                   resources.parallelism, resources.cuda_missing, search.hang_timeout_s)


def max_epochs(search: SearchConfig) -> int:
    if "epochs" in search.fixed:
        return int(search.fixed["epochs"])
    if "epochs" in search.space:
        return int(max(search.space["epochs"].endpoints()))
    from trainers.train_config import TrainConfig
    return TrainConfig.model_fields["epochs"].default


def asha_rungs(search: SearchConfig) -> tuple[int, ...]:
    """Epochs at which ASHA may stop a trial (grace_period * reduction_factor**k below max_t)."""
    if search.scheduler != "asha":
        return ()
    rungs, epoch = [], search.grace_period
    while epoch < max_epochs(search):
        rungs.append(epoch)
        epoch *= search.reduction_factor
    return tuple(rungs)


def param_space(search: SearchConfig) -> dict:
    return search.searcher().param_space(search)


def tune_config(search: SearchConfig):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    algorithm = search.searcher()
    scheduler = None
    if search.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_epochs(search),
                                  grace_period=search.grace_period, reduction_factor=search.reduction_factor)
    return tune.TuneConfig(metric=search.metric, mode=search.mode, search_alg=algorithm.searcher(search),
                           scheduler=scheduler, num_samples=algorithm.num_samples(search),
                           max_concurrent_trials=search.max_concurrent,
                           # a fresh trial process imports torch again (seconds each on 2 cores)
                           reuse_actors=True)


def _log_attempt(path: str, trial_id: str, kind: str, resumed: bool | None = None) -> None:
    """resumed: whether this start continues from a checkpoint (None where it does not apply)."""
    if path and Path(path).parent.is_dir():
        with open(path, "a") as f:  # one short O_APPEND write per line: safe across processes
            f.write(json.dumps({"trial_id": trial_id, "kind": kind, "pid": os.getpid(), "time": time.time(),
                                "node_id": _node_id(), "resources": _assigned(), "resumed": resumed}) + "\n")


def _node_id() -> str | None:
    """The Ray node this process runs on (where a trial attempt ran), None outside Ray."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _assigned() -> dict:
    """Resources Ray reserved for this process (what a trial attempt actually held)."""
    import ray

    return ray.get_runtime_context().get_assigned_resources() if ray.is_initialized() else {}


def _finished(path: str, trial_id: str) -> dict | None:
    try:
        return json.loads(Path(path).read_text()).get(trial_id) if path else None
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def training_device(execution: Execution):
    """Where this process trains: CUDA only when the trial reserved a GPU (Ray then sets
    CUDA_VISIBLE_DEVICES); a reserved GPU that torch cannot see is an error naming the node, or CPU
    with resources.cuda_missing: cpu. Never a silent CPU run where a GPU was asked for."""
    import torch

    if execution.gpus_per_worker <= 0:
        return torch.device("cpu")
    if torch.cuda.is_available():
        from trainers.loop import as_device

        return as_device("cuda")
    if execution.cuda_missing == "cpu":
        return torch.device("cpu")
    raise RuntimeError(f"resources.gpus_per_worker: CUDA in the training process expected, but node {_node_id()} "
                       f"has a GPU resource and torch sees no CUDA device (resources.cuda_missing: cpu trains "
                       f"on CPU there)")


def run_trial(config: dict, data: TrialData, execution: Execution) -> None:
    """The Tune trainable: one trial = one config = all k folds."""
    import torch
    from ray import tune

    torch.set_num_threads(1)  # trials run side by side on few cores; intra-op threads only fight
    from ray.tune import Checkpoint

    trial_id = tune.get_context().get_trial_id()
    done = _finished(execution.finished_file, trial_id)
    if done and Path(done["checkpoint_dir"]).is_dir():
        _log_attempt(execution.attempts_log, trial_id, "replay")
        tune.report(done["metrics"], checkpoint=Checkpoint.from_directory(done["checkpoint_dir"]))
        return
    if data.past_deadline():
        # the search's time is up: a trial Tune starts now returns at once. Tune insists on the metric in
        # a result: NaN, which the searcher takes as a failed trial; no checkpoint, so the sweep does not
        # record it (service.recorder); the budget stopper ends the experiment
        _log_attempt(execution.attempts_log, trial_id, "skipped")
        tune.report({data.metric: float("nan"), "skipped": "time budget"})
        return
    in_trial = execution.executor == "in_trial"
    _log_attempt(execution.attempts_log, trial_id, "train", tune.get_checkpoint() is not None if in_trial else None)
    if in_trial:
        def report(metrics, directory):
            tune.report(metrics, checkpoint=Checkpoint.from_directory(str(directory)) if directory else None)

        checkpoint = tune.get_checkpoint()
        with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as resume:
            train_folds(data, config, list(range(len(data.folds))), report,
                        resume_from=Path(resume) if resume else None, device=training_device(execution))
        return
    _run_with_ray_train(config, data, execution, trial_id)


def _run_with_ray_train(config: dict, data: TrialData, execution: Execution, trial_id: str) -> None:
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer

    from trainers.families import get_family
    from trainers.families.config import ModelConfig
    from trainers.train_reports import ReportForwarder, forward_reports, new_report_queue

    # Train's controller consumes reports on its health-check tick (2 s by default) and a worker's
    # next report waits for that: 2 s per epoch dwarfs small models. Ray Train propagates this
    # variable from here to its controller and workers.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    resources = {"CPU": execution.cpus_per_worker}
    if execution.gpus_per_worker:
        resources["GPU"] = execution.gpus_per_worker
    datasets = {}
    if data.stream is not None:
        from trainers.stream import ray_dataset

        datasets = {"train": ray_dataset(data.stream)}
    from trainers.torch_backend import CudaAwareTorchConfig

    reports = new_report_queue()  # Train's controller -> this thread (trainers.train_reports)
    trainer = TorchTrainer(
        _train_worker,
        torch_config=CudaAwareTorchConfig(),
        datasets=datasets,
        train_loop_config={"params": config, "data": data, "parallelism": execution.parallelism,
                           "execution": execution, "trial_id": trial_id},
        scaling_config=ray.train.ScalingConfig(num_workers=execution.workers,
                                               use_gpu=execution.gpus_per_worker > 0,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            # the trial id is stable across Tune restores, so a restarted trial continues this run
            name=f"trial-{trial_id}", storage_path=execution.train_storage,
            # controller_failure_limit: worker-group start-up failures (placement, process group set-up)
            # are retried without limit by default, so a trial that can never start never ended
            failure_config=ray.train.FailureConfig(max_failures=execution.max_failures,
                                                   controller_failure_limit=execution.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=[ReportForwarder(reports)]),
    )
    model_cfg, fit_cfg = split_params(config, ModelConfig.model_validate(data.base_model))
    forward_reports(trainer.fit, reports, tune.report, get_family(model_cfg.family).fit_rounds(fit_cfg),
                    execution.hang_timeout_s)


def _train_worker(cfg: dict) -> None:
    """Ray Train worker: owns folds rank, rank+world, ...; per-fold results are all-gathered so
    rank 0 (the only one Tune hears) reports the mean over every fold."""
    import ray.train
    import torch
    import torch.distributed as dist
    from ray.train import Checkpoint

    torch.set_num_threads(1)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    data: TrialData = cfg["data"]
    ddp = cfg.get("parallelism") == "ddp" and world > 1
    # ddp: every rank holds every fold (one DDP replica each); folds: rank owns every world-th fold
    fold_ids = list(range(len(data.folds))) if ddp else [k for k in range(len(data.folds)) if k % world == rank]

    def gather(local: dict) -> dict:
        if world == 1 or ddp:
            return local
        parts = [None] * world
        dist.all_gather_object(parts, local)
        return {k: v for part in parts for k, v in part.items()}

    def report(metrics, directory):
        # ddp replicas hold identical weights: rank 0's files are the checkpoint
        keep = directory is not None and (not ddp or rank == 0)
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(str(directory)) if keep else None)

    import ray.train.torch as rt

    # each worker's own line (node, resources held): where the training of a ray_train trial ran.
    # Written where the worker runs: on a cluster without a shared filesystem only local workers' lines
    _log_attempt(cfg["execution"].attempts_log, cfg["trial_id"], "worker", ray.train.get_checkpoint() is not None)
    device = training_device(cfg["execution"])
    if device.type == "cuda":
        device = rt.get_device()  # the GPU Ray Train assigned to this worker
    if data.stream is not None:
        from trainers.stream import train_folds_streamed

        # a restarted worker trains the trial again from the stream (no mid-trial resume yet)
        train_folds_streamed(ray.train.get_dataset_shard("train"), data, cfg["params"], report, device)
        return
    checkpoint = ray.train.get_checkpoint()
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as resume:
        train_folds(data, cfg["params"], fold_ids, report, gather,
                    resume_from=Path(resume) if resume else None, device=device,
                    data_parallel=(rank, world) if ddp else None)
