"""The `raysemble` command. Exit codes: 0 done, 1 failed, 2 invalid input."""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Hyperparameter search, k-fold CV, ensembles and distillation on Ray.")
# logs and CI capture are not terminals: rich would squeeze tables to 80 columns there
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console()

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


def _invalid(lines) -> None:
    for line in [lines] if isinstance(lines, str) else lines:
        err.print(f"[red]error[/red] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_INVALID)


def _load(path: Path):
    from service.spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as e:
        _invalid(e.problems)


def _emit_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


@app.command()
def validate(spec: Path = typer.Argument(..., help="sweep spec (YAML or JSON)")):
    """Check a spec without starting anything."""
    parsed = _load(spec)
    out.print(f"ok: {parsed.name} ({parsed.search.algorithm}, {parsed.cv.folds} folds, "
              f"{parsed.resources.resolved_executor()} executor)", highlight=False)


def _sweep(spec, ray_address: Optional[str], as_json: bool, resume: bool, serve_after: bool = False,
           replace: bool = False):
    """-> (sweep, summary, whether this process started Ray)."""
    from service.progress import SweepProgress, results_table
    from service.sweep import SweepExists, ray_init, run_sweep, summary

    try:
        if not resume:
            from service.sweep import prepare
            prepare(spec, replace=replace)
    except SweepExists as e:
        _invalid(str(e))
    owns_ray = ray_init(ray_address, spec.serve if serve_after else None)
    sweep = run_sweep(spec, SweepProgress(), resume=True)
    result = summary(sweep)
    err.print(results_table(result))
    if result["state"] == "INTERRUPTED":
        err.print(f"interrupted: {len(result['trials'])} trials recorded; continue with "
                  f"`raysemble resume {spec.name}`", highlight=False)
        if as_json:
            _emit_json(result)
        raise typer.Exit(EXIT_INTERRUPTED)
    return sweep, result, owns_ray


_REPLACE = typer.Option(False, "--replace", help="start again when a sweep of this name exists (its directory and "
                        "Tune experiment are removed; MLflow runs and registered versions stay)")


@app.command()
def sweep(spec: Path = typer.Argument(..., help="sweep spec (YAML or JSON)"),
          ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join"),
          as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
          replace: bool = _REPLACE):
    """Search hyperparameters with k-fold CV; every trial recorded in MLflow."""
    parsed = _load(spec)
    _, result, _ = _sweep(parsed, ray_address, as_json, resume=False, replace=replace)
    if as_json:
        _emit_json(result)
    raise typer.Exit(EXIT_OK if result["state"] == "SUCCEEDED" else EXIT_FAILED)


@app.command()
def resume(name: str = typer.Argument(..., help="sweep name"),
           spec: Optional[Path] = typer.Option(None, "--spec", help="must equal the stored spec"),
           ray_address: Optional[str] = typer.Option(None, "--ray-address"),
           as_json: bool = typer.Option(False, "--json")):
    """Continue a sweep whose driver died, without redoing finished trials."""
    from service.store import SweepNotFound, load_sweep
    from service.sweep import SpecChanged, check_same_spec

    try:
        stored = load_sweep(name).spec
    except SweepNotFound as e:
        _invalid(str(e))
    if spec is not None:
        try:
            check_same_spec(stored, _load(spec))
        except SpecChanged as e:
            _invalid(str(e))
    _, result, _ = _sweep(stored, ray_address, as_json, resume=True)
    if as_json:
        _emit_json(result)
    raise typer.Exit(EXIT_OK if result["state"] == "SUCCEEDED" else EXIT_FAILED)


# ---- cluster: Ray Jobs and the REST control plane (logic in service/jobs_cli.py) ----
_ADDRESS = typer.Option(None, "--address", envvar="RAY_ADDRESS",
                        help="Ray dashboard URL of the cluster, e.g. http://HEAD:8265 (default: $RAY_ADDRESS)")


class JobCommand(str, Enum):
    run = "run"
    sweep = "sweep"


_JOB_COMMAND = typer.Option(JobCommand.run, "--command", envvar="RAYSEMBLE_JOB_COMMAND",
                            help="what a submitted sweep's job runs: run (search, ensemble, distill, register) "
                                 "or sweep (the search alone)")


@app.command()
def submit(spec: Path = typer.Argument(..., help="sweep spec (YAML or JSON)"),
           address: Optional[str] = _ADDRESS,
           as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
           data_root: list[Path] = typer.Option([], "--data-root", help="a data file must lie inside one "
                                                "(repeatable; default: the current directory)"),
           home: Optional[str] = typer.Option(None, "--home", envvar="RAYSEMBLE_HOME",
                                              help="RAYSEMBLE_HOME on the cluster (default ~/.raysemble there)"),
           mlflow_uri: Optional[str] = typer.Option(None, "--mlflow-uri", envvar="MLFLOW_TRACKING_URI",
                                                    help="MLflow store as the cluster sees it"),
           follow: bool = typer.Option(False, "--follow", help="stream the job's logs until it ends"),
           command: JobCommand = _JOB_COMMAND):
    """Run the whole pipeline on a Ray cluster as a Ray Job; prints the sweep id."""
    from service.jobs_cli import submit_cmd
    raise typer.Exit(submit_cmd(spec, address, as_json, data_root, home, mlflow_uri, follow, command.value))


@app.command("list")
def list_(address: Optional[str] = _ADDRESS, as_json: bool = typer.Option(False, "--json")):
    """Every raysemble sweep on the cluster."""
    from service.jobs_cli import list_cmd
    raise typer.Exit(list_cmd(address, as_json))


@app.command()
def status(sweep_id: str = typer.Argument(..., metavar="ID"), address: Optional[str] = _ADDRESS,
           as_json: bool = typer.Option(False, "--json")):
    """State, trials done/total, best so far and MLflow run of a submitted sweep."""
    from service.jobs_cli import status_cmd
    raise typer.Exit(status_cmd(sweep_id, address, as_json))


@app.command()
def logs(sweep_id: str = typer.Argument(..., metavar="ID"), address: Optional[str] = _ADDRESS,
         follow: bool = typer.Option(False, "--follow", "-f", help="stream until the sweep ends")):
    """The sweep job's output."""
    from service.jobs_cli import logs_cmd
    raise typer.Exit(logs_cmd(sweep_id, address, follow))


@app.command()
def cancel(sweep_id: str = typer.Argument(..., metavar="ID"), address: Optional[str] = _ADDRESS,
           wait: float = typer.Option(60.0, "--wait", help="seconds to wait for the job to stop (0: don't)"),
           as_json: bool = typer.Option(False, "--json")):
    """Stop a submitted sweep."""
    from service.jobs_cli import cancel_cmd
    raise typer.Exit(cancel_cmd(sweep_id, address, wait, as_json))


@app.command()
def deploy(sweep_id: str = typer.Argument(..., metavar="ID"), address: Optional[str] = _ADDRESS,
           wait: float = typer.Option(300.0, "--wait", help="seconds to wait for the deployment (0: don't)"),
           as_json: bool = typer.Option(False, "--json")):
    """Serve a finished sweep's registered ensemble and student with Ray Serve on the cluster."""
    from service.jobs_cli import deploy_cmd
    raise typer.Exit(deploy_cmd(sweep_id, address, wait, as_json))


@app.command()
def api(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8080, "--port"),
        address: Optional[str] = _ADDRESS,
        token: Optional[str] = typer.Option(None, "--token", envvar="RAYSEMBLE_API_TOKEN",
                                            help="bearer token every route but /healthz requires"),
        data_root: list[Path] = typer.Option([], "--data-root", help="directories spec data files may come "
                                             "from (repeatable; none: scikit-learn sets only)"),
        home: Optional[str] = typer.Option(None, "--home", envvar="RAYSEMBLE_HOME",
                                           help="RAYSEMBLE_HOME of submitted sweeps (default ./.raysemble)"),
        mlflow_uri: Optional[str] = typer.Option(None, "--mlflow-uri", envvar="MLFLOW_TRACKING_URI"),
        storage_path: Optional[str] = typer.Option(None, "--storage-path",
                                                   help="Tune storage for every sweep, e.g. s3://bucket/raysemble"),
        max_body_bytes: int = typer.Option(1024 * 1024, "--max-body-bytes"),
        command: JobCommand = _JOB_COMMAND):
    """The REST control plane for submitting and following sweeps (FastAPI)."""
    from service.jobs_cli import api_cmd
    raise typer.Exit(api_cmd(host, port, address, token, data_root, home, mlflow_uri, storage_path, max_body_bytes,
                             command.value))


