"""What every command shares: the typer app, one set of exit codes, the consoles and the printers.

Exit codes: 0 done (a server stopped with Ctrl-C included), 1 failed, 2 invalid input (spec, file,
name, id, address, token), 130 a sweep interrupted with Ctrl-C, 143 one stopped by SIGTERM."""
from __future__ import annotations

import json
import sys
from enum import Enum
from typing import NoReturn

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Hyperparameter search, k-fold CV, ensembles and distillation on Ray.")
# logs and CI capture are not terminals: rich would squeeze tables to 80 columns there
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console()

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED, EXIT_STOPPED = 0, 1, 2, 130, 143

ADDRESS = typer.Option(None, "--address", envvar="RAY_ADDRESS",
                       help="Ray dashboard URL of the cluster, e.g. http://HEAD:8265 (default: $RAY_ADDRESS)")
AS_JSON = typer.Option(False, "--json", help="print one JSON object as the last line")


class JobCommand(str, Enum):
    run = "run"
    sweep = "sweep"


JOB_COMMAND = typer.Option(JobCommand.run, "--command", envvar="RAYSEMBLE_JOB_COMMAND",
                           help="what a submitted sweep's job runs: run (search, ensemble, distill, register) "
                                "or sweep (the search alone)")


def invalid(lines: str | list[str]) -> NoReturn:
    """Each problem on its own line, then exit 2."""
    for line in [lines] if isinstance(lines, str) else lines:
        err.print(f"[red]error[/red] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_INVALID)


def failed(message: str) -> NoReturn:
    err.print(f"[red]failed[/red] {message}", highlight=False)
    raise typer.Exit(EXIT_FAILED)


def emit_json(payload) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def load(path):
    """A user's spec file through the one parse path; exit 2 listing its problems."""
    from service.spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as e:
        invalid(e.problems)


def serve_config(raw: dict):
    from pydantic import ValidationError

    from serving.config import ServeConfig
    from service.spec import format_pydantic

    try:
        return ServeConfig.model_validate(raw)
    except ValidationError as e:
        invalid([f"serve.{line}" for line in format_pydantic(e)])
