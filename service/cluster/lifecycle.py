"""A sweep's life as Ray Jobs: submit, wait, logs, cancel, resume (a new job continuing it) and deploy
(a job that serves its registered models and exits, leaving the Serve application running).

The job's metadata names the sweep, where it writes (RAYSEMBLE_HOME and the MLflow URI, as paths on
the cluster) and the trial count, so every command reads state from Ray Jobs, the sweep directory and
MLflow (service.cluster.progress), and keeps none of its own."""
from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from service import sweepdir
from service.cluster.client import Conflict, JobsError, call, first_line
from service.cluster.jobs import (COMMAND, COMMANDS, EXPERIMENT, HOME, KIND, METRIC, MLFLOW, MODE, PARENT, ROOTS,
                                  SWEEP, TERMINAL, TOTAL, current_job, get_job, new_id, raysemble_jobs, resume_jobs,
                                  state)
from service.cluster.package import SPEC_FILE, entrypoint, runtime_env
from service.cluster.progress import progress

if TYPE_CHECKING:  # importing the spec pulls in torch: the read-only commands do without
    from service.spec import SweepSpec


def submit(client, spec: "SweepSpec", *, home: str | None = None, mlflow_uri: str | None = None,
           command: str = "run", home_is_local: bool = False, code_dirs: Iterable[Path] = (),
           data_roots: Iterable[str | Path] = ()) -> dict:
    """Submit a validated spec as a Ray Job; returns {"id", "name", "command"}. The job runs
    `python -m service.jobrun pipeline --command run|sweep spec.json`.

    code_dirs: where a model.factory module may lie to travel with the job (`raysemble submit`: the
    spec's directory and the cwd; the REST API: none, its allowed modules are installed on the cluster).
    data_roots: what the spec was checked against; the job (and a later resume) opens its data inside them.

    home / mlflow_uri: RAYSEMBLE_HOME and MLFLOW_TRACKING_URI for the job, as paths on the cluster
    (None: ~/.raysemble and SQLite under it, chosen on the cluster). A spec whose name another
    raysemble job on this cluster already used is refused (the sweep directory would clash), and so
    is one whose sweep directory exists where home_is_local says home is this machine's filesystem.
    """
    if command not in COMMANDS:
        raise JobsError(f"command: one of {list(COMMANDS)} expected, but got {command!r}")
    for job in raysemble_jobs(client):
        if job.metadata.get(SWEEP) == spec.name:
            raise Conflict(f"name: a sweep name not used on this cluster expected, but {spec.name!r} is sweep "
                           f"{job.submission_id} ({job.status}); choose another name")
    if home_is_local and home and sweepdir.of(spec.name, home).exists():
        raise Conflict(f"name: a sweep name not used under {home} expected, but {spec.name!r} exists there; "
                       f"choose another name")
    sweep_id = new_id(spec.name)
    metadata = {KIND: "sweep", SWEEP: spec.name, HOME: sweepdir.cluster_home(home), MLFLOW: mlflow_uri or "",
                TOTAL: str(spec.search.trial_count()), METRIC: spec.search.metric, MODE: spec.search.mode,
                EXPERIMENT: spec.experiment(), COMMAND: command,
                ROOTS: os.pathsep.join(str(r) for r in data_roots)}
    if spec.tracking.mlflow_uri:
        metadata[MLFLOW] = spec.tracking.mlflow_uri
    with runtime_env(home, mlflow_uri, spec, code_dirs, [str(r) for r in data_roots]) as env:
        def submit_job():
            try:
                return client.submit_job(entrypoint=entrypoint("pipeline", "--command", command, SPEC_FILE),
                                         submission_id=sweep_id, runtime_env=env, metadata=metadata)
            except RuntimeError as err:
                # the check above only makes the usual message clear; this refusal is the atomic one
                # (Ray's job table adds a submission id only if absent)
                if f"submission_id {sweep_id} already exists" in str(err):
                    raise Conflict(f"name: a sweep name not used on this cluster expected, but {spec.name!r} is "
                                   f"sweep {sweep_id} (submitted at the same time by another caller); choose "
                                   f"another name") from None
                raise

        call(submit_job)
    return {"id": sweep_id, "name": spec.name, "command": command}


def _job_home(meta: dict) -> tuple[str | None, str | None, None, tuple, list[str]]:
    """runtime_env's arguments for a follow-up job of a sweep: its first job's home, MLflow URI and
    data roots (the cluster's defaults left for the job to choose), no spec, no code."""
    home = meta.get(HOME)
    roots = [r for r in (meta.get(ROOTS) or "").split(os.pathsep) if r]
    return (home if home != sweepdir.cluster_home(None) else None), (meta.get(MLFLOW) or None), None, (), roots


