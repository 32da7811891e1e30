"""Sweeps as Ray Jobs on a cluster: submit, list, status, logs, cancel, deploy.

A submitted sweep is one Ray Job whose submission id is the sweep id (`<spec name>-<6 hex>`, the hex
derived from the name: Ray's job table, which refuses a second job of one submission id atomically,
is what makes two simultaneous submissions of one name end with exactly one job).
The job ships a packaged copy of raysemble (service/, serving/, trainers/ only: no .venv, .git,
.raysemble or tests) plus the validated spec as `spec.json` in its working dir, and runs

    python -m service.jobrun pipeline --command run spec.json

which runs `raysemble run spec.json --no-serve --json` (or, with command="sweep", `raysemble sweep
spec.json --json`: the search alone). No user string is ever part of the entrypoint. A spec's
model.factory module (family torch) that lies beside the spec or in the submitter's cwd is copied
into the working dir too (see _ship_factory); one installed elsewhere must be installed on the cluster.
The job's metadata names the sweep, where it writes (RAYSEMBLE_HOME and the MLflow URI, as paths
on the cluster) and the trial count, so everything here reads state from Ray Jobs, the sweep
directory and MLflow, and keeps none of its own.

Ray token authentication: RAY_AUTH_TOKEN (or a token passed in) is sent as the bearer token;
otherwise Ray's own loader applies where RAY_AUTH_MODE=token (RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.machinery
import json
import math
import os
import re
import secrets
import shlex
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from service import sweeplock
from trainers.atomic import write_atomic

if TYPE_CHECKING:  # importing the spec pulls in torch: the read-only commands do without
    from service.spec import SweepSpec

KIND, SWEEP, HOME, MLFLOW, TOTAL, METRIC, MODE, EXPERIMENT, COMMAND, PARENT = (
    "raysemble.kind", "raysemble.sweep", "raysemble.home", "raysemble.mlflow_uri", "raysemble.trials_total",
    "raysemble.metric", "raysemble.mode", "raysemble.experiment", "raysemble.command", "raysemble.sweep_id")
DEFAULT_CLUSTER_HOME = "~/.raysemble"  # expanded on the cluster by service.jobrun
SPEC_FILE = "spec.json"
PACKAGES = ("service", "serving", "trainers")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
COMMANDS = ("run", "sweep")


class JobsError(Exception):
    """Something the caller can fix; the message says what."""


class Unreachable(JobsError):
    pass


class Unauthorized(JobsError):
    pass


class UnknownSweep(JobsError):
    pass


class Conflict(JobsError):
    pass


class ClusterError(JobsError):
    """The Jobs server answered with an error of its own."""


# ----------------------------------------------------------------------------- connection

def resolve_address(address: str | None) -> str:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise Unreachable("--address: the Ray dashboard URL (e.g. http://HEAD:8265) or RAY_ADDRESS expected, "
                          "but got neither")
    return address


def connect(address: str | None = None, token: str | None = None):
    """A JobSubmissionClient for the cluster; Unreachable / Unauthorized with a clear message."""
    import requests
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    address = resolve_address(address)
    token = token or os.environ.get("RAY_AUTH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        with _explicit_address(address):
            return JobSubmissionClient(address, headers=headers)
    except AuthenticationError as err:
        raise Unauthorized(f"the Ray cluster at {address} refused the request: a valid token expected "
                           f"(set RAY_AUTH_TOKEN), but {_first_line(err)}") from None
    except ConnectionError:
        raise Unreachable(f"--address: a reachable Ray dashboard expected, but nothing answered at {address!r}") \
            from None
    except (requests.exceptions.RequestException, ValueError, RuntimeError) as err:
        raise Unreachable(f"--address: a Ray dashboard URL such as http://HEAD:8265 expected, but {address!r} "
                          f"failed: {_first_line(err)}") from None


_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _explicit_address(address: str):
    """Ray lets RAY_API_SERVER_ADDRESS / RAY_ADDRESS override the address a client is given; here the
    address given (--address, else RAY_ADDRESS) is the one used."""
    with _ENV_LOCK:
        saved = os.environ.get("RAY_API_SERVER_ADDRESS")
        os.environ["RAY_API_SERVER_ADDRESS"] = address
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("RAY_API_SERVER_ADDRESS", None)
            else:
                os.environ["RAY_API_SERVER_ADDRESS"] = saved


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def _call(fn: Callable, *args):
    """One Jobs REST call, its failures turned into JobsError."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        return fn(*args)
    except AuthenticationError as err:
        raise Unauthorized(f"the Ray cluster refused the request: {_first_line(err)}") from None
    except (requests.exceptions.ConnectionError, ConnectionError) as err:
        raise Unreachable(f"the Ray dashboard stopped answering: {_first_line(err)}") from None
    except RuntimeError as err:  # the SDK's "Request failed with status code N: ..."
        raise ClusterError(f"the Ray Jobs server refused the request: {_first_line(err)}") from None


