"""Sweeps on a Ray cluster, as Ray Jobs (service.cluster): submit, list, status, logs, cancel, deploy,
and `resume --address`. Errors from the cluster or the input exit 2 naming what to fix; a followed
job that fails exits 1."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from service import cluster
from service.cli.common import (ADDRESS, AS_JSON, EXIT_FAILED, EXIT_OK, JOB_COMMAND, JobCommand, app, emit_json, err,
                                invalid, out)


def _client(address: str | None):
    try:
        return cluster.connect(address)
    except cluster.JobsError as e:
        invalid(str(e))


def _follow(client, sweep_id: str) -> int:
    for chunk in cluster.follow(client, sweep_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    state = cluster.wait(client, sweep_id, timeout_s=7 * 24 * 3600, poll_s=2.0)  # the stream may end early
    err.print(f"sweep {sweep_id}: {state}", highlight=False)
    return EXIT_OK if state == "SUCCEEDED" else EXIT_FAILED


@app.command()
def submit(spec: Path = typer.Argument(..., help="sweep spec (YAML or JSON)"), address: Optional[str] = ADDRESS,
           as_json: bool = AS_JSON,
           data_root: list[Path] = typer.Option([], "--data-root", help="a data file must lie inside one "
                                                "(repeatable; default: the current directory)"),
           home: Optional[str] = typer.Option(None, "--home", envvar="RAYSEMBLE_HOME",
                                              help="RAYSEMBLE_HOME on the cluster (default ~/.raysemble there)"),
           mlflow_uri: Optional[str] = typer.Option(None, "--mlflow-uri", envvar="MLFLOW_TRACKING_URI",
                                                    help="MLflow store as the cluster sees it"),
           follow: bool = typer.Option(False, "--follow", help="stream the job's logs until it ends"),
           command: JobCommand = JOB_COMMAND):
    """Run the whole pipeline on a Ray cluster as a Ray Job; prints the sweep id."""
    from service.spec import Policy, SpecError, load_spec

    # any model.factory: the CLI user can already run anything on the cluster through Ray Jobs
    policy = Policy(data_roots=data_root or [Path.cwd()], tracking="user", factory_prefixes=None)
    try:
        parsed = load_spec(spec, policy)
    except SpecError as e:
        invalid(e.problems)
    client = _client(address)
    try:
        # a factory module beside the spec or in the cwd travels with the job (not one in site-packages)
        result = cluster.submit(client, parsed, home=home, mlflow_uri=mlflow_uri, command=command.value,
                                code_dirs=(spec.resolve().parent, Path.cwd()), data_roots=policy.roots())
        result["address"] = cluster.resolve_address(address)
    except cluster.JobsError as e:
        invalid(str(e))
    if as_json and not follow:
        emit_json(result)
    else:
        err.print(f"submitted sweep [bold]{result['id']}[/bold] ({result['command']}) to {result['address']}; "
                  f"follow it with `raysemble logs {result['id']} --follow`", highlight=False)
        if not as_json:
            out.print(result["id"], highlight=False)
    if not follow:
        raise typer.Exit(EXIT_OK)
    code = _follow(client, result["id"])
    if as_json:
        emit_json({**result, **cluster.status(client, result["id"])})
    raise typer.Exit(code)


def _fmt_best(best: dict | None) -> str:
    return f"{best['value']:.4f} ({best['trial_id']})" if best else "-"


def _fmt_trials(s: dict) -> str:
    done = "?" if s["trials_done"] is None else s["trials_done"]
    return f"{done}/{s['trials_total']}"


@app.command("list")
def list_(address: Optional[str] = ADDRESS, as_json: bool = typer.Option(False, "--json")):
    """Every raysemble sweep on the cluster."""
    try:
        sweeps = cluster.list_sweeps(_client(address))
    except cluster.JobsError as e:
        invalid(str(e))
    if as_json:
        emit_json(sweeps)
        return
    table = Table("id", "name", "state", "trials", "best", "submitted")
    for s in sweeps:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["submitted"])) if s["submitted"] else "-"
        table.add_row(s["id"], s["name"], s["state"], _fmt_trials(s), _fmt_best(s["best"]), when)
    out.print(table)


@app.command()
def status(sweep_id: str = typer.Argument(..., metavar="ID"), address: Optional[str] = ADDRESS,
           as_json: bool = typer.Option(False, "--json")):
    """State, trials done/total, best so far and MLflow run of a submitted sweep."""
    from service.cluster.scaling import describe_scaling

    try:
        s = cluster.status(_client(address), sweep_id)
    except cluster.JobsError as e:
        invalid(str(e))
    if as_json:
        emit_json(s)
        return
    lines = [f"sweep     {s['id']} ({s['name']})",
             f"state     {s['state']}  (sweep {s['sweep_state'] or '-'})  {s['message'] or ''}",
             f"trials    {_fmt_trials(s)} done"
             + (f", {s['trials_running']} running" if s["trials_running"] else "")
             + (f", {s['trials_failed']} failed" if s["trials_failed"] else ""),
             f"best      {_fmt_best(s['best'])}" + (f" {s['best']['metric']}" if s["best"] else ""),
             f"mlflow    run {s['mlflow_run_id'] or '-'} (experiment {s['experiment_id'] or '-'}) at "
             f"{s['mlflow_uri'] or 'the cluster default'}"]
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


@app.command()
def logs(sweep_id: str = typer.Argument(..., metavar="ID"), address: Optional[str] = ADDRESS,
         follow: bool = typer.Option(False, "--follow", "-f", help="stream until the sweep ends")):
    """The sweep job's output."""
    client = _client(address)
    try:
        if follow:
            raise typer.Exit(_follow(client, sweep_id))
        sys.stdout.write(cluster.logs(client, sweep_id))
    except cluster.JobsError as e:
        invalid(str(e))


