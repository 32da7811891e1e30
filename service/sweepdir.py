"""The one owner of a sweep directory on disk: where it is, what its files are called, and how its
state files are read and written. Every other module asks here; nothing else spells a file name.

    <home>/sweeps/<name>/
      spec.json        the validated spec; written last by prepare (its presence marks a complete sweep)
      split.npz        train_idx, test_idx (row ids of the held-out split)
      data.json        what the data is: rows, classes, a table's column schema, rows dropped for a
                       missing target, ID-like columns
      sweep.json       meta: MLflow ids and store, Tune storage, state, code_dirs, created/finished
      trials.json      one record per finished or failed trial
      finished.json    what a restored trial replays instead of training again
      trials/<id>/     that trial's fold models, out-of-fold probabilities and curves (local copy)
      attempts.jsonl   one line per trial start (train, replay) and per Ray Train worker start (worker)
      driver.lock      the driver's flock (service.sweeplock)
      postsweep/       ensemble/ and student/ bundles, state.json (the last post-sweep result)
      report/          report.md and its pictures
      ray_train/       Ray Train runs of the post-sweep steps when no shared storage is named
    <tune storage>/<name>/   Ray Tune's experiment; <name>/train/ the Ray Train runs of its trials

sweep.json "state": RUNNING while a driver runs it; INTERRUPTED (Ctrl-C, resumable); STOPPED (its
driver was stopped: a cancelled job, SIGTERM; resumable too); SUCCEEDED / FAILED when the search ended.

Nothing heavy is imported (no spec, no torch): the cluster's read-only commands use this too. The home
itself (RAYSEMBLE_HOME and its defaults) is resolved by serving.home, the lowest layer that needs it.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

from serving.home import CLUSTER_HOME, locations
from service import sweeplock
from trainers.atomic import atomic_file, write_atomic

SWEEPS = "sweeps"
SPEC, SPLIT, META, TRIALS, FINISHED, ATTEMPTS, DATA = (
    "spec.json", "split.npz", "sweep.json", "trials.json", "finished.json", "attempts.jsonl", "data.json")
TRIAL_DIRS, POSTSWEEP, STATE, REPORT, RAY_TRAIN = "trials", "postsweep", "state.json", "report", "ray_train"
TUNE_TRAIN = "train"  # below a sweep's Tune experiment: its trials' Ray Train runs
STATES = ("RUNNING", "INTERRUPTED", "STOPPED", "SUCCEEDED", "FAILED")
RESUMABLE = ("INTERRUPTED", "STOPPED", "FAILED")

T = TypeVar("T")


def home() -> Path:
    return locations().home


def sweeps_root(root: str | Path | None = None) -> Path:
    """<home>/sweeps; root: a home given explicitly (a job's metadata names the cluster's)."""
    base = home() if root is None else Path(os.path.expanduser(str(root))).resolve()
    return base / SWEEPS


def of(name: str, root: str | Path | None = None) -> "SweepDir":
    return SweepDir(sweeps_root(root) / name)


class SweepNotFound(LookupError):
    pass


def existing(name: str) -> "SweepDir":
    """The directory of a complete sweep of this name, or SweepNotFound naming the known ones. Light (no
    spec, no torch): the CLI asks this before importing what a sweep needs, so a typo is answered at once."""
    files = of(name)
    if not files.exists():
        raise SweepNotFound(f"NAME: a sweep under {sweeps_root()} expected, but got {name!r} (known: {known()})")
    return files


def cluster_home(recorded: str | None) -> str:
    """A submitted sweep's home as its job recorded it (None or empty: the cluster default)."""
    return recorded or CLUSTER_HOME


def known(root: str | Path | None = None) -> list[str]:
    """Names of the complete sweeps under a home."""
    return sorted(p.name for p in sweeps_root(root).glob("*") if (p / SPEC).is_file())


def tune_path(storage: str, name: str, *parts: str) -> str:
    """A path below Tune storage (a local directory, or any URI Ray accepts, s3://...)."""
    if "://" in storage:
        return "/".join([storage.rstrip("/"), name, *parts])
    return str(Path(storage, name, *parts))


def rank(items: Iterable[T], mode: str, score: Callable[[T], float | None]) -> list[T]:
    """Items with a finite score, best first for mode "max" or "min" (the one ranking rule)."""
    scored = [i for i in items if isinstance(score(i), (int, float)) and math.isfinite(score(i))]
    return sorted(scored, key=score, reverse=mode == "max")


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


