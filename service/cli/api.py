"""`raysemble api`: the REST control plane (service.api) with the operator's limits and its token."""
from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import Optional

import typer

from service import cluster
from service.cli.common import ADDRESS, JOB_COMMAND, JobCommand, app, err, invalid


@app.command()
def api(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8080, "--port"),
        address: Optional[str] = ADDRESS,
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
        command: JobCommand = JOB_COMMAND,
        max_trials: Optional[int] = typer.Option(None, "--max-trials", help="budget: trials per sweep [1000]"),
        max_fold_epochs: Optional[int] = typer.Option(None, "--max-fold-epochs",
                                                      help="budget: trials x folds x epochs per sweep [100000]"),
        max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent",
                                                     help="budget: concurrent trials per sweep [8]"),
        max_parameters: Optional[int] = typer.Option(None, "--max-parameters",
                                                     help="budget: parameters per model [10000000]"),
        max_failures: Optional[int] = typer.Option(None, "--max-failures",
                                                   help="budget: retries per trial (search.max_failures) [3]"),
        max_workers_per_trial: Optional[int] = typer.Option(None, "--max-workers-per-trial",
                                                            help="budget: resources.workers_per_trial [4]"),
        max_cpus_per_trial: Optional[float] = typer.Option(None, "--max-cpus-per-trial",
                                                           help="budget: CPUs one trial holds [4]"),
        max_gpus_per_trial: Optional[float] = typer.Option(None, "--max-gpus-per-trial",
                                                           help="budget: GPUs one trial holds [1]"),
        allow_serve_fields: bool = typer.Option(False, "--allow-serve-fields/--no-allow-serve-fields",
                                                help="let API users set serve.host/port/token/replicas/GPUs..."),
        allow_factory: list[str] = typer.Option([], "--allow-factory", metavar="PREFIX",
                                                help="a module prefix a spec's model.factory may name, e.g. "
                                                     "mynets (repeatable; none: the API runs no user code)")):
    """The REST control plane for submitting and following sweeps (FastAPI)."""
    if token_file is not None:
        if token:
            invalid("--token-file: one source of the API token expected, but got --token-file and "
                     "--token / RAYSEMBLE_API_TOKEN too")
        token = read_token_file(token_file, "--token-file")
    elif token and any(a == "--token" or a.startswith("--token=") for a in sys.argv[1:]):
        err.print("[yellow]warning[/yellow] --token puts the token on the command line, where every user of "
                  "this machine can read it (ps); use RAYSEMBLE_API_TOKEN or --token-file instead", highlight=False)
    budget = {"max_trials": max_trials, "max_fold_epochs": max_fold_epochs, "max_concurrent": max_concurrent,
              "max_parameters": max_parameters, "max_failures": max_failures,
              "max_workers_per_trial": max_workers_per_trial, "max_cpus_per_trial": max_cpus_per_trial,
              "max_gpus_per_trial": max_gpus_per_trial}
    _serve_api(host, port, address, token, data_root, home, mlflow_uri, storage_path, max_body_bytes,
               command.value, budget=budget, allow_serve_fields=allow_serve_fields, allow_factory=allow_factory)


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
        invalid(f"{option}: a readable token file expected, but {str(path)!r} cannot be opened ({why})")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        invalid(f"{option}: a readable token file expected, but {str(path)!r} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if info.st_mode & 0o077:
            invalid(f"{option}: a token file only its owner can access (mode 0600) expected, but {str(path)!r} "
                     f"has mode {stat.S_IMODE(info.st_mode):04o}; run `chmod 600 {path}`")
        if info.st_uid != os.geteuid():
            invalid(f"{option}: a token file owned by this user (uid {os.geteuid()}) expected, but "
                     f"{str(path)!r} is owned by uid {info.st_uid}")
        raw = f.read(MAX_TOKEN_FILE_BYTES + 1)
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        invalid(f"{option}: a token file of at most {MAX_TOKEN_FILE_BYTES} bytes expected, but {str(path)!r} "
                 f"is larger")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        invalid(f"{option}: one line holding the token (printable ASCII, no spaces) expected, but "
                 f"{str(path)!r} holds something else")
    return token


def _serve_api(host: str, port: int, address: str | None, token: str | None, data_roots: list[Path],
            home: str | None, mlflow_uri: str | None, storage_path: str | None, max_body_bytes: int,
            job_command: str = "run", budget: dict | None = None, allow_serve_fields: bool = False,
            allow_factory: list[str] | None = None) -> None:
    """budget: Budget fields the operator set (max_trials, max_fold_epochs, max_concurrent,
    max_parameters, max_failures, max_workers_per_trial, max_cpus_per_trial, max_gpus_per_trial); the rest
    keep their defaults. allow_factory: module prefixes a
    spec's model.factory may name (none: the API runs no user code)."""
    from pydantic import ValidationError

    from service.api import Settings, serve_api
    from service.spec import Budget, factory_prefix_problem, format_pydantic

    try:
        limits = Budget.model_validate({k: v for k, v in (budget or {}).items() if v is not None})
    except ValidationError as e:
        invalid([f"--{loc.replace('_', '-')}:{msg}" for loc, msg in
                 (line.split(":", 1) for line in format_pydantic(e))])

    bad_prefixes = [p for p in map(factory_prefix_problem, allow_factory or []) if p]
    if bad_prefixes:
        invalid(bad_prefixes)

    token = token or os.environ.get("RAYSEMBLE_API_TOKEN")
    if not token:
        invalid("--token: a bearer token for the API expected (or RAYSEMBLE_API_TOKEN), but got none")
    try:
        address = cluster.resolve_address(address)
    except cluster.JobsError as e:
        invalid(str(e))
    settings = Settings.build(address=address, token=token, data_roots=data_roots, home=home,
                              mlflow_uri=mlflow_uri, storage_path=storage_path, max_body_bytes=max_body_bytes,
                              job_command=job_command, budget=limits, allow_serve_fields=allow_serve_fields,
                              factory_prefixes=tuple(allow_factory or ()))
    serve_api(settings, host, port)
