"""The `raysemble` command. Exit codes: 0 done, 1 failed, 2 invalid input."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Hyperparameter search, k-fold CV, ensembles and distillation on Ray.")
err = Console(stderr=True)
out = Console()

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


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


def _sweep(spec, ray_address: Optional[str], as_json: bool, resume: bool):
    from service.progress import SweepProgress, results_table
    from service.sweep import SweepExists, ray_init, run_sweep, summary

    try:
        if not resume:
            from service.sweep import prepare
            prepare(spec)
    except SweepExists as e:
        _invalid(str(e))
    ray_init(ray_address)
    sweep = run_sweep(spec, SweepProgress(), resume=True)
    result = summary(sweep)
    err.print(results_table(result))
    return sweep, result


@app.command()
def sweep(spec: Path = typer.Argument(..., help="sweep spec (YAML or JSON)"),
          ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join"),
          as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")):
    """Search hyperparameters with k-fold CV; every trial recorded in MLflow."""
    parsed = _load(spec)
    _, result = _sweep(parsed, ray_address, as_json, resume=False)
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
    _, result = _sweep(stored, ray_address, as_json, resume=True)
    if as_json:
        _emit_json(result)
    raise typer.Exit(EXIT_OK if result["state"] == "SUCCEEDED" else EXIT_FAILED)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
