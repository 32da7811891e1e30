"""Spec sections consumed by trainers/: cross-validation, search, resources, ensemble, distillation."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from trainers.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, SearchAlgorithm, get_algorithm
from trainers.ensemble.combiners import COMBINERS, DEFAULT_COMBINER
from trainers.families import DEFAULT_FAMILY, STUDENT_FAMILIES, get_family
from trainers.families.config import MAX_CHANNELS, MAX_DEPTH, MAX_HIDDEN, Activation
from trainers.train_config import MAX_EPOCHS
from trainers.metrics import METRICS
from trainers.portfolio import PRESETS
from trainers.postsweep_cost import reserve_s
from trainers.space import Dimension, Scalar
from trainers.task import get_task

MAX_TRIALS = 10_000  # num_trials, and a grid's (or random search's grid axes') combinations
MAX_SPACE_KEYS = 64  # entries of search.space and of search.fixed each
MAX_SEED = 2**32 - 1  # numpy and scikit-learn take seeds in [0, 2**32)
MAX_RETRIES = 100
MAX_REPEATS = 10  # cv.repeats: each repeat costs as much again as the whole k-fold
MAX_START_POINTS = 64  # search.start_with
MIN_BUDGET_S = 20.0  # search.time_budget_s: below this Ray's own start-up and one trial's round do not fit
MAX_CPUS, MAX_GPUS = 1024, 64  # per worker / per trial


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CVConfig(_Section):
    folds: int = Field(5, ge=2, le=50)  # k of k-fold; <= the smallest class's count
    stratified: bool = True  # StratifiedKFold vs KFold
    seed: int = Field(0, ge=0, le=MAX_SEED)  # fold assignment and every trial's torch seed
    # repeated k-fold: each repeat cuts the rows into new folds, so every row gets `repeats` out-of-fold
    # predictions (averaged: a steadier OOF for greedy selection and stacking) and a trial trains
    # folds x repeats models, all of them ensemble members
    repeats: int = Field(1, ge=1, le=MAX_REPEATS)

    def describe(self) -> str:
        return f"{self.folds}-fold CV" + (f" x {self.repeats} repeats" if self.repeats > 1 else "")

    def fold_count(self) -> int:
        """Models (and OOF blocks) per trial."""
        return self.folds * self.repeats


class SearchConfig(_Section):
    # one of trainers.algorithms.ALGORITHMS: grid | random | bayesian (Optuna TPE) | gp (Optuna GP)
    algorithm: Literal[tuple(ALGORITHMS)] = DEFAULT_ALGORITHM
    # ignored by grid: it runs every combination once; bayesian/gp: at most the space's distinct configurations
    num_trials: int = Field(8, ge=1, le=MAX_TRIALS)
    max_concurrent: int = Field(2, ge=1, le=1024)
    # one of trainers.metrics.METRICS for the data's task, on the out-of-fold predictions; default: the
    # task's (accuracy for classes, rmse for a regression target: set once the data is loaded, for_task)
    metric: StrictStr = Field("accuracy", max_length=64)
    mode: Literal["min", "max"] | None = None  # default: the metric's natural direction
    scheduler: Literal["none", "asha"] = "none"
    grace_period: int = Field(5, ge=1, le=MAX_EPOCHS)  # ASHA: epochs before a trial can be stopped
    reduction_factor: int = Field(3, ge=2, le=100)  # ASHA
    # early stopping on the folds' own validation rows: a trial ends once its mean validation loss over the
    # folds has not improved for this many rounds (epochs; blocks of trees for a booster), keeping the
    # round it reached (its refit trains as many); null: every round runs
    patience: int | None = Field(None, ge=1, le=MAX_EPOCHS)
    max_failures: int = Field(2, ge=0, le=MAX_RETRIES)  # retries of a trial whose worker or process dies
    # ray_train trials: a Train run that has not ended this long after its workers' final report is
    # hung: its stacks go to the trial's log and the attempt fails (and is retried); null: wait for ever
    hang_timeout_s: float | None = Field(300.0, gt=0, le=7 * 24 * 3600)
    # epochs between trial checkpoints (a retried trial loses at most this many); ASHA's rungs
    # and the last epoch always checkpoint
    checkpoint_every: int = Field(5, ge=1, le=MAX_EPOCHS)
    seed: int = Field(0, ge=0, le=MAX_SEED)  # searcher seed
    # wall-clock seconds for the whole run: search, ensemble and student together (from the moment the
    # sweep starts running; a resumed sweep gets the budget again); null: no limit. See deadlines()
    time_budget_s: float | None = Field(None, ge=MIN_BUDGET_S, le=7 * 24 * 3600)
    # the least share of time_budget_s the steps after the search keep (ensemble, student, judgement); more
    # where they are estimated to need it on the table's rows (trainers.postsweep_cost)
    postsweep_share: float = Field(0.25, ge=0.05, le=0.9)
    space: dict[str, Dimension] = Field(default_factory=dict, max_length=MAX_SPACE_KEYS)
    fixed: dict[str, Scalar] = Field(default_factory=dict, max_length=MAX_SPACE_KEYS)
    # trainers.portfolio: "auto" is "tabular" for a spec that names no model and no search space or fixed
    # keys; "tabular" fills an empty space with the portfolio's, its fixed keys, start_with, and
    # num_trials/algorithm where the spec left them out (service.spec.schema applies it)
    preset: Literal[PRESETS] = "auto"
    # the first trials, as given, then the searcher's own (bayesian, gp): each key searched in space,
    # each value inside its dimension
    start_with: list[dict[str, Scalar]] = Field(default_factory=list, max_length=MAX_START_POINTS)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"one of {sorted(METRICS)} expected, but got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        self.searcher().check(self)
        trials = self.trial_count()
        if trials > MAX_TRIALS:
            counted = " grid combinations" if self.searcher().trials_field == "search.space" else ""
            raise ValueError(f"at most {MAX_TRIALS} trials (the num_trials limit) expected, but the space gives "
                             f"{trials}{counted}")
        self._check_start_points()
        both = sorted(set(self.space) & set(self.fixed))
        if both:
            raise ValueError(f"a key is either searched or fixed, but {both} are both")
        if self.mode is None:
            # filled in but not marked as given, so for_task may still follow the task's metric; a
            # private flag instead would make equal specs unequal once one went through JSON
            self.mode = METRICS[self.metric]
            self.model_fields_set.discard("mode")
        return self

    def for_task(self, task: str) -> "SearchConfig":
        """This section for the data's task: its default metric (and that metric's mode) when the spec
        named none; ValueError naming search.metric when the spec's metric is for the other task."""
        metrics = get_task(task).metrics
        if self.metric in metrics:
            return self
        if "metric" in self.model_fields_set:
            raise ValueError(f"search.metric: one of {sorted(metrics)} for a {task} target expected, but got "
                             f"{self.metric!r}")
        metric = get_task(task).default_metric
        return self.model_copy(update={"metric": metric, "mode": self.mode if "mode" in self.model_fields_set else metrics[metric]})

    def _check_start_points(self) -> None:
        if self.start_with and not self.searcher().takes_start_points:
            takers = sorted(n for n, a in ALGORITHMS.items() if a.takes_start_points)
            raise ValueError(f"start_with needs algorithm {' or '.join(takers)}, but got algorithm {self.algorithm!r}")
        for i, point in enumerate(self.start_with):
            unknown = sorted(k for k in point if k not in self.space)
            if unknown:
                raise ValueError(f"start_with[{i}]: keys of search.space expected, but got {unknown}")
            outside = sorted(k for k, v in point.items() if not self.space[k].contains(v))
            if outside:
                raise ValueError(f"start_with[{i}]: values inside search.space expected, but got "
                                 + ", ".join(f"{k}={point[k]!r}" for k in outside))

    def deadlines(self, started: float, rows: int) -> tuple[float, float] | None:
        """(search's deadline, the run's deadline) as time.time() values for a run started then on `rows`
        training rows, or None without a budget. The steps after the search keep postsweep_share of the
        budget, or what they are estimated to take on that many rows when it is more
        (trainers.postsweep_cost). After the search's deadline: no trial starts, and a running one stops
        at its next round with that round's checkpoint; after the run's: the student stops training (its
        epochs so far) and refits are no longer waited for."""
        if self.time_budget_s is None:
            return None
        end = started + self.time_budget_s
        return end - reserve_s(self.time_budget_s, self.postsweep_share, rows), end

    def searcher(self) -> SearchAlgorithm:
        """The algorithm this section names (trainers.algorithms)."""
        return get_algorithm(self.algorithm)

    def trial_count(self) -> int:
        """Trials Tune will run (every grid combination once for grid, num_trials samples of each
        combination of the grid axes for random, at most the space's configurations for the Optuna ones:
        the algorithm says)."""
        return self.searcher().trial_count(self)


