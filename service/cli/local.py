"""Sweeps on this machine (or a Ray cluster it joins): validate, sweep, run, resume, ensemble, distill."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Optional

import typer

from service.cli.common import (AS_JSON, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED, app, emit_json, err,
                                failed, invalid, load, out, serve_config)

_REPLACE = typer.Option(False, "--replace", help="start again when a sweep of this name exists (its directory and "
                        "Tune experiment are removed; MLflow runs and registered versions stay)")
_RAY_ADDRESS = typer.Option(None, "--ray-address", help="Ray cluster to join")


@app.command()
def validate(spec: Path = typer.Argument(..., help="sweep spec (YAML or JSON)")):
    """Check a spec without starting anything."""
    from service.store import describe_data

    parsed = load(spec)
    out.print(f"ok: {parsed.name} ({parsed.search.algorithm}, {parsed.cv.describe()}, "
              f"{parsed.resources.resolved_executor()} executor)", highlight=False)
    dataset = parsed.dataset()
    data = describe_data(dataset)
    if data["task"] == "regression":
        t = data["target"]
        line = (f"data: {data['rows']} rows, a numeric target: regression (mean {t['mean']:.4g}, std {t['std']:.4g}, "
                f"{t['min']:.4g} to {t['max']:.4g}); metric {parsed.search.metric} ({parsed.search.mode})")
    else:
        line = (f"data: {data['rows']} rows, classification, {len(data['classes'])} classes "
                f"{[str(c)[:20] for c in data['classes'][:10]]}")
    if "schema" in data:
        kinds = [c["kind"] for c in data["schema"]["columns"]]
        line += (f"; a table of {len(kinds)} feature columns ({kinds.count('numeric')} numeric, "
                 f"{kinds.count('categorical')} categorical)")
    if data["rows_without_target_dropped"]:
        line += f"; {data['rows_without_target_dropped']} rows without a target dropped"
    out.print(line, highlight=False, soft_wrap=True)
    search = parsed.search
    if search.preset == "tabular":
        out.print(f"preset tabular: {len(search.start_with)} portfolio configurations first, then {search.algorithm}; "
                  f"{search.num_trials} trials over {parsed.families()}", highlight=False, soft_wrap=True)
    if search.time_budget_s is not None:
        from trainers.data import split_indices

        search_s = search.deadlines(0.0, len(split_indices(dataset, parsed.data)[0]))[0]
        out.print(f"time budget: {search.time_budget_s:g} s ({search_s:.0f} s search, the rest ensemble and "
                  f"student)", highlight=False, soft_wrap=True)
    if data.get("id_like"):
        out.print(f"note: {[c[:40] for c in data['id_like'][:10]]} have a different value in every row (IDs?): "
                  f"data.drop leaves them out", highlight=False, soft_wrap=True)


@contextmanager
def _driving(name: str, command: str):
    """Hold the sweep for the block (service.sweeplock): exit 2 naming the holder while another
    process drives it. The OS drops the hold when this process ends, however it ends."""
    from service import sweepdir
    from service.sweeplock import SweepBusy, hold

    directory = sweepdir.of(name).path
    with ExitStack() as stack:
        try:
            stack.enter_context(hold(directory, command))
        except SweepBusy as e:
            invalid(str(e))
        except OSError as e:
            invalid(f"NAME: a sweep directory this user can write expected, but {str(directory)!r} is not "
                    f"({e.strerror or type(e).__name__})")
        yield


def _search(target, ray_address: Optional[str], as_json: bool, serve_after: bool = False, replace: bool = False):
    """Run a new sweep (target: a SweepSpec) or continue one (a Sweep) -> (sweep, summary, whether this
    process started Ray). The caller holds the sweep (_driving)."""
    from service.progress import SweepProgress, results_table
    from service.spec import SweepSpec
    from service.sweep import SweepExists, prepare, ray_init, run_sweep, summary

    if isinstance(target, SweepSpec):
        try:
            target = prepare(target, replace=replace)
        except SweepExists as e:
            invalid(str(e))
        search = target.spec.search
        err.print(f"task: {target.spec.data.task}; metric {search.metric} ({search.mode})", highlight=False)
    owns_ray = ray_init(ray_address, target.spec.serve if serve_after else None)
    sweep = run_sweep(target, SweepProgress())
    result = summary(sweep)
    err.print(results_table(result))
    if result["state"] in ("INTERRUPTED", "STOPPED"):
        err.print(f"{result['state'].lower()}: {len(result['trials'])} trials recorded; continue with "
                  f"`raysemble resume {sweep.name}`", highlight=False)
        if as_json:
            emit_json(result)
        raise typer.Exit(EXIT_INTERRUPTED if result["state"] == "INTERRUPTED" else EXIT_STOPPED)
    return sweep, result, owns_ray


@app.command()
def sweep(spec: Path = typer.Argument(..., help="sweep spec (YAML or JSON)"), ray_address: Optional[str] = _RAY_ADDRESS,
          as_json: bool = AS_JSON, replace: bool = _REPLACE):
    """Search hyperparameters with k-fold CV; every trial recorded in MLflow."""
    parsed = load(spec)
    with _driving(parsed.name, "raysemble sweep"):
        _, result, _ = _search(parsed, ray_address, as_json, replace=replace)
    if as_json:
        emit_json(result)
    raise typer.Exit(EXIT_OK if result["state"] == "SUCCEEDED" else EXIT_FAILED)


@app.command()
def resume(name: str = typer.Argument(..., help="sweep name (or, with --address, its id)"),
           spec: Optional[Path] = typer.Option(None, "--spec", help="must equal the stored spec"),
           ray_address: Optional[str] = _RAY_ADDRESS, as_json: bool = typer.Option(False, "--json"),
           address: Optional[str] = typer.Option(None, "--address", help="a sweep submitted to this cluster (its "
                                                 "Ray dashboard URL): resumed there as a new Ray Job"),
           follow: bool = typer.Option(False, "--follow", help="with --address: stream the job's logs until it ends"),
           finish: bool = typer.Option(False, "--finish", help="then ensemble, distill and register, as `raysemble "
                                       "run` does (a submitted `run` sweep resumes with this)")):
    """Continue a sweep whose driver died or was cancelled, without redoing finished trials."""
    if address is not None:
        from service.cli.cluster import resume_on_cluster

        resume_on_cluster(name, address, as_json, follow)
    stored = _load(name)
    from service.sweep import SpecChanged, check_same_spec

    if spec is not None:
        try:
            check_same_spec(stored.spec, load(spec))
        except SpecChanged as e:
            invalid(str(e))
    with _driving(name, "raysemble resume"):
        sweep_obj, result, _ = _search(stored, ray_address, as_json)
        succeeded = result["state"] == "SUCCEEDED"
        if finish and succeeded:  # _finish exits EXIT_FAILED itself when a post-sweep step fails
            result = {**_finish(sweep_obj, ("ensemble", "distill"), sweep_obj.run_deadline()), "sweep_summary": result}
    if as_json:
        emit_json(result)
    raise typer.Exit(EXIT_OK if succeeded else EXIT_FAILED)


@app.command()
def run(spec: Path = typer.Argument(..., help="sweep spec (YAML or JSON)"), ray_address: Optional[str] = _RAY_ADDRESS,
        as_json: bool = AS_JSON,
        no_serve: bool = typer.Option(False, "--no-serve", help="stop after registering; do not serve"),
        replace: bool = _REPLACE,
        host: Optional[str] = typer.Option(None, "--host", help="serve on this host (default: the spec's serve.host)"),
        port: Optional[int] = typer.Option(None, "--port", help="serve on this port (default: the spec's serve.port)")):
    """Sweep, ensemble, distill, judge on held-out data, register in MLflow, then serve."""
    from service.cli.serve import serve_registered

    parsed = load(spec)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        parsed.serve = serve_config({**parsed.serve.model_dump(), **overrides})
    # held through the post-sweep steps; serving needs no hold (it reads the registry, not the sweep)
    with _driving(parsed.name, "raysemble run"):
        sweep_obj, summary, owns_ray = _search(parsed, ray_address, as_json, serve_after=not no_serve,
                                               replace=replace)
        if summary["state"] != "SUCCEEDED":
            if as_json:
                emit_json({"sweep": summary})
            raise typer.Exit(EXIT_FAILED)
        result = _finish(sweep_obj, ("ensemble", "distill"), sweep_obj.run_deadline())
    result["sweep_summary"] = {k: summary[k] for k in ("sweep", "experiment", "mlflow_run_id", "storage_path")}
    if no_serve:
        if as_json:
            emit_json(result)
        raise typer.Exit(EXIT_OK)
    serve_registered(result, sweep_obj, as_json, owns_ray)


def _finish(sweep_obj, redo, deadline: float | None = None) -> dict:
    import ray

    from service.postsweep import PostSweepError, finish_sweep

    try:
        return finish_sweep(sweep_obj, use_ray=ray.is_initialized(), redo=redo, console=err, deadline=deadline)
    except PostSweepError as e:
        failed(str(e))


def _load(name: str):
    """The stored sweep, or exit 2; a name with no sweep is answered before the imports a sweep's steps
    need (seconds)."""
    from service import sweepdir

    try:
        sweepdir.existing(name)
        from service.store import load_sweep

        return load_sweep(name)
    except sweepdir.SweepNotFound as e:
        invalid(str(e))


def _existing(name: str):
    found = _load(name)
    if not found.ranked():
        invalid(f"NAME: a sweep with at least one finished trial expected, but {name!r} has none")
    return found


def _redo(name: str, step: str, as_json: bool) -> None:
    found = _existing(name)
    with _driving(name, f"raysemble {step}"):
        result = _finish(found, (step,))
    if as_json:
        emit_json(result)


@app.command()
def ensemble(name: str = typer.Argument(..., help="sweep name"), as_json: bool = typer.Option(False, "--json")):
    """Rebuild the ensemble of an existing sweep (and judge, register, report again)."""
    _redo(name, "ensemble", as_json)


@app.command()
def distill(name: str = typer.Argument(..., help="sweep name"), as_json: bool = typer.Option(False, "--json")):
    """Redo the distilled student of an existing sweep (and judge, register, report again)."""
    _redo(name, "distill", as_json)