class SweepDir:
    """One sweep's directory; paths and state files. Callers that write hold the sweep (sweeplock)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"SweepDir({str(self.path)!r})"

    # ------------------------------------------------------------------ paths
    spec_file = property(lambda self: self.path / SPEC)
    split_file = property(lambda self: self.path / SPLIT)
    data_file = property(lambda self: self.path / DATA)
    meta_file = property(lambda self: self.path / META)
    trials_file = property(lambda self: self.path / TRIALS)
    finished_file = property(lambda self: self.path / FINISHED)
    attempts_file = property(lambda self: self.path / ATTEMPTS)
    postsweep = property(lambda self: self.path / POSTSWEEP)
    state_file = property(lambda self: self.path / POSTSWEEP / STATE)
    report = property(lambda self: self.path / REPORT)
    ray_train = property(lambda self: self.path / RAY_TRAIN)

    def trial(self, trial_id: str) -> Path:
        return self.path / TRIAL_DIRS / trial_id

    def bundle(self, kind: str) -> Path:
        """A post-sweep bundle: "ensemble" or "student"."""
        return self.path / POSTSWEEP / kind

    def exists(self) -> bool:
        """A complete sweep: prepare writes spec.json last."""
        return self.spec_file.is_file()

    def readable(self) -> bool:
        return self.meta_file.is_file()

    # ------------------------------------------------------------------ writes (the driver holds the sweep)
    def write_spec(self, text: str) -> None:
        # 0600: it may hold serve.token
        write_atomic(self.spec_file, text, mode=0o600)

    def write_split(self, train_idx, test_idx) -> None:
        import numpy as np

        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.split_file) as f:
            np.savez(f, train_idx=train_idx, test_idx=test_idx)

    def write_data(self, description: dict) -> None:
        write_atomic(self.data_file, json.dumps(description, indent=1))

    def write_meta(self, **updates) -> dict:
        meta = self.meta()
        meta.update(updates)
        write_atomic(self.meta_file, json.dumps(meta, indent=1))
        return meta

    def write_trials(self, records: Sequence[dict], finished: dict) -> None:
        """records: trials.json's rows; finished: {trial_id: {"checkpoint_dir", "metrics"}} of the
        trials a restored sweep replays (trainers.search reads it from finished_file)."""
        write_atomic(self.trials_file, json.dumps(list(records), indent=1))
        write_atomic(self.finished_file, json.dumps(finished))

    def write_state(self, result: dict) -> None:
        write_atomic(self.state_file, json.dumps(result, indent=1))

    # ------------------------------------------------------------------ reads
    def spec_text(self) -> str:
        return self.spec_file.read_text()

    def split(self):
        import numpy as np

        with np.load(self.split_file) as split:
            return split["train_idx"], split["test_idx"]

    def data(self) -> dict:
        found = _read_json(self.data_file, {})
        return found if isinstance(found, dict) else {}

    def meta(self) -> dict:
        found = _read_json(self.meta_file, {})
        return found if isinstance(found, dict) else {}

    def trials(self) -> list[dict]:
        found = _read_json(self.trials_file, [])
        return found if isinstance(found, list) else []

    def state(self) -> dict:
        found = _read_json(self.state_file, {})
        return found if isinstance(found, dict) else {}

    def registered(self) -> dict:
        """{kind: {"name", "version", "uri"}} of the models the post-sweep steps registered."""
        return self.state().get("registered") or {}

    def attempts(self) -> list[dict]:
        out = []
        try:
            lines = self.attempts_file.read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line being written
        return out

    def settle(self, running_state: str, settled: str, ended: float | None, command: str) -> bool:
        """Record that a sweep whose driver died (sweep.json still says running_state) ended as
        `settled`, unless the state moved meanwhile. False when a driver holds the sweep (it is running
        it: the state is its to write); an unwritable directory is left as it is (the answer holds)."""
        try:
            with sweeplock.hold(self.path, command):
                meta = _read_json(self.meta_file, None)
                if isinstance(meta, dict) and meta.get("state") == running_state:
                    meta.update(state=settled, finished=meta.get("finished") or ended or time.time())
                    write_atomic(self.meta_file, json.dumps(meta, indent=1))
        except sweeplock.SweepBusy:
            return False
        except OSError:
            pass
        return True