class ResourcesConfig(_Section):
    workers_per_trial: int = Field(1, ge=1, le=256)  # Ray Train workers; each trains a share of the folds
    cpus_per_worker: float = Field(1.0, gt=0, le=MAX_CPUS)
    gpus_per_worker: float = Field(0.0, ge=0, le=MAX_GPUS)
    # auto: in_trial for one worker per trial, GPU or not (no worker-group start-up per trial: Tune
    # reuses trial processes, and the trial process reserves the GPU itself), else ray_train
    executor: Literal["auto", "ray_train", "in_trial"] = "auto"
    trial_cpus: float = Field(1.0, gt=0, le=MAX_CPUS)  # CPUs of the in_trial path's trial process
    # ray_train only: "folds" spreads the k folds over the workers; "ddp" trains each fold on
    # all workers at once (DistributedDataParallel), for models too big for one worker
    parallelism: Literal["folds", "ddp"] = "folds"
    # a node Ray says has a GPU but where torch sees no CUDA (a misconfigured image, a simulated
    # cluster): "error" fails the trial naming the node; "cpu" trains there on CPU (tests use it)
    cuda_missing: Literal["error", "cpu"] = "error"

    def resolved_executor(self) -> str:
        if self.executor != "auto":
            return self.executor
        return "in_trial" if self.workers_per_trial == 1 else "ray_train"