# ----------------------------------------------------------------------------- submission

def _package(directory: Path, spec: "SweepSpec | None") -> Path:
    """A clean copy of the three packages (and the spec) to ship as the job's working_dir."""
    root = Path(__file__).resolve().parent.parent
    for name in PACKAGES:
        shutil.copytree(root / name, directory / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if spec is not None:
        # 0600: it may hold serve.token
        write_atomic(directory / SPEC_FILE, spec.model_dump_json(indent=1), mode=0o600)
    return directory


def _ship_factory(directory: Path, spec: "SweepSpec", code_dirs: Iterable[Path]) -> Path | None:
    """Copy the top-level module of spec.model.factory ("pkg" of "pkg.models:build": a package
    directory or a single module file) into the job's working_dir when it lies directly in one of
    code_dirs (the spec's directory, the submitter's cwd); returns what was copied, or None.

    Ray puts the working_dir first on PYTHONPATH of the job's driver and of every worker process
    the job starts (Tune trials on any node), so `import pkg.models` resolves there as `import
    trainers` does. Only code_dirs are searched, never sys.path: a module installed (site-packages)
    is the cluster's environment's business, and nothing else of the submitter's machine travels.
    """
    factory = spec.model.factory
    if not factory:
        return None
    top = factory.partition(":")[0].split(".")[0]
    if top in PACKAGES:
        return None  # raysemble's own code, shipped above
    for where in dict.fromkeys(Path(d).resolve() for d in code_dirs):
        found = importlib.machinery.PathFinder.find_spec(top, [str(where)])
        if found is None:
            continue
        if found.submodule_search_locations:  # a package (regular or namespace): its directory
            shutil.copytree(where / top, directory / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            return directory / top
        if found.origin:  # a single module file (pkg.py, or a compiled extension)
            source = Path(found.origin)
            shutil.copy2(source, directory / source.name)
            return directory / source.name
    return None


def _env(home: str | None, mlflow_uri: str | None) -> dict[str, str]:
    env = {"PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": os.environ.get("RAY_USAGE_STATS_ENABLED", "1")}
    if home:
        env["RAYSEMBLE_HOME"] = home
    if mlflow_uri:
        env["MLFLOW_TRACKING_URI"] = mlflow_uri
    return env


def raysemble_jobs(client, kind: str | None = "sweep") -> list:
    jobs = [j for j in _call(client.list_jobs) if (j.metadata or {}).get(KIND) and j.submission_id]
    if kind:
        jobs = [j for j in jobs if j.metadata[KIND] == kind]
    return sorted(jobs, key=lambda j: j.start_time or 0)


def new_id(name: str) -> str:
    """The sweep id of a name: the same on every call, so Ray refuses a second job of it."""
    return f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def submit(client, spec: "SweepSpec", *, home: str | None = None, mlflow_uri: str | None = None,
           command: str = "run", home_is_local: bool = False, code_dirs: Iterable[Path] = ()) -> dict:
    """Submit a validated spec as a Ray Job; returns {"id", "name", "command"}.

    code_dirs: where a model.factory module may lie to travel with the job (`raysemble submit`: the
    spec's directory and the cwd; the REST API: none, its allowed modules are installed on the cluster).

    home / mlflow_uri: RAYSEMBLE_HOME and MLFLOW_TRACKING_URI for the job, as paths on the cluster
    (None: ~/.raysemble and SQLite under it, chosen on the cluster). A spec whose name another
    raysemble job on this cluster already used is refused (the sweep directory would clash), and so
    is one whose sweep directory exists where home_is_local says home is this machine's filesystem.
    """
    from service.sweep import expected_trials

    if command not in COMMANDS:
        raise JobsError(f"command: one of {list(COMMANDS)} expected, but got {command!r}")
    for job in raysemble_jobs(client):
        if job.metadata.get(SWEEP) == spec.name:
            raise Conflict(f"name: a sweep name not used on this cluster expected, but {spec.name!r} is sweep "
                           f"{job.submission_id} ({job.status}); choose another name")
    if home_is_local and home and (Path(home).expanduser() / "sweeps" / spec.name / "spec.json").exists():
        raise Conflict(f"name: a sweep name not used under {home} expected, but {spec.name!r} exists there; "
                       f"choose another name")
    sweep_id = new_id(spec.name)
    metadata = {KIND: "sweep", SWEEP: spec.name, HOME: home or DEFAULT_CLUSTER_HOME, MLFLOW: mlflow_uri or "",
                TOTAL: str(expected_trials(spec)), METRIC: spec.search.metric, MODE: spec.search.mode,
                EXPERIMENT: spec.experiment(), COMMAND: command}
    if spec.tracking.mlflow_uri:
        metadata[MLFLOW] = spec.tracking.mlflow_uri
    entrypoint = shlex.join(["python", "-m", "service.jobrun", "pipeline", "--command", command, SPEC_FILE])
    with tempfile.TemporaryDirectory(prefix="raysemble-job-") as tmp:
        working_dir = _package(Path(tmp), spec)
        _ship_factory(working_dir, spec, code_dirs)
        runtime_env = {"working_dir": str(working_dir), "env_vars": _env(home, mlflow_uri)}

        def submit_job():
            try:
                return client.submit_job(entrypoint=entrypoint, submission_id=sweep_id, runtime_env=runtime_env,
                                         metadata=metadata)
            except RuntimeError as err:
                # the check above only makes the usual message clear; this refusal is the atomic one
                # (Ray's job table adds a submission id only if absent)
                if f"submission_id {sweep_id} already exists" in str(err):
                    raise Conflict(f"name: a sweep name not used on this cluster expected, but {spec.name!r} is "
                                   f"sweep {sweep_id} (submitted at the same time by another caller); choose "
                                   f"another name") from None
                raise

        _call(submit_job)
    return {"id": sweep_id, "name": spec.name, "command": command}


# ----------------------------------------------------------------------------- reading state

def check_id(sweep_id: str) -> None:
    if not isinstance(sweep_id, str) or not ID_PATTERN.match(sweep_id):
        raise UnknownSweep(f"ID: a sweep id from `raysemble list` expected, but got {str(sweep_id)[:80]!r}")


def get_job(client, sweep_id: str, kind: str = "sweep"):
    """The job of a raysemble sweep (or deploy); UnknownSweep for any other id."""
    check_id(sweep_id)
    try:
        job = _call(client.get_job_info, sweep_id)
    except ClusterError as err:
        if "status code 404" not in str(err):
            raise
        job = None
    if job is None or (job.metadata or {}).get(KIND) != kind:
        known = [j.submission_id for j in raysemble_jobs(client, kind)][-10:]
        raise UnknownSweep(f"ID: a {kind} id from `raysemble list` expected, but got {sweep_id!r} "
                           f"(known: {known})")
    return job


def sweep_dir(metadata: dict) -> Path:
    return Path(os.path.expanduser(metadata.get(HOME) or DEFAULT_CLUSTER_HOME)).resolve() / "sweeps" / \
        metadata[SWEEP]


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def attempts(directory: Path) -> list[dict]:
    out = []
    try:
        lines = (directory / "attempts.jsonl").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line being written
    return out


def _finite(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def trials(metadata: dict) -> list[dict] | None:
    """Every trial seen so far (finished, failed or running) with the nodes it ran on; None where
    the sweep directory cannot be read from here."""
    directory = sweep_dir(metadata)
    if not (directory / "sweep.json").is_file():
        return None
    records = {t["trial_id"]: t for t in _read_json(directory / "trials.json", [])}
    tried: dict[str, list[dict]] = {}
    for a in attempts(directory):
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
    total = int(metadata.get(TOTAL) or 0)
    mode = metadata.get(MODE) or "max"
    out = {"sweep_state": None, "trials_total": total, "trials_done": None, "trials_failed": None,
           "trials_running": None, "best": None, "mlflow_uri": metadata.get(MLFLOW) or None,
           "experiment_id": None, "mlflow_run_id": None, "registered": {}, "source": None}
    seen = trials(metadata)
    if seen is not None:
        meta = _read_json(sweep_dir(metadata) / "sweep.json", {})
        done = [t for t in seen if t["status"] == "TERMINATED" and t["mean"] is not None]
        state = _read_json(sweep_dir(metadata) / "postsweep" / "state.json", {})
        out.update(sweep_state=meta.get("state"), trials_done=len(done),
                   trials_failed=sum(t["status"] == "ERROR" for t in seen),
                   trials_running=sum(t["status"] == "RUNNING" for t in seen),
                   mlflow_uri=meta.get("mlflow_uri") or out["mlflow_uri"], experiment_id=meta.get("experiment_id"),
                   mlflow_run_id=meta.get("mlflow_run_id"), registered=state.get("registered", {}),
                   source="sweep_dir")
        if done:
            best = sorted(done, key=lambda t: t["mean"], reverse=mode == "max")[0]
            out["best"] = {"trial_id": best["trial_id"], "metric": metadata.get(METRIC), "value": best["mean"],
                           "params": best["params"]}
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
    if done:
        best = sorted(done, key=lambda r: r.data.metrics[key], reverse=(metadata.get(MODE) or "max") == "max")[0]
        out["best"] = {"trial_id": best.data.tags.get("raysemble.trial_id"), "metric": metadata.get(METRIC),
                       "value": best.data.metrics[key], "params": dict(best.data.params)}
    return out


def describe(job, deployments: list | None = None) -> dict:
    meta = job.metadata or {}
    out = {"id": job.submission_id, "name": meta.get(SWEEP), "state": str(getattr(job.status, "value", job.status)),
           "message": job.message, "command": meta.get(COMMAND), "submitted": _seconds(job.start_time),
           "ended": _seconds(job.end_time)}
    out.update(progress(meta))
    out["sweep_state"] = settle(meta, out["state"], out["sweep_state"], out["source"], _seconds(job.end_time))
    if deployments is not None:
        out["deployments"] = [{"id": d.submission_id, "state": str(getattr(d.status, "value", d.status)),
                               "message": d.message, "submitted": _seconds(d.start_time)} for d in deployments]
    return out


def settle(metadata: dict, job_state: str, sweep_state: str | None, source: str | None,
           ended: float | None) -> str | None:
    """The sweep's state given its job's. A driver killed before it could record its end (SIGKILL
    after a cancel's SIGTERM, a crash) leaves sweep.json at RUNNING: once the job has ended, that
    sweep is STOPPED (job stopped) or FAILED. Written back to sweep.json when the sweep dir is here
    and no driver holds the sweep (one that does, e.g. a local `raysemble resume`, is running it)."""
    if job_state == "STOPPED" and sweep_state in ("RUNNING", "INTERRUPTED"):
        settled = "STOPPED"
    elif job_state == "FAILED" and sweep_state == "RUNNING":
        settled = "FAILED"
    else:
        return sweep_state
    if source != "sweep_dir":
        return settled
    directory = sweep_dir(metadata)
    try:
        with sweeplock.hold(directory, "raysemble status"):
            meta = _read_json(directory / "sweep.json", None)
            if isinstance(meta, dict) and meta.get("state") == sweep_state:
                meta.update(state=settled, finished=meta.get("finished") or ended or time.time())
                write_atomic(directory / "sweep.json", json.dumps(meta, indent=1))
    except sweeplock.SweepBusy:
        return sweep_state
    except OSError:  # a sweep dir this process may read but not write: the answer still holds
        pass
    return settled


def _seconds(ms: int | None) -> float | None:
    return ms / 1000.0 if ms else None


def list_sweeps(client) -> list[dict]:
    resumed: dict[str, object] = {}
    for j in raysemble_jobs(client, "resume"):  # oldest first: the last one wins
        resumed[j.metadata.get(PARENT)] = j
    return [{**describe(resumed.get(j.submission_id, j)), "id": j.submission_id} for j in raysemble_jobs(client)]


def status(client, sweep_id: str) -> dict:
    from service.scaling import cluster_scaling

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
    return {"id": sweep_id, "state": str(getattr(job.status, "value", job.status)),
            "trials_total": int(job.metadata.get(TOTAL) or 0), "trials": seen,
            "readable": seen is not None}


def wait(client, sweep_id: str, timeout_s: float, poll_s: float = 1.0, kind: str = "sweep") -> str:
    """Poll until the job is terminal (or timeout); returns the last state."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(client, sweep_id, kind)
        state = str((current_job(client, job) if kind == "sweep" else job).status.value)
        if state in TERMINAL or time.monotonic() >= deadline:
            return state
        time.sleep(poll_s)


# ----------------------------------------------------------------------------- logs, cancel, deploy

def logs(client, sweep_id: str) -> str:
    """The output of every job of the sweep (the first, then each resume), in order."""
    first = get_job(client, sweep_id)
    parts = [_call(client.get_job_logs, j.submission_id) for j in [first, *resume_jobs(client, sweep_id)]]
    return "".join(parts)


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
                yield f"\n[raysemble] log stream ended early: {_first_line(err)}\n"
                return
    finally:
        loop.run_until_complete(stream.aclose())
        loop.close()


def cancel(client, sweep_id: str) -> dict:
    job = current_job(client, get_job(client, sweep_id))
    state = str(job.status.value)
    stopped = False if state in TERMINAL else bool(_call(client.stop_job, job.submission_id))
    return {"id": sweep_id, "job": job.submission_id, "stopped": stopped, "state": state if not stopped else "STOPPING"}


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


def resume(client, sweep_id: str) -> dict:
    """Continue a stopped or failed submitted sweep as a new Ray Job (`raysemble resume NAME` on the
    cluster, the sweep dir and Tune's experiment state read where the first job wrote them): finished
    trials are not trained again. Its command (run: then ensemble, distill, register) is the first job's."""
    first = get_job(client, sweep_id)
    resumed = resume_jobs(client, sweep_id)
    job = resumed[-1] if resumed else first
    state = str(job.status.value)
    if state not in TERMINAL:
        raise Conflict(f"ID: a sweep that has ended expected for resume, but {sweep_id} is {state} "
                       f"(job {job.submission_id}); cancel it first")
    meta = first.metadata
    sweep_state = progress(meta)["sweep_state"]
    if state == "SUCCEEDED" and sweep_state in (None, "SUCCEEDED"):
        raise Conflict(f"ID: a stopped or failed sweep expected for resume, but {sweep_id} SUCCEEDED")
    resume_id = f"{sweep_id}-resume{len(resumed) + 1}"
    command = meta.get(COMMAND) or "run"
    entrypoint = shlex.join(["python", "-m", "service.jobrun", "resume", "--command", command, meta[SWEEP]])
    home = meta.get(HOME)
    env = _env(home if home != DEFAULT_CLUSTER_HOME else None, meta.get(MLFLOW) or None)
    with tempfile.TemporaryDirectory(prefix="raysemble-resume-") as tmp:
        runtime_env = {"working_dir": str(_package(Path(tmp), None)), "env_vars": env}
        _call(lambda: client.submit_job(entrypoint=entrypoint, submission_id=resume_id, runtime_env=runtime_env,
                                        metadata={**meta, KIND: "resume", PARENT: sweep_id}))
    return {"id": sweep_id, "job": resume_id, "name": meta[SWEEP], "command": command}


def deploy(client, sweep_id: str) -> dict:
    """Serve the sweep's registered ensemble and student: a Ray Job that runs serving.app.serve_models
    on the cluster and exits, leaving the Serve application running."""
    job = get_job(client, sweep_id)
    meta = job.metadata
    state = str(job.status.value)
    if state != "SUCCEEDED":
        raise Conflict(f"ID: a SUCCEEDED sweep expected for deploy, but {sweep_id} is {state}")
    prog = progress(meta)
    if prog["source"] == "sweep_dir" and not prog["registered"]:
        raise Conflict(f"ID: a sweep with registered models expected for deploy, but {sweep_id} has none "
                       f"(it ran `raysemble {meta.get(COMMAND)}`; the full pipeline `raysemble run` registers "
                       f"the ensemble and the student)")
    deploy_id = f"{sweep_id}-deploy-{secrets.token_hex(2)}"
    entrypoint = shlex.join(["python", "-m", "service.jobrun", "deploy", meta[SWEEP]])
    home = meta.get(HOME)
    env = _env(home if home != DEFAULT_CLUSTER_HOME else None, meta.get(MLFLOW) or None)
    with tempfile.TemporaryDirectory(prefix="raysemble-deploy-") as tmp:
        runtime_env = {"working_dir": str(_package(Path(tmp), None)), "env_vars": env}
        _call(lambda: client.submit_job(entrypoint=entrypoint, submission_id=deploy_id, runtime_env=runtime_env,
                                        metadata={KIND: "deploy", SWEEP: meta[SWEEP], PARENT: sweep_id,
                                                  HOME: meta.get(HOME, ""), MLFLOW: meta.get(MLFLOW, "")}))
    return {"id": deploy_id, "sweep": sweep_id, "registered": prog["registered"]}


def last_json_line(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None
