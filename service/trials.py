"""What every trial of a sweep is handed: the training rows and folds (in memory, or a Ray Data
stream plan), how it runs (trainers.search.Execution) and the resources Tune reserves for it."""
from __future__ import annotations

from pathlib import Path

from ray import tune

from service import sweepdir
from service.spec import SweepSpec
from service.spec.checks import stream_problems
from service.store import Sweep
from trainers.families import get_family
from trainers.kfold import TrialData, make_folds
from trainers.search import Execution, asha_rungs, run_trial
from trainers.tables import is_table


def streams(spec: SweepSpec, dataset=None) -> bool:
    """Whether the sweep's trials read their rows through Ray Data (data.stream, or "auto" and a large
    Parquet source of numbers in a sweep that can stream; a table of typed columns never streams)."""
    if dataset is not None and (is_table(dataset.x) or dataset.task == "regression"):
        return False
    if spec.data.stream != "auto":
        return spec.data.stream
    from trainers.stream import STREAM_ABOVE_BYTES

    not_torch = [f for f in spec.families() if not get_family(f).is_torch]
    if stream_problems(spec, not_torch):
        return False
    return sum(Path(p).stat().st_size for p in _parquet_paths(spec.data.source)) > STREAM_ABOVE_BYTES


def _parquet_paths(source: str) -> list[str]:
    from trainers.data.tabular import parquet_shards

    path = Path(source)
    return [str(p) for p in parquet_shards(path)] if path.is_dir() else [str(path)]


def trial_data(sweep: Sweep, deadline: float | None = None) -> TrialData:
    """What every trial shares; deadline: the search's (SearchConfig.deadlines), None without a budget."""
    dataset = sweep.dataset()
    spec, cv = sweep.spec, sweep.spec.cv
    x, y = dataset.x[sweep.train_idx], dataset.y[sweep.train_idx]
    folds = make_folds(y, cv.folds, cv.stratified, cv.seed, dataset.task, cv.repeats)
    stream = None
    if streams(spec, dataset):
        from trainers.stream import plan_for

        # trials read the rows through Ray Data; the folds are the ones computed here, from the labels.
        # data.test_source's rows come after the source's and are never streamed
        stream = plan_for(_parquet_paths(spec.data.source), spec.data.target, dataset.classes,
                          sweep.train_idx, folds, len(dataset.y) - dataset.n_predefined_test, seed=cv.seed)
    return TrialData(x=None if stream else x, y=y, folds=folds,
                     base_model=spec.base_model_config(x.shape[1], dataset.n_outputs, dataset.task).model_dump(mode="json"),
                     metric=spec.search.metric, seed=cv.seed, checkpoint_every=spec.search.checkpoint_every,
                     checkpoint_epochs=asha_rungs(spec.search), stream=stream, deadline=deadline,
                     patience=spec.search.patience)


def trainable(sweep: Sweep, data: TrialData):
    spec, files = sweep.spec, sweep.files
    execution = Execution.from_spec(spec.resources, spec.search,
                                    sweepdir.tune_path(sweep.where.tune_storage, spec.name, sweepdir.TUNE_TRAIN),
                                    str(files.attempts_file), str(files.finished_file))
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
