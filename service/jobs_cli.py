"""What the cluster commands of the CLI do (submit, list, status, logs, cancel, deploy, api).
service/cli.py holds only their thin typer wrappers. Each function returns the exit code:
0 done, 1 failed (the job failed, or stopped), 2 invalid input (spec, id, address, token)."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from service import jobs

err = Console(stderr=True)
out = Console()
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _error(message: str | list[str]) -> int:
    for line in [message] if isinstance(message, str) else message:
        err.print(f"[red]error[/red] {line}", highlight=False, soft_wrap=True, markup=True)
    return EXIT_INVALID


def _json(payload) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def _client(address: str | None):
    return jobs.connect(address)


def submit_cmd(spec_path: Path, address: str | None, as_json: bool, data_roots: list[Path], home: str | None,
               mlflow_uri: str | None, follow: bool, command: str = "run") -> int:
    from service.safety import Policy, validate
    from service.spec import SpecError, read_spec_text

    if not spec_path.is_file():
        return _error(f"{spec_path}: a spec file expected, but it does not exist")
    try:
        raw = read_spec_text(spec_path.read_text(), str(spec_path))
        # any model.factory: the CLI user can already run anything on the cluster through Ray Jobs
        spec = validate(raw, Policy(data_roots=data_roots or [Path.cwd()], tracking="user", factory_prefixes=None))
    except SpecError as e:
        return _error(e.problems)
    try:
        client = _client(address)
        # a factory module beside the spec or in the cwd travels with the job (not one in site-packages)
        result = jobs.submit(client, spec, home=home, mlflow_uri=mlflow_uri, command=command,
                             code_dirs=(spec_path.resolve().parent, Path.cwd()))
    except jobs.JobsError as e:
        return _error(str(e))
    result["address"] = jobs.resolve_address(address)
    if as_json and not follow:
        _json(result)
    else:
        err.print(f"submitted sweep [bold]{result['id']}[/bold] ({result['command']}) to {result['address']}; "
                  f"follow it with `raysemble logs {result['id']} --follow`", highlight=False)
        if not as_json:
            out.print(result["id"], highlight=False)
    if not follow:
        return EXIT_OK
    code = _follow(client, result["id"])
    if as_json:
        _json({**result, **jobs.status(client, result["id"])})
    return code


def _follow(client, sweep_id: str) -> int:
    for chunk in jobs.follow(client, sweep_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    state = jobs.wait(client, sweep_id, timeout_s=7 * 24 * 3600, poll_s=2.0)  # the stream may end early
    err.print(f"sweep {sweep_id}: {state}", highlight=False)
    return EXIT_OK if state == "SUCCEEDED" else EXIT_FAILED


def _fmt_best(best: dict | None) -> str:
    return f"{best['value']:.4f} ({best['trial_id']})" if best else "-"


def _fmt_trials(s: dict) -> str:
    done = "?" if s["trials_done"] is None else s["trials_done"]
    return f"{done}/{s['trials_total']}"


def list_cmd(address: str | None, as_json: bool) -> int:
    try:
        sweeps = jobs.list_sweeps(_client(address))
    except jobs.JobsError as e:
        return _error(str(e))
    if as_json:
        _json(sweeps)
        return EXIT_OK
    table = Table("id", "name", "state", "trials", "best", "submitted")
    for s in sweeps:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["submitted"])) if s["submitted"] else "-"
        table.add_row(s["id"], s["name"], s["state"], _fmt_trials(s), _fmt_best(s["best"]), when)
    out.print(table)
    return EXIT_OK


def status_cmd(sweep_id: str, address: str | None, as_json: bool) -> int:
    try:
        s = jobs.status(_client(address), sweep_id)
    except jobs.JobsError as e:
        return _error(str(e))
    if as_json:
        _json(s)
        return EXIT_OK
    lines = [f"sweep     {s['id']} ({s['name']})", f"state     {s['state']}  (sweep {s['sweep_state'] or '-'})  {s['message'] or ''}",
             f"trials    {_fmt_trials(s)} done"
             + (f", {s['trials_running']} running" if s["trials_running"] else "")
             + (f", {s['trials_failed']} failed" if s["trials_failed"] else ""),
             f"best      {_fmt_best(s['best'])}" + (f" {s['best']['metric']}" if s["best"] else ""),
             f"mlflow    run {s['mlflow_run_id'] or '-'} (experiment {s['experiment_id'] or '-'}) at "
             f"{s['mlflow_uri'] or 'the cluster default'}"]
    from service.scaling import describe_scaling

    if scaling := describe_scaling(s.get("scaling")):
        lines.append(f"cluster   {scaling}")
    if s["source"] is None:
        lines.append("          (the sweep's directory and MLflow store are not readable from here: job state only)")
    for kind, reg in (s.get("registered") or {}).items():
        lines.append(f"model     {kind}: {reg.get('uri')}")
    for d in s.get("deployments") or []:
        lines.append(f"deploy    {d['id']} {d['state']}")
    for line in lines:
        out.print(line, highlight=False)
    return EXIT_OK


def logs_cmd(sweep_id: str, address: str | None, follow: bool) -> int:
    try:
        client = _client(address)
        if follow:
            return _follow(client, sweep_id)
        sys.stdout.write(jobs.logs(client, sweep_id))
    except jobs.JobsError as e:
        return _error(str(e))
    return EXIT_OK


def resume_cmd(name: str, address: str | None, as_json: bool, follow: bool) -> int:
    try:
        client = _client(address)
        result = jobs.resume(client, jobs.sweep_id_of(name, client))
    except jobs.JobsError as e:
        return _error(str(e))
    if as_json and not follow:
        _json(result)
    else:
        err.print(f"resumed sweep [bold]{result['id']}[/bold] as job {result['job']} ({result['command']}); "
                  f"follow it with `raysemble logs {result['id']} --follow`", highlight=False)
    return _follow(client, result["id"]) if follow else EXIT_OK


def cancel_cmd(sweep_id: str, address: str | None, wait_s: float, as_json: bool) -> int:
    try:
        client = _client(address)
        result = jobs.cancel(client, sweep_id)
        if result["stopped"] and wait_s > 0:
            result["state"] = jobs.wait(client, sweep_id, wait_s)
    except jobs.JobsError as e:
        return _error(str(e))
    if as_json:
        _json(result)
    elif result["stopped"]:
        out.print(f"sweep {sweep_id}: {result['state']}", highlight=False)
    else:
        out.print(f"sweep {sweep_id} had already ended ({result['state']}); nothing to cancel", highlight=False)
    return EXIT_OK


def deploy_cmd(sweep_id: str, address: str | None, wait_s: float, as_json: bool) -> int:
    try:
        client = _client(address)
        result = jobs.deploy(client, sweep_id)
        if wait_s > 0:
            result["state"] = jobs.wait(client, result["id"], wait_s, kind="deploy")
            served = jobs.last_json_line(jobs._call(client.get_job_logs, result["id"]))
            if served:
                result.update(url=served.get("url"), app=served.get("app"))
    except jobs.JobsError as e:
        return _error(str(e))
    if as_json:
        _json(result)
    else:
        where = f" at {result['url']}" if result.get("url") else ""
        out.print(f"deploy {result['id']}: {result.get('state', 'submitted')}{where}", highlight=False)
    return EXIT_OK if result.get("state", "SUCCEEDED") == "SUCCEEDED" else EXIT_FAILED


def api_cmd(host: str, port: int, address: str | None, token: str | None, data_roots: list[Path],
            home: str | None, mlflow_uri: str | None, storage_path: str | None, max_body_bytes: int,
            job_command: str = "run", budget: dict | None = None, allow_serve_fields: bool = False,
            allow_factory: list[str] | None = None) -> int:
    """budget: Budget fields the operator set (max_trials, max_fold_epochs, max_concurrent,
    max_parameters, max_failures); the rest keep their defaults. allow_factory: module prefixes a
    spec's model.factory may name (none: the API runs no user code)."""
    from pydantic import ValidationError

    from service.api import Settings, serve_api
    from service.safety import Budget, factory_prefix_problem
    from service.spec import _format_pydantic

    try:
        limits = Budget.model_validate({k: v for k, v in (budget or {}).items() if v is not None})
    except ValidationError as e:
        return _error([f"--{loc.replace('_', '-')}:{msg}" for loc, msg in
                       (line.split(":", 1) for line in _format_pydantic(e))])

    bad_prefixes = [p for p in map(factory_prefix_problem, allow_factory or []) if p]
    if bad_prefixes:
        return _error(bad_prefixes)

    token = token or os.environ.get("RAYSEMBLE_API_TOKEN")
    if not token:
        return _error("--token: a bearer token for the API expected (or RAYSEMBLE_API_TOKEN), but got none")
    try:
        address = jobs.resolve_address(address)
    except jobs.JobsError as e:
        return _error(str(e))
    settings = Settings.build(address=address, token=token, data_roots=data_roots, home=home,
                              mlflow_uri=mlflow_uri, storage_path=storage_path, max_body_bytes=max_body_bytes,
                              job_command=job_command, budget=limits, allow_serve_fields=allow_serve_fields,
                              factory_prefixes=tuple(allow_factory or ()))
    serve_api(settings, host, port)
    return EXIT_OK
