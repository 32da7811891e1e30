"""raysemble's view of a cluster's Ray Jobs table: which jobs are sweeps (their metadata says), their
ids, and the job now driving a sweep. The table is the only state: nothing is kept here.

A submitted sweep is one Ray Job whose submission id is the sweep id (`<spec name>-<6 hex>`, the hex
derived from the name: Ray's job table, which refuses a second job of one submission id atomically,
is what makes two simultaneous submissions of one name end with exactly one job). A resume is a job
`<id>-resumeN`, a deploy `<id>-deploy-<hex>`, each naming the sweep in its metadata.
"""
from __future__ import annotations

import hashlib
import re

from service.cluster.client import ClusterError, UnknownSweep, call

# job metadata keys: what the sweep is, where it writes (as paths on the cluster), what it runs
KIND, SWEEP, HOME, MLFLOW, TOTAL, METRIC, MODE, EXPERIMENT, COMMAND, PARENT, ROOTS = (
    "raysemble.kind", "raysemble.sweep", "raysemble.home", "raysemble.mlflow_uri", "raysemble.trials_total",
    "raysemble.metric", "raysemble.mode", "raysemble.experiment", "raysemble.command", "raysemble.sweep_id",
    "raysemble.data_roots")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
COMMANDS = ("run", "sweep")  # what a sweep's job runs: the whole pipeline, or the search alone


def state(job) -> str:
    return str(getattr(job.status, "value", job.status))


def message(job) -> str | None:
    """Ray's own word on a job, never its log: a failed job's message carries the last lines of its
    output ("..., last available logs (truncated to N chars): ..."), which may quote anything the job
    read. Only the sentence before them is kept, bounded."""
    text = job.message
    if not text:
        return text
    text = text.split(", last available logs")[0].split("last available logs")[0]
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:300]


def seconds(ms: int | None) -> float | None:
    return ms / 1000.0 if ms else None


def raysemble_jobs(client, kind: str | None = "sweep") -> list:
    jobs = [j for j in call(client.list_jobs) if (j.metadata or {}).get(KIND) and j.submission_id]
    if kind:
        jobs = [j for j in jobs if j.metadata[KIND] == kind]
    return sorted(jobs, key=lambda j: j.start_time or 0)


def new_id(name: str) -> str:
    """The sweep id of a name: the same on every call, so Ray refuses a second job of it."""
    return f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def check_id(sweep_id: str) -> None:
    if not isinstance(sweep_id, str) or not ID_PATTERN.match(sweep_id):
        raise UnknownSweep(f"ID: a sweep id from `raysemble list` expected, but got {str(sweep_id)[:80]!r}")


def get_job(client, sweep_id: str, kind: str = "sweep"):
    """The job of a raysemble sweep (or deploy); UnknownSweep for any other id."""
    check_id(sweep_id)
    try:
        job = call(client.get_job_info, sweep_id)
    except ClusterError as err:
        if "status code 404" not in str(err):
            raise
        job = None
    if job is None or (job.metadata or {}).get(KIND) != kind:
        known = [j.submission_id for j in raysemble_jobs(client, kind)][-10:]
        raise UnknownSweep(f"ID: a {kind} id from `raysemble list` expected, but got {sweep_id!r} "
                           f"(known: {known})")
    return job


def resume_jobs(client, sweep_id: str) -> list:
    """The jobs that resumed a sweep, oldest first."""
    return [j for j in raysemble_jobs(client, "resume") if j.metadata.get(PARENT) == sweep_id]


def current_job(client, job):
    """The job now driving a sweep: its last resume, else the one that submitted it."""
    resumed = resume_jobs(client, job.submission_id)
    return resumed[-1] if resumed else job


def sweep_id_of(name_or_id: str, client) -> str:
    """A sweep id from `raysemble list`, or the name it was submitted under."""
    check_id(name_or_id)
    known = {j.submission_id for j in raysemble_jobs(client)}
    return name_or_id if name_or_id in known else new_id(name_or_id)
