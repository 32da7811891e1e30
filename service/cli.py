"""The `raysemble` command. Exit codes: 0 done, 1 failed, 2 invalid input."""
from __future__ import annotations

import errno
import json
import os
import stat
import sys
from contextlib import ExitStack, contextmanager
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

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED, EXIT_STOPPED = 0, 1, 2, 130, 143


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


@contextmanager
def _driving(name: str, command: str):
    """Hold the sweep for the block (service.sweeplock): exit 2 naming the holder while another
    process drives it. The OS drops the hold when this process ends, however it ends."""
    from service.store import sweep_dir
    from service.sweeplock import SweepBusy, hold

    directory = sweep_dir(name)
    with ExitStack() as stack:
        try:
            stack.enter_context(hold(directory, command))
        except SweepBusy as e:
            _invalid(str(e))
        except OSError as e:
            _invalid(f"NAME: a sweep directory this user can write expected, but {str(directory)!r} is not "
                     f"({e.strerror or type(e).__name__})")
        yield


def _sweep(spec, ray_address: Optional[str], as_json: bool, resume: bool, serve_after: bool = False,
           replace: bool = False):
    """-> (sweep, summary, whether this process started Ray). The caller holds the sweep (_driving)."""
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
    if result["state"] in ("INTERRUPTED", "STOPPED"):
        err.print(f"{result['state'].lower()}: {len(result['trials'])} trials recorded; continue with "
                  f"`raysemble resume {spec.name}`", highlight=False)
        if as_json:
            _emit_json(result)
        raise typer.Exit(EXIT_INTERRUPTED if result["state"] == "INTERRUPTED" else EXIT_STOPPED)
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
    with _driving(parsed.name, "raysemble sweep"):
        _, result, _ = _sweep(parsed, ray_address, as_json, resume=False, replace=replace)
    if as_json:
        _emit_json(result)
    raise typer.Exit(EXIT_OK if result["state"] == "SUCCEEDED" else EXIT_FAILED)


@app.command()
def resume(name: str = typer.Argument(..., help="sweep name (or, with --address, its id)"),
           spec: Optional[Path] = typer.Option(None, "--spec", help="must equal the stored spec"),
           ray_address: Optional[str] = typer.Option(None, "--ray-address"),
           as_json: bool = typer.Option(False, "--json"),
           address: Optional[str] = typer.Option(None, "--address", help="a sweep submitted to this cluster (its "
                                                 "Ray dashboard URL): resumed there as a new Ray Job"),
           follow: bool = typer.Option(False, "--follow", help="with --address: stream the job's logs until it ends"),
           finish: bool = typer.Option(False, "--finish", help="then ensemble, distill and register, as `raysemble "
                                       "run` does (a submitted `run` sweep resumes with this)")):
    """Continue a sweep whose driver died or was cancelled, without redoing finished trials."""
    if address is not None:
        from service.jobs_cli import resume_cmd
        raise typer.Exit(resume_cmd(name, address, as_json, follow))
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
    with _driving(name, "raysemble resume"):
        sweep_obj, result, _ = _sweep(stored, ray_address, as_json, resume=True)
        succeeded = result["state"] == "SUCCEEDED"
        if finish and succeeded:  # _finish exits EXIT_FAILED itself when a post-sweep step fails
            result = {**_finish(sweep_obj, ("ensemble", "distill"), as_json), "sweep_summary": result}
    if as_json:
        _emit_json(result)
    raise typer.Exit(EXIT_OK if succeeded else EXIT_FAILED)


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
                                            help="bearer token every route but /healthz requires; set it "
                                                 "in RAYSEMBLE_API_TOKEN or use --token-file (a command line "
                                                 "is visible to every user of the machine)"),
        token_file: Optional[Path] = typer.Option(None, "--token-file", envvar="RAYSEMBLE_API_TOKEN_FILE",
                                                  help="file holding the bearer token; must be readable by its "
                                                       "owner only (chmod 600)"),
        data_root: list[Path] = typer.Option([], "--data-root", help="directories spec data files may come "
                                             "from (repeatable; none: scikit-learn sets only)"),
        home: Optional[str] = typer.Option(None, "--home", envvar="RAYSEMBLE_HOME",
                                           help="RAYSEMBLE_HOME of submitted sweeps (default ./.raysemble)"),
        mlflow_uri: Optional[str] = typer.Option(None, "--mlflow-uri", envvar="MLFLOW_TRACKING_URI"),
        storage_path: Optional[str] = typer.Option(None, "--storage-path",
                                                   help="Tune storage for every sweep, e.g. s3://bucket/raysemble"),
        max_body_bytes: int = typer.Option(1024 * 1024, "--max-body-bytes"),
        command: JobCommand = _JOB_COMMAND,
        max_trials: Optional[int] = typer.Option(None, "--max-trials", help="budget: trials per sweep [1000]"),
        max_fold_epochs: Optional[int] = typer.Option(None, "--max-fold-epochs",
                                                      help="budget: trials x folds x epochs per sweep [100000]"),
        max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent",
                                                     help="budget: concurrent trials per sweep [8]"),
        max_parameters: Optional[int] = typer.Option(None, "--max-parameters",
                                                     help="budget: parameters per model [10000000]"),
        max_failures: Optional[int] = typer.Option(None, "--max-failures",
                                                   help="budget: retries per trial (search.max_failures) [3]"),
        allow_serve_fields: bool = typer.Option(False, "--allow-serve-fields/--no-allow-serve-fields",
                                                help="let API users set serve.host/port/token/replicas/GPUs..."),
        allow_factory: list[str] = typer.Option([], "--allow-factory", metavar="PREFIX",
                                                help="a module prefix a spec's model.factory may name, e.g. "
                                                     "mynets (repeatable; none: the API runs no user code)")):
    """The REST control plane for submitting and following sweeps (FastAPI)."""
    from service.jobs_cli import api_cmd

    if token_file is not None:
        if token:
            _invalid("--token-file: one source of the API token expected, but got --token-file and "
                     "--token / RAYSEMBLE_API_TOKEN too")
        token = read_token_file(token_file, "--token-file")
    elif token and any(a == "--token" or a.startswith("--token=") for a in sys.argv[1:]):
        err.print("[yellow]warning[/yellow] --token puts the token on the command line, where every user of "
                  "this machine can read it (ps); use RAYSEMBLE_API_TOKEN or --token-file instead", highlight=False)
    budget = {"max_trials": max_trials, "max_fold_epochs": max_fold_epochs, "max_concurrent": max_concurrent,
              "max_parameters": max_parameters, "max_failures": max_failures}
    raise typer.Exit(api_cmd(host, port, address, token, data_root, home, mlflow_uri, storage_path, max_body_bytes,
                             command.value, budget=budget, allow_serve_fields=allow_serve_fields,
                             allow_factory=allow_factory))