def _finish(sweep_obj, redo, as_json: bool) -> dict:
    from service.postsweep import PostSweepError, finish_sweep

    import ray

    try:
        return finish_sweep(sweep_obj, use_ray=ray.is_initialized(), redo=redo, console=err)
    except PostSweepError as e:
        err.print(f"[red]failed[/red] {e}", highlight=False)
        raise typer.Exit(EXIT_FAILED)


def _existing(name: str):
    from service.store import SweepNotFound, load_sweep

    try:
        found = load_sweep(name)
    except SweepNotFound as e:
        _invalid(str(e))
    if not found.ranked():
        _invalid(f"NAME: a sweep with at least one finished trial expected, but {name!r} has none")
    return found


def _serve_registered(result: dict, spec, as_json: bool, owns_ray: bool) -> None:
    reg = result["registered"]
    student = reg["student"]["uri"] if "student" in reg else None
    url = _start_serving(reg["ensemble"]["uri"], student, spec.serve, spec.locations())
    if as_json:
        _emit_json({**result, "url": url})
    _block(spec.serve, owns_ray)


def _start_serving(ensemble: str, student: Optional[str], cfg, store=None) -> str:
    from serving.app import curl_for, serve_models
    from serving.loader import ModelSourceError

    try:
        url = serve_models(ensemble, student, cfg, blocking=False, store=store)
    except ModelSourceError as e:
        _invalid(str(e))
    err.print(f"serving at {url}  (Ctrl-C stops)", highlight=False)
    err.print(curl_for(url, cfg.token), highlight=False, soft_wrap=True)
    return url


