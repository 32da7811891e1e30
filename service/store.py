"""A sweep on disk: the spec it ran, its held-out split, and every trial's record and artifacts.

Layout under $RAYSEMBLE_HOME (default ./.raysemble):
  sweeps/<name>/spec.json      the validated spec
  sweeps/<name>/split.npz      train_idx, test_idx (indices into the full dataset)
  sweeps/<name>/sweep.json     MLflow ids, storage path, state
  sweeps/<name>/trials.json    one record per finished or failed trial
  sweeps/<name>/trials/<id>/   that trial's fold models, OOF probabilities and curves (local copy)
  sweeps/<name>/attempts.jsonl one line per trial start (kind train, or replay) and per Ray Train worker start (worker)
  sweeps/<name>/driver.lock    flock of the process driving the sweep (service.sweeplock)
  tune/<name>/                 Ray Tune's experiment (default storage_path)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from serving.home import locations
from service.spec import SweepSpec
from trainers.atomic import write_atomic
from trainers.data import Dataset, load_dataset

# sweep.json "state": RUNNING while a driver runs it; INTERRUPTED (Ctrl-C, resumable); STOPPED (its
# driver was stopped: a cancelled job, SIGTERM; resumable too); SUCCEEDED / FAILED when the search ended


def home() -> Path:
    return locations().home


def sweep_dir(name: str) -> Path:
    return home() / "sweeps" / name


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
        """(n_train, n_classes) out-of-fold probabilities in training-split order; every row once."""
        parts = [(np.load(self.checkpoint_dir / f"val_idx_{k}.npy"), np.load(self.checkpoint_dir / f"oof_{k}.npy"))
                 for k in range(len(self.fold_scores))]
        n = sum(len(idx) for idx, _ in parts)
        out = np.full((n, parts[0][1].shape[1]), np.nan)
        for idx, proba in parts:
            out[idx] = proba
        return out

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

    def dataset(self) -> Dataset:
        return load_dataset(self.spec.data)

    def ranked(self) -> list[TrialRecord]:
        done = [t for t in self.trials if t.status == "TERMINATED" and np.isfinite(t.mean_score)]
        return sorted(done, key=lambda t: t.mean_score, reverse=self.spec.search.mode == "max")


class SweepNotFound(LookupError):
    pass


def load_sweep(name: str) -> Sweep:
    directory = sweep_dir(name)
    if not (directory / "spec.json").is_file():
        known = sorted(p.name for p in (home() / "sweeps").glob("*") if (p / "spec.json").is_file())
        raise SweepNotFound(f"NAME: a sweep under {home() / 'sweeps'} expected, but got {name!r} "
                            f"(known: {known})")
    spec = SweepSpec.model_validate_json((directory / "spec.json").read_text())
    split = np.load(directory / "split.npz")
    meta = json.loads((directory / "sweep.json").read_text())
    if meta.get("code_dirs"):  # a family torch sweep: its factory imports from where the spec was
        from trainers.families.factory import add_code_dirs

        add_code_dirs(meta["code_dirs"])
    trials_file = directory / "trials.json"
    trials = [TrialRecord.from_json(t) for t in json.loads(trials_file.read_text())] if trials_file.exists() else []
    return Sweep(name, directory, spec, split["train_idx"], split["test_idx"], trials,
                 meta.get("mlflow_run_id"), meta.get("experiment_id"))


def write_meta(directory: Path, **updates) -> dict:
    """Update sweep.json; callers hold the sweep (service.sweeplock), so no update is lost."""
    path = directory / "sweep.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta.update(updates)
    write_atomic(path, json.dumps(meta, indent=1))
    return meta


def write_trials(directory: Path, trials: list[TrialRecord], metric: str) -> None:
    write_atomic(directory / "trials.json", json.dumps([t.to_json() for t in trials], indent=1))
    # what a restored trial replays instead of training again (trainers.search.Execution.finished_file)
    finished = {t.trial_id: {"checkpoint_dir": str(t.checkpoint_dir),
                             "metrics": {metric: t.mean_score, "fold_scores": t.fold_scores, "epoch": t.epochs}}
                for t in trials if t.status == "TERMINATED"}
    write_atomic(directory / "finished.json", json.dumps(finished))