GREEDY_AVERAGES = tuple(n for n, c in COMBINERS.items() if c.averages)  # greedy selection is their weighted mean


class EnsembleConfig(_Section):
    selection: Literal["top_k", "greedy"] = "top_k"
    # trials taken by top_k; greedy's candidate pool (plus the best trial of every other family searched)
    top_k: int = Field(5, ge=1, le=MAX_TRIALS)
    greedy_rounds: int = Field(25, ge=1, le=10_000)  # greedy selection steps (with replacement)
    # what greedy selection maximises on the OOF probabilities: "search" = the search's metric; a
    # proper score (log_loss) rewards a member that fixes confident mistakes even when the argmax
    # (accuracy) does not move yet, so it ties less often on small data
    selection_metric: Literal["search", "log_loss"] = "search"
    # one of trainers.ensemble.combiners.COMBINERS: hard_vote | soft_vote | weighted | stacking | ...
    method: Literal[tuple(COMBINERS)] = DEFAULT_COMBINER
    members: Literal["folds", "refit"] = "folds"  # fold models of each trial, or one refit per trial
    # if_better: also fit a stacking layer on the candidate pool's OOF predictions and keep it instead of
    # greedy selection only when it scores better on OOF rows neither was fitted on (trainers.ensemble.guard)
    stacking: Literal["off", "if_better"] = "off"
    # if_better: serve the best trial alone instead of the greedy ensemble when it scores better on OOF rows
    # greedy selection was not fitted on (on rows it was, greedy can never score below its first pick)
    single: Literal["off", "if_better"] = "off"

    @model_validator(mode="after")
    def _guarded(self) -> "EnsembleConfig":
        for field in ("stacking", "single"):
            if getattr(self, field) == "if_better" and (self.selection != "greedy"
                                                        or self.method not in GREEDY_AVERAGES):
                raise ValueError(f"{field} 'if_better' is weighed against greedy averaging, so selection 'greedy' "
                                 f"and method one of {list(GREEDY_AVERAGES)} must hold, but got selection "
                                 f"{self.selection!r}, method {self.method!r}")
        return self


MAX_STUDENT_TREES, MAX_STUDENT_LEAVES = 2000, 256  # a student is small; a larger booster is a trial


