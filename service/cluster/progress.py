"""How a submitted sweep is doing, read where its job writes: the sweep directory (service.sweepdir)
when this machine can read it, else the MLflow store its job names; the job table otherwise.

A driver killed before it could record its end (SIGKILL after a cancel's SIGTERM, a crash) leaves
sweep.json at RUNNING: once its job has ended, the sweep settles to STOPPED or FAILED here."""
from __future__ import annotations

import math
from pathlib import Path

from service import sweepdir
from service.cluster.client import call
from service.cluster.jobs import (COMMAND, EXPERIMENT, HOME, KIND, METRIC, MLFLOW, MODE, PARENT, SWEEP, TOTAL,
                                  current_job, get_job, message, raysemble_jobs, seconds, state)


def sweep_files(metadata: dict) -> sweepdir.SweepDir:
    return sweepdir.of(metadata[SWEEP], sweepdir.cluster_home(metadata.get(HOME)))


def _finite(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def trials(metadata: dict) -> list[dict] | None:
    """Every trial seen so far (finished, failed or running) with the nodes it ran on; None where
    the sweep directory cannot be read from here."""
    files = sweep_files(metadata)
    if not files.readable():
        return None
    records = {t["trial_id"]: t for t in files.trials()}
    tried: dict[str, list[dict]] = {}
    for a in files.attempts():
        tried.setdefault(a.get("trial_id"), []).append(a)
    out = []
    for trial_id in list(records) + [t for t in tried if t not in records]:
        rec = records.get(trial_id, {})
        # a "worker" line is one of a ray_train attempt's workers, not an attempt of its own
        runs = [a for a in tried.get(trial_id, []) if a.get("kind") != "worker"]
        workers = [a for a in tried.get(trial_id, []) if a.get("kind") == "worker"]
        out.append({"trial_id": trial_id, "status": rec.get("status", "RUNNING"), "params": rec.get("params"),
                    "mean": _finite(rec.get("mean_score")), "folds": rec.get("fold_scores"),
                    "epochs": rec.get("epochs"), "error": rec.get("error"),
                    "mlflow_run_id": rec.get("mlflow_run_id"), "attempts": len(runs),
                    "node_ids": [a["node_id"] for a in runs if a.get("node_id")],
                    "worker_node_ids": [a["node_id"] for a in workers if a.get("node_id")]})
    return out


def progress(metadata: dict) -> dict:
    """trials done/total, best so far, MLflow run and registered models, from the sweep dir, else MLflow."""
    out = {"sweep_state": None, "trials_total": int(metadata.get(TOTAL) or 0), "trials_done": None,
           "trials_failed": None, "trials_running": None, "best": None, "mlflow_uri": metadata.get(MLFLOW) or None,
           "experiment_id": None, "mlflow_run_id": None, "registered": {}, "source": None}
    seen = trials(metadata)
    if seen is not None:
        files = sweep_files(metadata)
        meta = files.meta()
        done = [t for t in seen if t["status"] == "TERMINATED" and t["mean"] is not None]
        out.update(sweep_state=meta.get("state"), trials_done=len(done),
                   trials_failed=sum(t["status"] == "ERROR" for t in seen),
                   trials_running=sum(t["status"] == "RUNNING" for t in seen),
                   mlflow_uri=meta.get("mlflow_uri") or out["mlflow_uri"], experiment_id=meta.get("experiment_id"),
                   mlflow_run_id=meta.get("mlflow_run_id"), registered=files.registered(), source="sweep_dir")
        best = sweepdir.rank(done, metadata.get(MODE) or "max", lambda t: t["mean"])
        if best:
            out["best"] = {"trial_id": best[0]["trial_id"], "metric": metadata.get(METRIC), "value": best[0]["mean"],
                           "params": best[0]["params"]}
        return out
    from_mlflow = _mlflow_progress(metadata)
    if from_mlflow:
        out.update(from_mlflow, source="mlflow")
    return out


def _mlflow_progress(metadata: dict) -> dict | None:
    uri = metadata.get(MLFLOW) or ""
    local = uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")).is_file()
    if not (uri.startswith(("http://", "https://", "databricks")) or local):
        return None
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(metadata.get(EXPERIMENT) or metadata[SWEEP])
        if experiment is None:
            return None
        parents = client.search_runs([experiment.experiment_id], f"tags.`raysemble.sweep` = '{metadata[SWEEP]}'",
                                     order_by=["attributes.start_time DESC"], max_results=1)
        if not parents:
            return None
        parent = parents[0]
        children = client.search_runs([experiment.experiment_id],
                                      f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=10_000)
    except Exception:  # a tracking server that does not answer leaves the job state alone
        return None
    key = f"cv_{metadata.get(METRIC)}"
    done = [r for r in children if r.info.status == "FINISHED" and key in r.data.metrics]
    out = {"experiment_id": experiment.experiment_id, "mlflow_run_id": parent.info.run_id,
           "sweep_state": {"RUNNING": "RUNNING", "FINISHED": "SUCCEEDED",
                           "KILLED": "STOPPED"}.get(parent.info.status, "FAILED"),
           "trials_done": len(done), "trials_failed": sum(r.info.status == "FAILED" for r in children)}
    best = sweepdir.rank(done, metadata.get(MODE) or "max", lambda r: r.data.metrics[key])
    if best:
        out["best"] = {"trial_id": best[0].data.tags.get("raysemble.trial_id"), "metric": metadata.get(METRIC),
                       "value": best[0].data.metrics[key], "params": dict(best[0].data.params)}
    return out


def describe(job, deployments: list | None = None) -> dict:
    meta = job.metadata or {}
    out = {"id": job.submission_id, "name": meta.get(SWEEP), "state": state(job), "message": message(job),
           "command": meta.get(COMMAND), "submitted": seconds(job.start_time), "ended": seconds(job.end_time)}
    out.update(progress(meta))
    out["sweep_state"] = settle(meta, out["state"], out["sweep_state"], out["source"], seconds(job.end_time))
    if deployments is not None:
        out["deployments"] = [{"id": d.submission_id, "state": state(d), "message": message(d),
                               "submitted": seconds(d.start_time)} for d in deployments]
    return out


def settle(metadata: dict, job_state: str, sweep_state: str | None, source: str | None,
           ended: float | None) -> str | None:
    """The sweep's state given its job's: a sweep still RUNNING (or INTERRUPTED) whose job has ended
    is STOPPED (job stopped) or FAILED. Written back to sweep.json when the sweep dir is here and no
    driver holds the sweep (one that does, e.g. a local `raysemble resume`, is running it)."""
    if job_state == "STOPPED" and sweep_state in ("RUNNING", "INTERRUPTED"):
        settled = "STOPPED"
    elif job_state == "FAILED" and sweep_state == "RUNNING":
        settled = "FAILED"
    else:
        return sweep_state
    if source != "sweep_dir":
        return settled
    return settled if sweep_files(metadata).settle(sweep_state, settled, ended, "raysemble status") else sweep_state


def list_sweeps(client) -> list[dict]:
    resumed: dict[str, object] = {}
    for j in raysemble_jobs(client, "resume"):  # oldest first: the last one wins
        resumed[j.metadata.get(PARENT)] = j
    return [{**describe(resumed.get(j.submission_id, j)), "id": j.submission_id} for j in raysemble_jobs(client)]


def status(client, sweep_id: str) -> dict:
    from service.cluster.scaling import cluster_scaling

    first = get_job(client, sweep_id)
    children = [j for j in raysemble_jobs(client, None) if j.metadata.get(PARENT) == sweep_id]  # one read
    resumed = [j for j in children if j.metadata[KIND] == "resume"]
    deploys = [j for j in children if j.metadata[KIND] == "deploy"]
    out = describe(resumed[-1] if resumed else first, deploys)
    out["id"] = sweep_id
    out["jobs"] = [first.submission_id] + [j.submission_id for j in resumed]
    # while it runs, what the cluster waits for (its trials may be among it) and is launching
    out["scaling"] = cluster_scaling(client) if out["state"] in ("PENDING", "RUNNING") else None
    return out


def sweep_trials(client, sweep_id: str) -> dict:
    job = get_job(client, sweep_id)
    seen = trials(job.metadata)
    return {"id": sweep_id, "state": state(job), "trials_total": int(job.metadata.get(TOTAL) or 0),
            "trials": seen, "readable": seen is not None}
