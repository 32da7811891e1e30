"""From Tune's trials to the sweep's records: each finished or failed trial becomes a TrialRecord
(its checkpoint copied into the sweep directory, trials.json rewritten, its MLflow runs logged)."""
from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
from ray import tune

from service import tracking
from service.store import Sweep, TrialRecord
from trainers.families.scope import effective_params

log = logging.getLogger("raysemble")


class Recorder:
    """Turns finished Tune trials into TrialRecords: local artifact copy, trials.json, MLflow runs."""

    def __init__(self, sweep: Sweep, y_train: np.ndarray, deadline: float | None = None):
        self.sweep, self.y_train, self.deadline = sweep, y_train, deadline  # deadline: the search's (budget)
        self.records = {t.trial_id: t for t in sweep.trials}
        self.client = tracking.client_for(sweep.where)

    def record(self, trial_id: str, config: dict, result: dict, checkpoint,
               error: str | None) -> TrialRecord | None:
        """The trial's record (None for a trial that started after the search's deadline: it trained nothing)."""
        if trial_id in self.records and self.records[trial_id].status == "TERMINATED":
            return self.records[trial_id]
        if (error is None and checkpoint is None and not result.get("checkpoint_path") and self.deadline is not None
                and time.time() >= self.deadline):
            return None
        local = None
        path = result.get("checkpoint_path")
        if checkpoint is not None or path:
            from ray.train import Checkpoint

            local = self.sweep.files.trial(trial_id)
            shutil.rmtree(local, ignore_errors=True)
            (checkpoint or Checkpoint(path)).to_directory(str(local))
        spec = self.sweep.spec
        metric = spec.search.metric
        # scores come from the checkpoint's own curves, not Tune's last result: with buffered
        # results a trial can report past its last checkpoint before the scheduler stops it
        curves = _fold_curves(local, spec.cv.fold_count()) if local else None
        ok = error is None and curves is not None
        folds = [float(c[f"val_{metric}"][-1]) for c in curves] if ok else []
        # the flat hyperparameters its family trained with (searchers nest or scope keys)
        params = effective_params(dict(config), spec.model.family)
        record = TrialRecord(trial_id, params, "TERMINATED" if ok else "ERROR",
                             float(np.mean(folds)) if ok else math.nan, folds,
                             int(curves[0]["epoch"][-1]) if ok else 0, local if ok else None, error)
        self.records[trial_id] = record
        self.sweep.save_trials(list(self.records.values()))
        self._log(record)
        return record

    def _log(self, record: TrialRecord) -> None:
        try:
            record.mlflow_run_id = tracking.log_trial(self.client, self.sweep.experiment_id, self.sweep.mlflow_run_id,
                                                      record, self.y_train, self.sweep.spec.search.metric,
                                                      self.sweep.dataset().classes)
        except Exception as err:  # tracking trouble must not lose a trained trial; finish() retries
            log.warning("MLflow logging of trial %s failed (%s); will retry at the end", record.trial_id, err)

    def finish(self) -> list[TrialRecord]:
        for record in self.records.values():
            if record.mlflow_run_id is None:
                self._log(record)
        self.sweep.save_trials(list(self.records.values()))
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
