"""The sweep driver: prepare a sweep (its directory, held-out split and MLflow parent run), then run
or continue its Tune search over k-fold trials. The spec comes in parsed and goes down from here:
prepare writes it once and returns the Sweep the rest of the run works on."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

# per-epoch checkpoints make Tune warn about snapshot frequency on every epoch of every trial
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
from ray import tune  # noqa: E402

from service import sweepdir, sweeplock, tracking  # noqa: E402
from service.recorder import Recorder, SweepCallback  # noqa: E402
from service.spec import SweepSpec  # noqa: E402
from service.store import Sweep, describe_data  # noqa: E402
from service.trials import trainable, trial_data  # noqa: E402
from trainers.data import load_dataset, split_indices  # noqa: E402
from trainers.families.scope import scope_of  # noqa: E402
from trainers.search import param_space, tune_config  # noqa: E402


class SweepExists(ValueError):
    pass


class SpecChanged(ValueError):
    pass


def expected_trials(spec: SweepSpec) -> int:
    return spec.search.trial_count()


def prepare(spec: SweepSpec, replace: bool = False) -> Sweep:
    """Create the sweep's directory: held-out split, MLflow parent run, meta, and the spec (written
    last: its presence marks a complete, resumable sweep). Returns the Sweep, ready to run.

    replace: an existing sweep of this name is removed first (its directory and Tune experiment);
    its MLflow runs and registered model versions stay, and the new sweep registers the next version.
    Either way the sweep is held while this runs: sweeplock.SweepBusy while another process drives it."""
    files = sweepdir.of(spec.name)
    with sweeplock.hold(files.path, "prepare"):
        if files.exists() and not replace:
            raise SweepExists(f"name: a new sweep name expected, but {spec.name!r} already exists at {files.path}; "
                              f"continue it with `raysemble resume {spec.name}`, start it again with --replace, "
                              f"or choose another name")
        where = spec.locations().prepare()  # resolved once: everything below uses these
        if replace:
            _remove_sweep(files, sweepdir.tune_path(where.tune_storage, spec.name))
        dataset = spec.dataset() or load_dataset(spec.data)
        # data.test_source's rows when the spec names one (never re-split), else a seeded stratified split
        train_idx, test_idx = split_indices(dataset, spec.data)
        files.write_split(train_idx, test_idx)
        files.write_data(describe_data(dataset))
        client = tracking.client_for(where)
        experiment_id, run_id = tracking.start_sweep_run(client, spec, where)
        client.log_artifact(run_id, str(files.split_file))
        client.log_artifact(run_id, str(files.data_file))
        meta = files.write_meta(name=spec.name, experiment_id=experiment_id, mlflow_run_id=run_id,
                                mlflow_uri=where.mlflow_uri, storage_path=where.tune_storage, state="RUNNING",
                                created=time.time(), code_dirs=spec.code_dirs())
        files.write_spec(spec.model_dump_json(indent=1))
    sweep = Sweep(spec.name, files.path, spec, train_idx, test_idx, [], run_id, experiment_id, where, meta)
    sweep.keep_dataset(dataset)
    return sweep


def _remove_sweep(files: sweepdir.SweepDir, experiment: str) -> None:
    # everything but the lock file, which the caller holds (a lock on a deleted file guards nothing)
    for child in files.path.iterdir() if files.path.is_dir() else ():
        if child.name == sweeplock.LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    # a Tune experiment left under the name would be restored instead of starting afresh
    if "://" in experiment:
        import pyarrow.fs

        filesystem, path = pyarrow.fs.FileSystem.from_uri(experiment)
        if filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
            filesystem.delete_dir(path)
    else:
        shutil.rmtree(experiment, ignore_errors=True)


def run_sweep(sweep: Sweep | SweepSpec, progress) -> Sweep:
    """Run a sweep: a SweepSpec is prepared as a new sweep first; a Sweep (prepare's, or load_sweep's
    for one whose driver died) is run or continued from Tune's experiment state. Ray must be
    initialised. The sweep is held (service.sweeplock) while it runs: SweepBusy while another
    process drives it. Returns the sweep with its trials recorded."""
    name = sweep.name
    with sweeplock.hold(sweepdir.of(name).path, "raysemble sweep"):
        if isinstance(sweep, SweepSpec):
            sweep = prepare(sweep)
        return _run_sweep(sweep, progress)


def _run_sweep(sweep: Sweep, progress) -> Sweep:
    spec = sweep.spec
    started = time.time()
    # a resumed sweep runs again, with its time budget counted afresh from here (postsweep reads "started")
    sweep.set_state(state="RUNNING", finished=None, started=started, budget_reached=None)
    deadlines = spec.search.deadlines(started, len(sweep.train_idx))
    data = trial_data(sweep, deadline=deadlines[0] if deadlines else None)
    recorder = Recorder(sweep, data.y, data.deadline)
    experiment = sweepdir.tune_path(sweep.where.tune_storage, spec.name)
    callbacks = [SweepCallback(recorder, progress)]
    stopper = None
    if deadlines:
        from trainers.deadline import Deadline, grace_s

        stopper = Deadline(deadlines[0], grace_s(deadlines[0] - started))
        callbacks.append(stopper)  # it counts the trials it waits for
    progress.start(expected_trials(spec), spec.search.metric, spec.search.mode, recorder.records)
    # let trials run ahead of the driver by up to one checkpoint interval: each result otherwise
    # waits for a round trip through Tune's event loop (about 10 s of 33 for the benchmark sweep).
    # Not under a time budget: a buffered result can reach the stopper up to 100 s late (Tune's
    # TUNE_RESULT_BUFFER_MAX_TIME_S), past the grace that keeps a stopped trial's last round
    buffered = os.environ.get("TUNE_RESULT_BUFFER_LENGTH")
    os.environ["TUNE_RESULT_BUFFER_LENGTH"] = "1" if deadlines else (buffered or str(spec.search.checkpoint_every))
    if tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable(sweep, data), resume_unfinished=True, resume_errored=True)
        # callbacks are pickled with the run config; this run's display and recorder replace them
        tuner._local_tuner.get_run_config().callbacks = callbacks
        tuner._local_tuner.get_run_config().stop = stopper
    else:
        tuner = tune.Tuner(trainable(sweep, data), param_space=param_space(spec.search),
                           tune_config=tune_config(spec.search),
                           run_config=tune.RunConfig(
                               name=spec.name, storage_path=sweep.where.tune_storage, callbacks=callbacks,
                               stop=stopper, verbose=0, failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
                               checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    try:
        # Tune prints its own tables on stdout; stdout belongs to our results (--json)
        with contextlib.redirect_stdout(sys.stderr), _stopped_by_sigterm(sweep) as stopped:
            grid = tuner.fit()
    finally:
        progress.stop()
        if buffered is None:
            os.environ.pop("TUNE_RESULT_BUFFER_LENGTH", None)
        else:
            os.environ["TUNE_RESULT_BUFFER_LENGTH"] = buffered
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
    recorder.finish()
    best = sweep.ranked()
    client = recorder.client
    if best:
        client.log_metric(sweep.mlflow_run_id, f"best_cv_{spec.search.metric}", best[0].mean_score)
    budget_reached = bool(not stopped and data.past_deadline())
    if len(sweep.trials) < expected_trials(spec) and not budget_reached:
        # Tune returns normally after Ctrl-C (or SIGTERM), with the unstarted and running trials unrecorded
        sweep.set_state(state="STOPPED" if stopped else "INTERRUPTED", finished=time.time())
        client.set_terminated(sweep.mlflow_run_id, "KILLED")
        return sweep
    # a sweep its time budget ended is done: the trials that did not start are not owed to a resume
    sweep.set_state(state="SUCCEEDED" if best else "FAILED", finished=time.time(), budget_reached=budget_reached)
    client.set_terminated(sweep.mlflow_run_id, "FINISHED" if best else "FAILED")
    return sweep


@contextlib.contextmanager
def _stopped_by_sigterm(sweep: Sweep):
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
            sweep.set_state(state="STOPPED", finished=stopped[0])
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
    spec, meta = sweep.spec, sweep.meta
    return {
        "sweep": sweep.name, "experiment": spec.experiment(), "experiment_id": sweep.experiment_id,
        "mlflow_run_id": sweep.mlflow_run_id, "mlflow_uri": meta.get("mlflow_uri"),
        "storage_path": meta.get("storage_path"), "sweep_dir": str(sweep.dir), "state": meta.get("state"),
        "metric": spec.search.metric, "mode": spec.search.mode,
        "searched": sorted({scope_of(k)[1] for k in spec.search.space}),
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
