"""Run (or resume) one sweep: split, Tune search over k-fold trials, records on disk and in MLflow."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

# per-epoch checkpoints make Tune warn about snapshot frequency on every epoch of every trial
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
from ray import tune  # noqa: E402

from service import tracking
from service import sweeplock
from service.spec import SweepSpec, streams
from service.store import Sweep, TrialRecord, load_sweep, sweep_dir, write_meta, write_trials
from trainers.atomic import atomic_file, write_atomic
from trainers.data import load_dataset, split_indices
from trainers.kfold import TrialData, make_folds
from trainers.families.scope import effective_params, scope_of
from trainers.search import Execution, asha_rungs, param_space, run_trial, tune_config
from trainers.space import Grid

log = logging.getLogger("raysemble")


class SweepExists(ValueError):
    pass


class SpecChanged(ValueError):
    pass


def tune_storage(spec: SweepSpec) -> str:
    return spec.locations().tune_storage


def _under(storage: str, *parts: str) -> str:
    """A path below Tune storage that is a local directory or any URI Ray accepts (s3://...)."""
    return "/".join([storage.rstrip("/"), *parts]) if "://" in storage else str(Path(storage, *parts))


def expected_trials(spec: SweepSpec) -> int:
    return spec.search.trial_count()


def prepare(spec: SweepSpec, replace: bool = False) -> Path:
    """Create the sweep's directory: spec, held-out split, MLflow parent run.

    replace: an existing sweep of this name is removed first (its directory and Tune experiment);
    its MLflow runs and registered model versions stay, and the new sweep registers the next version.
    Either way the sweep is held while this runs: sweeplock.SweepBusy while another process drives it."""
    directory = sweep_dir(spec.name)
    with sweeplock.hold(directory, "prepare"):
        if (directory / "spec.json").exists() and not replace:
            raise SweepExists(f"name: a new sweep name expected, but {spec.name!r} already exists at {directory}; "
                              f"continue it with `raysemble resume {spec.name}`, start it again with --replace, "
                              f"or choose another name")
        if replace:
            _remove_sweep(spec, directory)
        dataset = load_dataset(spec.data)
        # data.test_source's rows when the spec names one (never re-split), else a seeded stratified split
        train_idx, test_idx = split_indices(dataset, spec.data)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_file(directory / "split.npz") as f:
            np.savez(f, train_idx=train_idx, test_idx=test_idx)
        client = tracking.client_for(spec)
        experiment_id, run_id = tracking.start_sweep_run(client, spec)
        client.log_artifact(run_id, str(directory / "split.npz"))
        write_meta(directory, name=spec.name, experiment_id=experiment_id, mlflow_run_id=run_id,
                   mlflow_uri=spec.mlflow_uri(), storage_path=tune_storage(spec), state="RUNNING",
                   created=time.time(), code_dirs=spec._code_dirs)
        # written last: its presence marks a complete, resumable sweep directory; 0600: it may hold serve.token
        write_atomic(directory / "spec.json", spec.model_dump_json(indent=1), mode=0o600)
    return directory


def _remove_sweep(spec: SweepSpec, directory: Path) -> None:
    # everything but the lock file, which the caller holds (a lock on a deleted file guards nothing)
    for child in directory.iterdir() if directory.is_dir() else ():
        if child.name == sweeplock.LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    # a Tune experiment left under the name would be restored instead of starting afresh
    experiment = _under(tune_storage(spec), spec.name)
    if "://" in experiment:
        import pyarrow.fs

        filesystem, path = pyarrow.fs.FileSystem.from_uri(experiment)
        if filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
            filesystem.delete_dir(path)
    else:
        shutil.rmtree(experiment, ignore_errors=True)


def _trial_data(sweep: Sweep) -> TrialData:
    dataset = sweep.dataset()
    x, y = dataset.x[sweep.train_idx], dataset.y[sweep.train_idx]
    cv = sweep.spec.cv
    folds = make_folds(y, cv.folds, cv.stratified, cv.seed)
    stream = None
    if streams(sweep.spec):
        from trainers.stream import plan_for

        # trials read the rows through Ray Data; the folds are the ones computed here, from the labels.
        # data.test_source's rows come after the source's and are never streamed
        stream = plan_for(_parquet_paths(sweep.spec.data.source), sweep.spec.data.target, dataset.classes,
                          sweep.train_idx, folds, len(dataset.y) - dataset.n_predefined_test, seed=cv.seed)
    return TrialData(x=None if stream else x, y=y, folds=folds,
                     base_model=sweep.spec.base_model_config(x.shape[1], dataset.n_classes).model_dump(mode="json"),
                     metric=sweep.spec.search.metric, seed=cv.seed,
                     checkpoint_every=sweep.spec.search.checkpoint_every,
                     checkpoint_epochs=asha_rungs(sweep.spec.search), stream=stream)


def _parquet_paths(source: str) -> list[str]:
    from trainers.data.tabular import parquet_shards

    path = Path(source)
    return [str(p) for p in parquet_shards(path)] if path.is_dir() else [str(path)]


def _trainable(sweep: Sweep, data: TrialData):
    spec = sweep.spec
    execution = Execution.from_spec(spec.resources, spec.search, _under(tune_storage(spec), spec.name, "train"),
                                    str(sweep.dir / "attempts.jsonl"))
    streamed = data.stream is not None
    if streamed:
        execution.executor = "ray_train"  # get_dataset_shard feeds Ray Train workers
    if execution.executor == "in_trial":
        resources = {"CPU": spec.resources.trial_cpus}
        if spec.resources.gpus_per_worker > 0:  # the trial process itself trains: it holds the GPU
            resources["GPU"] = spec.resources.gpus_per_worker
    elif streamed:
        from trainers.stream import STREAM_TASK_CPUS

        # the trial drives a Ray Train run and holds a second bundle for the Ray Data tasks that read
        # the stream (trainers.stream.DATA_BUNDLE)
        resources = tune.PlacementGroupFactory([{"CPU": 0.01}, {"CPU": STREAM_TASK_CPUS}])
    else:
        # the trial only drives a Ray Train run; its workers hold the real resources
        resources = {"CPU": 0.01}
    return tune.with_resources(tune.with_parameters(run_trial, data=data, execution=execution), resources)


class Recorder:
    """Turns finished Tune trials into TrialRecords: local artifact copy, trials.json, MLflow runs."""

    def __init__(self, sweep: Sweep, y_train: np.ndarray):
        self.sweep, self.y_train = sweep, y_train
        self.records = {t.trial_id: t for t in sweep.trials}
        self.client = tracking.client_for(sweep.spec)

    def record(self, trial_id: str, config: dict, result: dict, checkpoint, error: str | None) -> TrialRecord:
        if trial_id in self.records and self.records[trial_id].status == "TERMINATED":
            return self.records[trial_id]
        local = None
        path = result.get("checkpoint_path")
        if checkpoint is not None or path:
            from ray.train import Checkpoint

            local = self.sweep.dir / "trials" / trial_id
            shutil.rmtree(local, ignore_errors=True)
            (checkpoint or Checkpoint(path)).to_directory(str(local))
        metric = self.sweep.spec.search.metric
        # scores come from the checkpoint's own curves, not Tune's last result: with buffered
        # results a trial can report past its last checkpoint before the scheduler stops it
        curves = _fold_curves(local, self.sweep.spec.cv.folds) if local else None
        ok = error is None and curves is not None
        folds = [float(c[f"val_{metric}"][-1]) for c in curves] if ok else []
        # the flat hyperparameters its family trained with (searchers nest or scope keys)
        params = effective_params(dict(config), self.sweep.spec.model.family)
        record = TrialRecord(trial_id, params, "TERMINATED" if ok else "ERROR",
                             float(np.mean(folds)) if ok else math.nan, folds,
                             int(curves[0]["epoch"][-1]) if ok else 0, local if ok else None, error)
        self.records[trial_id] = record
        write_trials(self.sweep.dir, list(self.records.values()), self.sweep.spec.search.metric)
        self._log(record)
        return record

    def _log(self, record: TrialRecord) -> None:
        try:
            record.mlflow_run_id = tracking.log_trial(self.client, self.sweep.experiment_id, self.sweep.mlflow_run_id,
                                                      record, self.y_train, self.sweep.spec.search.metric)
        except Exception as err:  # tracking trouble must not lose a trained trial; finish() retries
            log.warning("MLflow logging of trial %s failed (%s); will retry at the end", record.trial_id, err)

    def finish(self) -> list[TrialRecord]:
        for record in self.records.values():
            if record.mlflow_run_id is None:
                self._log(record)
        write_trials(self.sweep.dir, list(self.records.values()), self.sweep.spec.search.metric)
        return list(self.records.values())


def _fold_curves(directory: Path, folds: int) -> list[dict] | None:
    try:
        return [json.loads((directory / f"curves_{k}.json").read_text()) for k in range(folds)]
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class SweepCallback(tune.Callback):
    """Records each trial as it ends and drives the progress line."""

    def __init__(self, recorder: Recorder, progress):
        self.recorder, self.progress = recorder, progress

    def __getstate__(self):
        # Tune pickles the run config into its experiment state; a resumed run brings fresh handles
        return {"recorder": None, "progress": None}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.progress.update(trials, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.recorder.record(trial.trial_id, trial.config, trial.last_result or {}, trial.checkpoint, None)
        self.progress.update(trials, None, finished=self.recorder.records)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.recorder.record(trial.trial_id, trial.config, trial.last_result or {}, None, trial_error(trial))
        self.progress.update(trials, None, finished=self.recorder.records)


def trial_error(trial) -> str:
    """The exception that ended a trial, one line ("ValueError: ..."). Tune has written it to the trial's
    local error file when it calls on_trial_error (its storage copy may not be synced yet)."""
    try:
        text = Path(trial.error_file).read_text(errors="replace") if trial.error_file else ""
    except OSError:
        text = ""
    last = text.rsplit("Failure #", 1)[-1]
    lines = [line.strip() for line in last.splitlines() if line.strip() and not line.startswith((" ", "\t"))]
    # the traceback's last unindented line names the exception; Ray wraps it in its own lines first
    found = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line)]
    return (found[-1] if found else "trial failed (Tune recorded no error)")[:500]