MAX_TOKEN_FILE_BYTES = 4096  # a token is a line; anything larger is the wrong file


def read_token_file(path: Path, option: str) -> str:
    """The token in PATH, which only its owner may read or write (mode 0600 or stricter); exit 2 otherwise."""
    try:
        # O_NOFOLLOW + fstat: the permissions checked are those of the file read, not of a link's target;
        # O_NONBLOCK: a FIFO must not hang us (no effect on a regular file)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        why = "it is a symbolic link: name the file itself" if e.errno == errno.ELOOP else \
            (e.strerror or type(e).__name__)
        _invalid(f"{option}: a readable token file expected, but {str(path)!r} cannot be opened ({why})")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        _invalid(f"{option}: a readable token file expected, but {str(path)!r} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if info.st_mode & 0o077:
            _invalid(f"{option}: a token file only its owner can access (mode 0600) expected, but {str(path)!r} "
                     f"has mode {stat.S_IMODE(info.st_mode):04o}; run `chmod 600 {path}`")
        if info.st_uid != os.geteuid():
            _invalid(f"{option}: a token file owned by this user (uid {os.geteuid()}) expected, but "
                     f"{str(path)!r} is owned by uid {info.st_uid}")
        raw = f.read(MAX_TOKEN_FILE_BYTES + 1)
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        _invalid(f"{option}: a token file of at most {MAX_TOKEN_FILE_BYTES} bytes expected, but {str(path)!r} "
                 f"is larger")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        _invalid(f"{option}: one line holding the token (printable ASCII, no spaces) expected, but "
                 f"{str(path)!r} holds something else")
    return token


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
    # the token itself is never printed: a pasted command line would show it to every user (ps)
    line = curl_for(url)
    if cfg.token:
        line += " -H @auth-header.txt  # a 0600 file holding the line: Authorization: Bearer <serve.token>"
    err.print(line, highlight=False, soft_wrap=True)
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
    # held through the post-sweep steps; serving needs no hold (it reads the registry, not the sweep)
    with _driving(parsed.name, "raysemble run"):
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
    found = _existing(name)
    with _driving(name, "raysemble ensemble"):
        result = _finish(found, ("ensemble",), as_json)
    if as_json:
        _emit_json(result)


@app.command()
def distill(name: str = typer.Argument(..., help="sweep name"),
            as_json: bool = typer.Option(False, "--json")):
    """Redo the distilled student of an existing sweep (and judge, register, report again)."""
    found = _existing(name)
    with _driving(name, "raysemble distill"):
        result = _finish(found, ("distill",), as_json)
    if as_json:
        _emit_json(result)


def main() -> None:
    # a terminal user reads our progress line and tables; MLflow's database set-up notes and
    # per-file download bars bury them (warnings and errors still show). Read when mlflow is imported.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    app()


if __name__ == "__main__":
    main()
