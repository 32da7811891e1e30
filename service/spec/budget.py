"""What one sweep may ask of the cluster, set by the operator (`raysemble api` options)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.spec.checks import trial_values
from service.spec.schema import SweepSpec
from trainers.data import Dataset
from trainers.loop import TrainConfig
from trainers.tables import TableEncoding, is_table


class Budget(BaseModel):
    """What one sweep may ask of the cluster; set by the operator (`raysemble api` options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_trials: int = Field(1000, ge=1)  # trials Tune runs (num_trials, or a grid's combinations)
    max_fold_epochs: int = Field(100_000, ge=1)  # trials x folds x (most) epochs
    max_concurrent: int = Field(8, ge=1)  # search.max_concurrent
    max_parameters: int = Field(10_000_000, ge=1)  # per model: the largest of the space, and the student
    max_failures: int = Field(3, ge=0)  # search.max_failures (retries of a dying trial)

    def problems(self, spec: SweepSpec) -> list[str]:
        search, got = spec.search, []
        trials = search.trial_count()
        if trials > self.max_trials:
            where = search.searcher().trials_field
            got.append(f"{where}: at most {self.max_trials} trials (budget max_trials) expected, but the spec "
                       f"asks for {trials}")
        epochs = max(trial_values(spec, "epochs") or [TrainConfig.model_fields["epochs"].default])
        work = trials * spec.cv.folds * epochs
        if work > self.max_fold_epochs:
            got.append(f"search: trials x folds x epochs <= {self.max_fold_epochs} (budget max_fold_epochs) must "
                       f"hold, but got {trials} x {spec.cv.folds} x {epochs} = {work}")
        if search.max_concurrent > self.max_concurrent:
            got.append(f"search.max_concurrent: at most {self.max_concurrent} (budget max_concurrent) expected, "
                       f"but got {search.max_concurrent}")
        if search.max_failures > self.max_failures:
            got.append(f"search.max_failures: at most {self.max_failures} (budget max_failures) expected, "
                       f"but got {search.max_failures}")
        return got

    def model_problems(self, spec: SweepSpec, dataset: Dataset) -> list[str]:
        """Parameter counts need the data's feature and class counts; the space's largest shape counts."""
        shape = {}
        for key in ("hidden", "depth", "channels"):
            values = trial_values(spec, key)
            if values:
                shape[key] = max(values)
        width = dataset.x.shape[1]
        if is_table(dataset.x):  # the widest encoding a fit can have: one-hot's
            width = TableEncoding.fit(dataset.x, "onehot").width
        dims = {"in_features": width, "n_classes": dataset.n_classes}
        base = spec.base_model_config(**dims)
        # per family the space reaches; scikit-learn families have no count (their sizes are bounded
        # by their schemas: trees, iterations, leaves)
        counts = [base.model_copy(update={**shape, "family": f}).parameter_count() for f in spec.families()]
        largest = max((c for c in counts if c is not None), default=0)
        got = []
        if largest > self.max_parameters:
            got.append(f"model: at most {self.max_parameters} parameters per model (budget max_parameters) "
                       f"expected, but the space's largest model has {largest}")
        if spec.distill.enabled:
            for i, shape in enumerate(spec.distill.candidates()):
                student = shape.model_dump()
                student.pop("dropout")
                count = base.model_copy(update=student).parameter_count()
                if count > self.max_parameters:
                    where = f"distill.sizes.{i}" if spec.distill.sizes else "distill.student"
                    got.append(f"{where}: at most {self.max_parameters} parameters per model (budget "
                               f"max_parameters) expected, but the student has {count}")
        return got