def run_sweep(spec: SweepSpec, progress, resume: bool = False) -> Sweep:
    """Run a new sweep, or continue one whose driver died. Ray must be initialised.
    The sweep is held (service.sweeplock) while it runs: SweepBusy while another process drives it."""
    with sweeplock.hold(sweep_dir(spec.name), "raysemble resume" if resume else "raysemble sweep"):
        return _run_sweep(spec, progress, resume)


def _run_sweep(spec: SweepSpec, progress, resume: bool) -> Sweep:
    if not resume:
        prepare(spec)
    sweep = load_sweep(spec.name)
    write_meta(sweep.dir, state="RUNNING", finished=None)  # a resumed sweep runs again
    data = _trial_data(sweep)
    recorder = Recorder(sweep, data.y)
    trainable = _trainable(sweep, data)
    experiment = _under(tune_storage(spec), spec.name)
    callbacks = [SweepCallback(recorder, progress)]
    progress.start(expected_trials(spec), spec.search.metric, spec.search.mode, recorder.records)
    # let trials run ahead of the driver by up to one checkpoint interval: each result otherwise
    # waits for a round trip through Tune's event loop (about 10 s of 33 for the benchmark sweep)
    os.environ.setdefault("TUNE_RESULT_BUFFER_LENGTH", str(spec.search.checkpoint_every))
    if resume and tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=True)
        # callbacks are pickled with the run config; this run's display and recorder replace them
        tuner._local_tuner.get_run_config().callbacks = callbacks
    else:
        tuner = tune.Tuner(trainable, param_space=param_space(spec.search), tune_config=tune_config(spec.search),
                           run_config=tune.RunConfig(
                               name=spec.name, storage_path=tune_storage(spec), callbacks=callbacks, verbose=0,
                               failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
                               checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    try:
        # Tune prints its own tables on stdout; stdout belongs to our results (--json)
        with contextlib.redirect_stdout(sys.stderr), _stopped_by_sigterm(sweep.dir) as stopped:
            grid = tuner.fit()
    finally:
        progress.stop()
    for result in grid:
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        # Tune marks a trial that ended (its function returned, or the scheduler stopped it) "done";
        # one still running when Tune was stopped (Ctrl-C, SIGTERM) is not finished: recording it
        # would make a resume replay it as done (finished.json) instead of continuing its training
        if result.error is None and not (result.metrics or {}).get("done"):
            continue
        if trial_id not in recorder.records:
            recorder.record(trial_id, result.config or {}, result.metrics or {}, result.checkpoint,
                            str(result.error) if result.error else None)
    records = recorder.finish()
    best = sorted((r for r in records if r.status == "TERMINATED"), key=lambda r: r.mean_score,
                  reverse=spec.search.mode == "max")
    client = recorder.client
    if best:
        client.log_metric(sweep.mlflow_run_id, f"best_cv_{spec.search.metric}", best[0].mean_score)
    if len(records) < expected_trials(spec):
        # Tune returns normally after Ctrl-C (or SIGTERM), with the unstarted and running trials unrecorded
        write_meta(sweep.dir, state="STOPPED" if stopped else "INTERRUPTED", finished=time.time())
        client.set_terminated(sweep.mlflow_run_id, "KILLED")
        return load_sweep(spec.name)
    ok = bool(best)
    write_meta(sweep.dir, state="SUCCEEDED" if ok else "FAILED", finished=time.time())
    client.set_terminated(sweep.mlflow_run_id, "FINISHED" if ok else "FAILED")
    return load_sweep(spec.name)


@contextlib.contextmanager
def _stopped_by_sigterm(directory: Path):
    """SIGTERM (how Ray stops a cancelled job, SIGKILL following a few seconds later) marks the sweep
    STOPPED at once, then winds Tune down the way Ctrl-C does. Yields a list that is non-empty once
    that happened."""
    stopped: list[float] = []
    if threading.current_thread() is not threading.main_thread():
        yield stopped  # signal handlers belong to the main thread
        return

    def on_sigterm(signum, frame):
        if not stopped:
            stopped.append(time.time())
            write_meta(directory, state="STOPPED", finished=stopped[0])
        tune_handler = signal.getsignal(signal.SIGINT)  # Tune's own, while fit() runs
        if callable(tune_handler) and tune_handler is not signal.default_int_handler:
            tune_handler(signal.SIGINT, frame)
        else:
            raise SystemExit(128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_same_spec(stored: SweepSpec, given: SweepSpec) -> None:
    a, b = stored.model_dump(mode="json"), given.model_dump(mode="json")
    changed = sorted(_diff("", a, b))
    if changed:
        raise SpecChanged(f"spec: the sweep's stored spec must be unchanged to resume, but these fields differ: "
                          f"{changed}; start a new sweep under another name instead")


def _diff(prefix: str, a, b) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in set(a) | set(b) for p in _diff(f"{prefix}.{k}" if prefix else k, a.get(k), b.get(k))]
    return [] if a == b else [prefix]


def summary(sweep: Sweep) -> dict:
    """The JSON a caller gets: every trial, best first."""
    ranked = sweep.ranked()
    rest = [t for t in sweep.trials if t not in ranked]
    meta = json.loads((sweep.dir / "sweep.json").read_text())
    return {
        "sweep": sweep.name, "experiment": sweep.spec.experiment(), "experiment_id": sweep.experiment_id,
        "mlflow_run_id": sweep.mlflow_run_id, "mlflow_uri": meta.get("mlflow_uri"),
        "storage_path": meta.get("storage_path"), "sweep_dir": str(sweep.dir), "state": meta.get("state"),
        "metric": sweep.spec.search.metric, "mode": sweep.spec.search.mode,
        "searched": sorted({scope_of(k)[1] for k in sweep.spec.search.space}),
        "trials": [{"trial_id": t.trial_id, "config": t.params, "mean": t.mean_score, "folds": t.fold_scores,
                    "epochs": t.epochs, "status": t.status} for t in ranked + rest],
    }


def ray_init(address: str | None, serve_config=None) -> bool:
    """Join ADDRESS / RAY_ADDRESS, or start a local Ray; with serve_config, a local Ray gets the
    fast-ingress environment the later serving step needs (read by Ray's processes at start).
    True when this process started Ray (and so owns it: ray.shutdown() ends its processes)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
        return False
    if serve_config is not None:
        from serving.cluster import ingress_env

        os.environ.update(ingress_env(serve_config))
    # "local" never joins a stale cluster left by a killed head
    ray.init(address="local", log_to_driver=False, include_dashboard=False)
    return True
