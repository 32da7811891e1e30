"""A sweep as the driver and the post-sweep steps see it: the spec it ran, its held-out split, its
locations, and every trial's record and artifacts. The files behind it are service.sweepdir's.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from serving.home import Locations
from service import sweepdir
from service.spec import SweepSpec
from trainers.data import Dataset, load_dataset


@dataclass
class TrialRecord:
    trial_id: str
    params: dict  # flat hyperparameters of the trial
    status: str  # TERMINATED (ASHA-stopped included) | ERROR
    mean_score: float  # mean over folds of the search metric (nan for failed trials)
    fold_scores: list[float]
    epochs: int = 0  # epochs trained (fewer when ASHA stopped it)
    checkpoint_dir: Path | None = None
    error: str | None = None
    mlflow_run_id: str | None = None

    def fold_model_paths(self) -> list[Path]:
        return [self.checkpoint_dir / f"fold_{k}.pt" for k in range(len(self.fold_scores))]

    def oof(self) -> np.ndarray:
        """(n_train, n_classes) out-of-fold probabilities in training-split order; a row that repeated k-fold
        (cv.repeats) held out once per repeat gets the mean of its repeats' predictions."""
        parts = [(np.load(self.checkpoint_dir / f"val_idx_{k}.npy"), np.load(self.checkpoint_dir / f"oof_{k}.npy"))
                 for k in range(len(self.fold_scores))]
        n = max(int(idx.max()) for idx, _ in parts if len(idx)) + 1
        total, count = np.zeros((n, parts[0][1].shape[1])), np.zeros(n)
        for idx, proba in parts:
            total[idx] += proba
            count[idx] += 1
        with np.errstate(invalid="ignore"):
            return total / count[:, None]  # a row no fold held out (none should be): NaN, as before

    def curves(self) -> list[dict]:
        """Per fold: {"epoch": [...], "train_loss": [...], "val_loss": [...], "val_<metric>": [...]}."""
        return [json.loads((self.checkpoint_dir / f"curves_{k}.json").read_text())
                for k in range(len(self.fold_scores))]

    def to_json(self) -> dict:
        out = asdict(self)
        out["checkpoint_dir"] = str(self.checkpoint_dir) if self.checkpoint_dir else None
        return out

    @classmethod
    def from_json(cls, raw: dict) -> "TrialRecord":
        raw = dict(raw)
        raw["checkpoint_dir"] = Path(raw["checkpoint_dir"]) if raw.get("checkpoint_dir") else None
        return cls(**raw)


@dataclass
class Sweep:
    name: str
    dir: Path
    spec: SweepSpec
    train_idx: np.ndarray
    test_idx: np.ndarray
    trials: list[TrialRecord] = field(default_factory=list)
    mlflow_run_id: str | None = None
    experiment_id: str | None = None
    where: Locations | None = None  # resolved once, when the sweep is prepared or loaded
    meta: dict = field(default_factory=dict)  # sweep.json as last written by this process
    _dataset: Dataset | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.where is None:
            self.where = self.spec.locations()

    @property
    def files(self) -> sweepdir.SweepDir:
        return sweepdir.SweepDir(self.dir)

    def dataset(self) -> Dataset:
        """The rows the split indexes: loaded once per process (the search and the post-sweep steps share it)."""
        if self._dataset is None:
            self._dataset = load_dataset(self.spec.data)
        return self._dataset

    def keep_dataset(self, dataset: Dataset) -> None:
        self._dataset = dataset

    def ranked(self) -> list[TrialRecord]:
        done = [t for t in self.trials if t.status == "TERMINATED"]
        return sweepdir.rank(done, self.spec.search.mode, lambda t: t.mean_score)

    def run_deadline(self) -> float | None:
        """The end of this sweep's time budget (search.time_budget_s from when it last started running),
        for the post-sweep steps that follow that run; None without a budget."""
        started = self.meta.get("started")
        deadlines = self.spec.search.deadlines(float(started), len(self.train_idx)) if started is not None else None
        return deadlines[1] if deadlines else None

    def set_state(self, **updates) -> None:
        """Update sweep.json (the caller holds the sweep: service.sweeplock) and this view of it."""
        self.meta = self.files.write_meta(**updates)

    def save_trials(self, trials: list[TrialRecord]) -> None:
        self.trials = list(trials)
        metric = self.spec.search.metric
        # what a restored trial replays instead of training again (trainers.search.Execution.finished_file)
        finished = {t.trial_id: {"checkpoint_dir": str(t.checkpoint_dir),
                                 "metrics": {metric: t.mean_score, "fold_scores": t.fold_scores, "epoch": t.epochs}}
                    for t in trials if t.status == "TERMINATED"}
        self.files.write_trials([t.to_json() for t in trials], finished)


def describe_data(dataset) -> dict:
    """What a sweep's data is, recorded with it (data.json) and shown by `raysemble validate`."""
    out = {"rows": len(dataset.y), "features": list(dataset.feature_names), "task": dataset.task,
           "classes": list(dataset.classes), "rows_without_target_dropped": dataset.dropped_rows}
    if dataset.task == "regression":
        y = np.asarray(dataset.y, dtype=np.float64)
        out["target"] = {"min": float(y.min()), "max": float(y.max()), "mean": float(y.mean()), "std": float(y.std())}
    if dataset.schema is not None:
        out.update(schema=dataset.schema.model_dump(mode="json"), id_like=list(dataset.schema.id_like))
    return out


def load_sweep(name: str) -> Sweep:
    """A sweep an earlier process prepared (resume, ensemble, distill, a deploy job)."""
    files = sweepdir.existing(name)
    spec = SweepSpec.model_validate_json(files.spec_text())
    train_idx, test_idx = files.split()
    meta = files.meta()
    if meta.get("code_dirs"):  # a family torch sweep: its factory imports from where the spec was
        from trainers.families.factory import add_code_dirs

        add_code_dirs(meta["code_dirs"])
    trials = [TrialRecord.from_json(t) for t in files.trials()]
    return Sweep(name, files.path, spec, train_idx, test_idx, trials, meta.get("mlflow_run_id"),
                 meta.get("experiment_id"), meta=meta)