def wait(client, sweep_id: str, timeout_s: float, poll_s: float = 1.0, kind: str = "sweep") -> str:
    """Poll until the job is terminal (or timeout); returns the last state."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(client, sweep_id, kind)
        now = state(current_job(client, job) if kind == "sweep" else job)
        if now in TERMINAL or time.monotonic() >= deadline:
            return now
        time.sleep(poll_s)


def logs(client, sweep_id: str) -> str:
    """The output of every job of the sweep (the first, then each resume), in order."""
    first = get_job(client, sweep_id)
    return "".join(call(client.get_job_logs, j.submission_id) for j in [first, *resume_jobs(client, sweep_id)])


def follow(client, sweep_id: str) -> Iterator[str]:
    """Log chunks as the job now driving the sweep writes them, until it ends."""
    job = current_job(client, get_job(client, sweep_id))
    loop = asyncio.new_event_loop()
    stream = client.tail_job_logs(job.submission_id).__aiter__()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
            except Exception as err:  # the log stream dropped: the caller reads the job state instead
                yield f"\n[raysemble] log stream ended early: {first_line(err)}\n"
                return
    finally:
        loop.run_until_complete(stream.aclose())
        loop.close()


def cancel(client, sweep_id: str) -> dict:
    job = current_job(client, get_job(client, sweep_id))
    now = state(job)
    stopped = False if now in TERMINAL else bool(call(client.stop_job, job.submission_id))
    return {"id": sweep_id, "job": job.submission_id, "stopped": stopped, "state": "STOPPING" if stopped else now}


def resume(client, sweep_id: str) -> dict:
    """Continue a stopped or failed submitted sweep as a new Ray Job (`raysemble resume NAME` on the
    cluster, the sweep dir and Tune's experiment state read where the first job wrote them): finished
    trials are not trained again. Its command (run: then ensemble, distill, register) is the first job's."""
    first = get_job(client, sweep_id)
    resumed = resume_jobs(client, sweep_id)
    job = resumed[-1] if resumed else first
    now = state(job)
    if now not in TERMINAL:
        raise Conflict(f"ID: a sweep that has ended expected for resume, but {sweep_id} is {now} "
                       f"(job {job.submission_id}); cancel it first")
    meta = first.metadata
    if now == "SUCCEEDED" and progress(meta)["sweep_state"] in (None, "SUCCEEDED"):
        raise Conflict(f"ID: a stopped or failed sweep expected for resume, but {sweep_id} SUCCEEDED")
    resume_id = f"{sweep_id}-resume{len(resumed) + 1}"
    command = meta.get(COMMAND) or "run"
    with runtime_env(*_job_home(meta)) as env:
        call(lambda: client.submit_job(entrypoint=entrypoint("resume", "--command", command, meta[SWEEP]),
                                       submission_id=resume_id, runtime_env=env,
                                       metadata={**meta, KIND: "resume", PARENT: sweep_id}))
    return {"id": sweep_id, "job": resume_id, "name": meta[SWEEP], "command": command}


def deploy(client, sweep_id: str) -> dict:
    """Serve the sweep's registered ensemble and student: a Ray Job that runs serving.app.serve_models
    on the cluster and exits, leaving the Serve application running."""
    job = get_job(client, sweep_id)
    meta = job.metadata
    now = state(job)
    if now != "SUCCEEDED":
        raise Conflict(f"ID: a SUCCEEDED sweep expected for deploy, but {sweep_id} is {now}")
    prog = progress(meta)
    if prog["source"] == "sweep_dir" and not prog["registered"]:
        raise Conflict(f"ID: a sweep with registered models expected for deploy, but {sweep_id} has none "
                       f"(it ran `raysemble {meta.get(COMMAND)}`; the full pipeline `raysemble run` registers "
                       f"the ensemble and the student)")
    deploy_id = f"{sweep_id}-deploy-{secrets.token_hex(2)}"
    with runtime_env(*_job_home(meta)) as env:
        call(lambda: client.submit_job(entrypoint=entrypoint("deploy", meta[SWEEP]), submission_id=deploy_id,
                                       runtime_env=env,
                                       metadata={KIND: "deploy", SWEEP: meta[SWEEP], PARENT: sweep_id,
                                                 HOME: meta.get(HOME, ""), MLFLOW: meta.get(MLFLOW, "")}))
    return {"id": deploy_id, "sweep": sweep_id, "registered": prog["registered"]}


def deployed_url(client, deploy_id: str) -> dict:
    """{"url", "app"} a finished deploy job printed (its last JSON line), or {}."""
    import json

    for line in reversed(call(client.get_job_logs, deploy_id).strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            return {"url": found.get("url"), "app": found.get("app")}
    return {}
