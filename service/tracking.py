"""MLflow records: a parent run per sweep, a child per trial, a grandchild per fold."""
from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from serving.home import Locations
from service.spec import SweepSpec
from service.store import TrialRecord
from trainers.metrics import all_scores, confusion
from trainers.task import task_of_metric

if TYPE_CHECKING:
    from service.judge import JudgeRow
    from service.store import Sweep
    from trainers.ensemble.predictor import EnsemblePredictor

SWEEP_TAG, TRIAL_TAG, FOLD_TAG = "raysemble.sweep", "raysemble.trial_id", "raysemble.fold"
_PARENT = "mlflow.parentRunId"


def client_for(where: Locations) -> MlflowClient:
    where.prepare()
    return MlflowClient(tracking_uri=where.mlflow_uri, registry_uri=where.registry_uri)


def _flatten(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return out


def start_sweep_run(client: MlflowClient, spec: SweepSpec, where: Locations) -> tuple[str, str]:
    """Create the sweep's parent run; returns (experiment_id, run_id)."""
    experiment = client.get_experiment_by_name(spec.experiment())
    if experiment:
        experiment_id = experiment.experiment_id
    else:
        experiment_id = client.create_experiment(spec.experiment(), artifact_location=where.artifact_location)
    run = client.create_run(experiment_id, tags={SWEEP_TAG: spec.name, "mlflow.runName": spec.name})
    flat = _flatten("", spec.model_dump(mode="json", exclude={"serve": {"token"}}), {})
    params = [Param(k, str(v)[:6000]) for k, v in flat.items()]
    for start in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[start:start + 100])
    client.log_text(run.info.run_id, spec.model_dump_json(indent=1, exclude={"serve": {"token"}}), "spec.json")
    return experiment_id, run.info.run_id


def _confusion_png(matrix: list[list[int]], title: str, labels: list[str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 3.2), dpi=80)
    ax.imshow(np.asarray(matrix), cmap="Blues")
    ax.set(title=title, xlabel="predicted", ylabel="true")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, fontsize=6, rotation=45)
    ax.set_yticks(ticks, labels, fontsize=6)
    for (i, j), v in np.ndenumerate(np.asarray(matrix)):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _log_confusion(client: MlflowClient, run_id: str, matrix: list[list[int]], title: str, classes: list,
                   png: bool = True) -> None:
    """The matrix with its axes labelled by the user's class labels (rows true, columns predicted)."""
    labels = [str(c) for c in classes]
    client.log_dict(run_id, {"labels": labels, "matrix": matrix}, "confusion_matrix.json")
    if png:
        client.log_image(run_id, _png_image(_confusion_png(matrix, title, labels)), "confusion_matrix.png")


def _residual_png(actual: np.ndarray, predicted: np.ndarray, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from service.report import draw_regression

    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2), dpi=80)
    draw_regression(axes, actual, predicted, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _log_outcome(client: MlflowClient, run_id: str, y: np.ndarray, out: np.ndarray, title: str, classes: list,
                 task: str, png: bool = True) -> None:
    """What a classifier's confusion matrix is to classes, for either task: the matrix, or for a regression
    target the predicted-vs-actual and residual plots (a picture only: the numbers are the OOF arrays)."""
    if task == "regression":
        if png:
            client.log_image(run_id, _png_image(_residual_png(y, out[:, 0], title)), "predicted_vs_actual.png")
        return
    _log_confusion(client, run_id, confusion(y, out), title, classes, png)


def _png_image(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data))


def find_trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str) -> str | None:
    runs = client.search_runs([experiment_id], f"tags.{TRIAL_TAG} = '{trial_id}' and "
                              f"tags.`{_PARENT}` = '{parent_run_id}'", max_results=1)
    return runs[0].info.run_id if runs else None