def resume_on_cluster(name: str, address: str | None, as_json: bool, follow: bool) -> None:
    """`raysemble resume NAME --address URL`: a new job continues the submitted sweep."""
    client = _client(address)
    try:
        result = cluster.resume(client, cluster.sweep_id_of(name, client))
    except cluster.JobsError as e:
        invalid(str(e))
    if as_json and not follow:
        emit_json(result)
    else:
        err.print(f"resumed sweep [bold]{result['id']}[/bold] as job {result['job']} ({result['command']}); "
                  f"follow it with `raysemble logs {result['id']} --follow`", highlight=False)
    raise typer.Exit(_follow(client, result["id"]) if follow else EXIT_OK)


@app.command()
def cancel(sweep_id: str = typer.Argument(..., metavar="ID"), address: Optional[str] = ADDRESS,
           wait: float = typer.Option(60.0, "--wait", help="seconds to wait for the job to stop (0: don't)"),
           as_json: bool = typer.Option(False, "--json")):
    """Stop a submitted sweep."""
    client = _client(address)
    try:
        result = cluster.cancel(client, sweep_id)
        if result["stopped"] and wait > 0:
            result["state"] = cluster.wait(client, sweep_id, wait)
    except cluster.JobsError as e:
        invalid(str(e))
    if as_json:
        emit_json(result)
    elif result["stopped"]:
        out.print(f"sweep {sweep_id}: {result['state']}", highlight=False)
    else:
        out.print(f"sweep {sweep_id} had already ended ({result['state']}); nothing to cancel", highlight=False)


@app.command()
def deploy(sweep_id: str = typer.Argument(..., metavar="ID"), address: Optional[str] = ADDRESS,
           wait: float = typer.Option(300.0, "--wait", help="seconds to wait for the deployment (0: don't)"),
           as_json: bool = typer.Option(False, "--json")):
    """Serve a finished sweep's registered ensemble and student with Ray Serve on the cluster."""
    client = _client(address)
    try:
        result = cluster.deploy(client, sweep_id)
        if wait > 0:
            result["state"] = cluster.wait(client, result["id"], wait, kind="deploy")
            result.update(cluster.deployed_url(client, result["id"]))
    except cluster.JobsError as e:
        invalid(str(e))
    if as_json:
        emit_json(result)
    else:
        where = f" at {result['url']}" if result.get("url") else ""
        out.print(f"deploy {result['id']}: {result.get('state', 'submitted')}{where}", highlight=False)
    raise typer.Exit(EXIT_OK if result.get("state", "SUCCEEDED") == "SUCCEEDED" else EXIT_FAILED)
