"""What one sweep may ask of the cluster, set by the operator (`raysemble api` options).

Every model family states what one fit costs, from its config alone (trainers.families.Family.cost:
its size and its passes over the data), so a new family cannot be left out of the budget: the largest
config the space reaches, per family, is costed on the data's own width and rows. Distillation (every
student candidate, each epochs long) and the resources a trial holds count too."""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.spec.schema import SweepSpec
from trainers.data import Dataset
from trainers.families import Cost, get_family
from trainers.families.scope import FAMILY_KEY, receivers, scope_of
from trainers.train_config import split_params
from trainers.tables import TableEncoding, is_table


class Budget(BaseModel):
    """What one sweep may ask of the cluster; set by the operator (`raysemble api` options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_trials: int = Field(1000, ge=1)  # trials Tune runs (num_trials, or a grid's combinations)
    # trials x folds x the largest fit's passes over the data (epochs, boosting iterations, trees), plus
    # student candidates x distillation epochs
    max_fold_epochs: int = Field(100_000, ge=1)
    max_concurrent: int = Field(8, ge=1)  # search.max_concurrent
    # per model: its size (parameters, tree nodes, kept training values) for the largest config of
    # every family the space reaches, and every student
    max_parameters: int = Field(10_000_000, ge=1)
    max_failures: int = Field(3, ge=0)  # search.max_failures (retries of a dying trial)
    max_workers_per_trial: int = Field(4, ge=1)  # resources.workers_per_trial
    max_cpus_per_trial: float = Field(4.0, gt=0)  # what one trial holds: workers x cpus_per_worker (or trial_cpus)
    max_gpus_per_trial: float = Field(1.0, ge=0)  # workers x gpus_per_worker

    def problems(self, spec: SweepSpec) -> list[str]:
        """What needs no data: trials, concurrency, retries, resources."""
        search, res, got = spec.search, spec.resources, []
        trials = search.trial_count()
        if trials > self.max_trials:
            got.append(f"{search.searcher().trials_field}: at most {self.max_trials} trials (budget max_trials) "
                       f"expected, but the spec asks for {trials}")
        if search.max_concurrent > self.max_concurrent:
            got.append(f"search.max_concurrent: at most {self.max_concurrent} (budget max_concurrent) expected, "
                       f"but got {search.max_concurrent}")
        if search.max_failures > self.max_failures:
            got.append(f"search.max_failures: at most {self.max_failures} (budget max_failures) expected, "
                       f"but got {search.max_failures}")
        workers = res.workers_per_trial
        if workers > self.max_workers_per_trial:
            got.append(f"resources.workers_per_trial: at most {self.max_workers_per_trial} (budget "
                       f"max_workers_per_trial) expected, but got {workers}")
        cpus = res.trial_cpus if res.resolved_executor() == "in_trial" else workers * res.cpus_per_worker
        if cpus > self.max_cpus_per_trial:
            got.append(f"resources: at most {self.max_cpus_per_trial:g} CPUs per trial (budget max_cpus_per_trial) "
                       f"expected, but the spec asks for {cpus:g}")
        gpus = workers * res.gpus_per_worker
        if gpus > self.max_gpus_per_trial:
            got.append(f"resources: at most {self.max_gpus_per_trial:g} GPUs per trial (budget max_gpus_per_trial) "
                       f"expected, but the spec asks for {workers} x {res.gpus_per_worker:g} = {gpus:g}")
        return got

    def model_problems(self, spec: SweepSpec, dataset: Dataset) -> list[str]:
        """What needs the data (its width, classes and rows): every family's largest fit, the students."""
        width = dataset.x.shape[1]
        if is_table(dataset.x):  # the widest encoding a fit can have: one-hot's
            width = TableEncoding.fit(dataset.x, "onehot").width
        base = spec.base_model_config(width, dataset.n_outputs, dataset.task)
        rows = int(dataset.source_counts.sum())
        fold_rows = math.ceil(rows * (1 - spec.data.test_fraction) * (spec.cv.folds - 1) / spec.cv.folds)
        got, work = [], 0
        for family in spec.families():
            try:
                model_cfg, fit_cfg = split_params({FAMILY_KEY: family, **largest(spec, family)}, base)
            except (ValidationError, ValueError):
                continue  # a value its field refuses: the semantic checks name it
            cost: Cost = get_family(family).cost(model_cfg, fit_cfg, fold_rows)
            if cost.size > self.max_parameters:
                got.append(f"model: at most {self.max_parameters} parameters per model (budget max_parameters) "
                           f"expected, but the space's largest {family} model has {cost.size}")
            work = max(work, cost.work)
        trials = spec.search.trial_count()
        total, parts = trials * spec.cv.fold_count() * work, f"{trials} x {spec.cv.fold_count()} x {work}"
        if spec.distill.enabled:
            candidates = spec.distill.candidates()
            total += len(candidates) * spec.distill.epochs
            parts += f" + {len(candidates)} x {spec.distill.epochs}"
            for i, shape in enumerate(candidates):
                student = shape.model_dump()
                student.pop("dropout")
                count = base.model_copy(update=student).parameter_count() or 0
                if count > self.max_parameters:
                    where = f"distill.sizes.{i}" if spec.distill.sizes else "distill.student"
                    got.append(f"{where}: at most {self.max_parameters} parameters per model (budget "
                               f"max_parameters) expected, but the student has {count}")
        if total > self.max_fold_epochs:
            got.append(f"search: trials x folds x passes of the largest fit (+ students x distillation epochs) <= "
                       f"{self.max_fold_epochs} (budget max_fold_epochs) must hold, but got {parts} = {total}")
        return got


def largest(spec: SweepSpec, family: str) -> dict:
    """The flat hyperparameters of the costliest config of `family` the spec reaches: each key's fixed
    value or the largest number among its dimension's endpoints (sizes and rounds grow with them)."""
    families = spec.families()
    flat: dict = {}
    for where, mapping in (("fixed", spec.search.fixed), ("space", spec.search.space)):
        for raw_key, entry in mapping.items():
            if raw_key == FAMILY_KEY or family not in receivers(raw_key, families):
                continue
            values = [entry] if where == "fixed" else entry.endpoints()
            numbers = [v for v in values if _number(v) is not None]  # "6" epochs is 6 to its field
            flat[scope_of(raw_key)[1]] = max(numbers, key=_number) if numbers else values[0]
    return flat


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