def log_trial(client: MlflowClient, experiment_id: str, parent_run_id: str, record: TrialRecord,
              y_train: np.ndarray, metric: str, classes: list) -> str:
    """One child run for the trial and one grandchild per fold; idempotent per trial id."""
    existing = find_trial_run(client, experiment_id, parent_run_id, record.trial_id)
    if existing:
        return existing
    tags = {_PARENT: parent_run_id, TRIAL_TAG: record.trial_id, "mlflow.runName": f"trial-{record.trial_id}"}
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in record.params.items()],
                     tags=[RunTag("raysemble.status", record.status)])
    if record.status != "TERMINATED" or record.checkpoint_dir is None:
        if record.error:
            client.log_text(run_id, record.error, "error.txt")
        client.set_terminated(run_id, "FAILED")
        return run_id
    oof, task = record.oof(), task_of_metric(metric)
    summary = {f"cv_{metric}": record.mean_score, "epochs": record.epochs}
    summary.update({f"oof_{k}": v for k, v in all_scores(y_train, oof, task).items() if np.isfinite(v)})
    summary.update({f"fold{k}_{metric}": s for k, s in enumerate(record.fold_scores)})
    curves = record.curves()
    history = []
    for key in curves[0]:
        if key == "epoch":
            continue
        for step, epoch in enumerate(curves[0]["epoch"]):
            history.append(Metric(f"mean_{key}", float(np.mean([c[key][step] for c in curves])), 0, int(epoch)))
    client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in summary.items()] + history)
    _log_outcome(client, run_id, y_train, oof, f"trial {record.trial_id} (OOF)", classes, task)
    for k, curve in enumerate(curves):
        _log_fold(client, experiment_id, run_id, record, k, curve, y_train, classes, task)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _log_fold(client: MlflowClient, experiment_id: str, trial_run_id: str, record: TrialRecord, k: int,
              curve: dict, y_train: np.ndarray, classes: list, task: str = "classification") -> None:
    tags = {_PARENT: trial_run_id, TRIAL_TAG: record.trial_id, FOLD_TAG: str(k),
            "mlflow.runName": f"trial-{record.trial_id}-fold{k}"}
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    metrics = [Metric(key, float(v), 0, int(e)) for key in curve if key != "epoch"
               for e, v in zip(curve["epoch"], curve[key])]
    idx = np.load(record.checkpoint_dir / f"val_idx_{k}.npy")
    proba = np.load(record.checkpoint_dir / f"oof_{k}.npy")
    final = {f"final_{name}": v for name, v in all_scores(y_train[idx], proba, task).items() if np.isfinite(v)}
    metrics += [Metric(name, float(v), 0, 0) for name, v in final.items()]
    client.log_batch(run_id, metrics=metrics, params=[Param("fold", str(k))])
    # JSON only: a picture per fold costs the driver ~0.1 s each; the trial run has the OOF picture
    _log_outcome(client, run_id, y_train[idx], proba, f"trial {record.trial_id} fold {k}", classes, task, png=False)
    with tempfile.TemporaryDirectory() as tmp:
        # the fold model, under its own name so a download needs no renaming
        src = record.checkpoint_dir / f"fold_{k}.pt"
        dst = Path(tmp) / src.name
        dst.write_bytes(src.read_bytes())
        client.log_artifact(run_id, str(dst), "checkpoint")
    client.set_terminated(run_id, "FINISHED")


def log_judgement(sweep: "Sweep", rows: "list[JudgeRow]", report_dir: Path, classes: list) -> None:
    """The held-out judgement on the sweep's parent run: test metrics, confusion matrices, the report."""
    if sweep.mlflow_run_id is None:
        return
    client = MlflowClient()
    now = int(time.time() * 1000)
    metrics = [Metric(f"test_{r.model}_{k}", v, now, 0) for r in rows for k, v in r.metrics().items()]
    client.log_batch(sweep.mlflow_run_id, metrics=metrics)
    if any(r.confusion is not None for r in rows):
        # rows: true label, columns: predicted label, in `labels` order (the user's labels)
        client.log_dict(sweep.mlflow_run_id, {"labels": [str(c) for c in classes],
                                              "matrices": {r.model: r.confusion for r in rows}}, "test/confusion.json")
    client.log_dict(sweep.mlflow_run_id, {r.model: {"family": r.family, "trial_id": r.trial_id} for r in rows},
                    "test/models.json")
    client.log_artifacts(sweep.mlflow_run_id, str(report_dir), "report")


def register_bundle(sweep: "Sweep", kind: str, bundle_dir: Path, row: "JudgeRow", example: np.ndarray,
                    predictor: "EnsemblePredictor") -> dict:
    """Logs a bundle as a pyfunc model under the sweep's run and registers it as <sweep>-<kind>."""
    from serving.mlflow_model import log_and_register

    tags = {"sweep": sweep.name, "kind": kind, **{f"test_{k}": v for k, v in row.metrics().items()}}
    name, version = log_and_register(bundle_dir, f"{sweep.name}-{kind}", example, tags, run_id=sweep.mlflow_run_id,
                                     predictor=predictor)
    return {"name": name, "version": version, "uri": f"models:/{name}/{version}"}