class StudentConfig(_Section):
    family: Literal[STUDENT_FAMILIES] = DEFAULT_FAMILY  # families that can be a student (Family.student_keys)
    hidden: int = Field(32, ge=1, le=MAX_HIDDEN)
    depth: int = Field(1, ge=1, le=MAX_DEPTH)
    channels: int = Field(8, ge=1, le=MAX_CHANNELS)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    activation: Activation = "relu"
    # a boosted-tree student (lightgbm): boosting iterations and leaves per tree
    trees: int = Field(100, ge=1, le=MAX_STUDENT_TREES)
    leaves: int = Field(15, ge=2, le=MAX_STUDENT_LEAVES)

    def shape(self) -> dict[str, int]:
        """The size fields this family uses (Family.student_keys: an MLP has no channels, a CNN no depth)."""
        return {key: getattr(self, key) for key in get_family(self.family).student_keys}


class StudentSize(_Section):
    """One candidate of distill.sizes: the fields it names replace distill.student's (dropout and
    activation stay the student's); `family` lets a boosted-tree student compete with the network."""

    family: Literal[STUDENT_FAMILIES] | None = None
    hidden: int | None = Field(None, ge=1, le=MAX_HIDDEN)
    depth: int | None = Field(None, ge=1, le=MAX_DEPTH)  # MLP hidden layers
    channels: int | None = Field(None, ge=1, le=MAX_CHANNELS)  # CNN
    trees: int | None = Field(None, ge=1, le=MAX_STUDENT_TREES)  # lightgbm
    leaves: int | None = Field(None, ge=2, le=MAX_STUDENT_LEAVES)  # lightgbm


MAX_STUDENT_SIZES = 16  # each candidate is a whole distillation; a wider search is what the sweep is for
MAX_LATENCY_MS = 60_000.0  # a minute per row is no budget


class DistillConfig(_Section):
    enabled: bool = True
    student: StudentConfig = Field(default_factory=StudentConfig)
    temperature: float = Field(3.0, gt=0.0, le=1000.0)
    alpha: float = Field(0.7, ge=0.0, le=1.0)  # weight of the soft (teacher) term
    epochs: int = Field(50, ge=1, le=MAX_EPOCHS)
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    batch_size: int = Field(64, ge=1, le=65_536)
    mixup_alpha: float = Field(0.0, ge=0.0, le=10.0)  # mixup on the transfer set; teacher relabels mixed rows
    # candidate student shapes, e.g. [{hidden: 16}, {hidden: 64}, {hidden: 128, depth: 2}]; empty: no
    # search, `student` is the shape (distilled on the whole training split, as before sizes existed)
    sizes: list[StudentSize] = Field(default_factory=list, max_length=MAX_STUDENT_SIZES)
    # validation accuracy a candidate may lose against the teacher's and still count as good enough;
    # 0.01 = one point of accuracy, about what a reshuffled split moves on a few hundred rows. A regression
    # target: the share of the teacher's validation RMSE it may add (0.05 = at most 5% higher)
    margin: float = Field(0.01, ge=0.0, le=1.0)
    # share of the training split (stratified; never the test rows) held out of the candidates'
    # transfer set to score them and the teacher; 0.2 keeps 80% to learn from
    validation_fraction: float = Field(0.2, ge=0.05, le=0.5)
    # ms per row at batch 1, timed as the judge times the student (in the process finishing the
    # sweep); set: the most accurate candidate under it wins instead of the smallest within `margin`
    max_latency_ms: float | None = Field(None, gt=0.0, le=MAX_LATENCY_MS)

    @model_validator(mode="after")
    def _distinct_sizes(self):
        shapes = [{"family": c.family, **c.shape()} for c in self.candidates()]
        twice = [s for i, s in enumerate(shapes) if s in shapes[:i]]
        if twice:
            # a repeat would train the same student twice (fields the family ignores do not count)
            raise ValueError(f"distinct shapes in sizes (a family and its size fields) must hold, but "
                             f"got {twice[0]} more than once")
        return self

    def candidates(self) -> list[StudentConfig]:
        """The shapes distillation may train: each of `sizes` over `student`, or `student` alone."""
        if not self.sizes:
            return [self.student]
        return [self.student.model_copy(update=s.model_dump(exclude_none=True)) for s in self.sizes]