def _block(serve_cfg, owns_ray: bool) -> None:
    """Serve until Ctrl-C or SIGTERM. A Ray this process started goes down with it (replicas and
    HAProxy included); on a cluster it joined, only the app is deleted."""
    import signal
    import time

    import ray
    from ray import serve

    def stop(signum, frame):
        raise KeyboardInterrupt

    # a shell starts background jobs with SIGINT ignored; `kill -INT` must stop us there too
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    # a second Ctrl-C while stopping would only leave a traceback behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    err.print("stopping…", highlight=False)
    if owns_ray:
        ray.shutdown()
    else:
        serve.delete(serve_cfg.app_name, _blocking=False)


@app.command()
def run(spec: Path = typer.Argument(..., help="sweep spec (YAML or JSON)"),
        ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
        no_serve: bool = typer.Option(False, "--no-serve", help="stop after registering; do not serve"),
        replace: bool = _REPLACE,
        host: Optional[str] = typer.Option(None, "--host", help="serve on this host (default: the spec's serve.host)"),
        port: Optional[int] = typer.Option(None, "--port", help="serve on this port (default: the spec's serve.port)")):
    """Sweep, ensemble, distill, judge on held-out data, register in MLflow, then serve."""
    parsed = _load(spec)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        parsed = parsed.model_copy(update={"serve": _serve_config({**parsed.serve.model_dump(), **overrides})})
    sweep_obj, summary, owns_ray = _sweep(parsed, ray_address, as_json, resume=False, serve_after=not no_serve,
                                          replace=replace)
    if summary["state"] != "SUCCEEDED":
        if as_json:
            _emit_json({"sweep": summary})
        raise typer.Exit(EXIT_FAILED)
    result = _finish(sweep_obj, ("ensemble", "distill"), as_json)
    result["sweep_summary"] = {k: summary[k] for k in ("sweep", "experiment", "mlflow_run_id", "storage_path")}
    if no_serve:
        if as_json:
            _emit_json(result)
        raise typer.Exit(EXIT_OK)
    _serve_registered(result, parsed, as_json, owns_ray)


def _serve_config(raw: dict):
    from pydantic import ValidationError

    from serving.config import ServeConfig
    from service.spec import _format_pydantic

    try:
        return ServeConfig.model_validate(raw)
    except ValidationError as e:
        _invalid([f"serve.{line}" for line in _format_pydantic(e)])


@app.command()
def serve(model: str = typer.Argument(..., help="ensemble: models:/NAME/VERSION, models:/NAME@ALIAS or a bundle dir"),
          student: Optional[str] = typer.Option(None, "--student", help="student model, same forms"),
          host: Optional[str] = typer.Option(None, "--host"),
          port: Optional[int] = typer.Option(None, "--port"),
          config: Optional[Path] = typer.Option(None, "--config", help="YAML of serving options (ServeConfig)")):
    """Serve an ensemble (and its student) over HTTP with Ray Serve until Ctrl-C."""
    import os

    import yaml

    raw: dict = {}
    if config is not None:
        if not config.is_file():
            _invalid(f"--config: an existing file expected, but {str(config)!r} does not exist")
        try:
            raw = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError as e:
            _invalid(f"--config: valid YAML expected, but parsing failed: {str(e).splitlines()[0]}")
        if not isinstance(raw, dict):
            _invalid(f"--config: a mapping of serving options expected, but got {type(raw).__name__}")
    cfg = _serve_config({**raw, **{k: v for k, v in (("host", host), ("port", port)) if v is not None}})
    _start_serving(model, student, cfg)
    _block(cfg, owns_ray=not os.environ.get("RAY_ADDRESS"))


@app.command()
def ensemble(name: str = typer.Argument(..., help="sweep name"),
             as_json: bool = typer.Option(False, "--json")):
    """Rebuild the ensemble of an existing sweep (and judge, register, report again)."""
    result = _finish(_existing(name), ("ensemble",), as_json)
    if as_json:
        _emit_json(result)


@app.command()
def distill(name: str = typer.Argument(..., help="sweep name"),
            as_json: bool = typer.Option(False, "--json")):
    """Redo the distilled student of an existing sweep (and judge, register, report again)."""
    result = _finish(_existing(name), ("distill",), as_json)
    if as_json:
        _emit_json(result)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
