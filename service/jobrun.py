"""The entrypoint of raysemble's Ray Jobs, run on the cluster inside the job's working dir.

    python -m service.jobrun pipeline --command run|sweep spec.json
    python -m service.jobrun resume --command run|sweep SWEEP_NAME
    python -m service.jobrun deploy SWEEP_NAME

Sets the cluster-side defaults the submitter could not know (RAYSEMBLE_HOME = ~/.raysemble of the
user the cluster runs as, MLflow in SQLite under it), moves to RAYSEMBLE_HOME (MLflow's default
artifact root ./mlruns must outlive the job's working dir) and runs the CLI command.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from serving.home import CLUSTER_HOME, HOME_VAR, locations
from service.cluster.jobs import COMMANDS


def _defaults() -> None:
    where = locations(home=os.environ.get(HOME_VAR) or CLUSTER_HOME)
    where.home.mkdir(parents=True, exist_ok=True)
    # the CLI this execs, its trials and any replica resolve the same locations from these
    os.environ.update(where.env())
    home = where.home
    # the job's working dir is deleted some time after the job: MLflow's default artifact root
    # (./mlruns, for SQLite stores) must not be inside it, so run from RAYSEMBLE_HOME instead,
    # with the shipped packages still importable
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)
    sys.path.insert(0, os.getcwd())
    os.chdir(home)


def pipeline(command: str, spec: str) -> int:
    """Replace this process with the CLI command: its exit code is the job's."""
    args = [command, spec, "--json"] + (["--no-serve"] if command == "run" else [])
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "service.cli", *args])
    return 1  # not reached


def resume(command: str, name: str) -> int:
    """Continue the sweep (`raysemble resume`); a `run` sweep then ensembles, distils and registers."""
    args = ["resume", name, "--json"] + (["--finish"] if command == "run" else [])
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "service.cli", *args])
    return 1  # not reached


def deploy(name: str) -> int:
    import ray

    from serving.app import serve_models
    from service.store import load_sweep

    sweep = load_sweep(name)
    registered = sweep.files.registered()
    if "ensemble" not in registered:
        print(f"error ID: a sweep with a registered ensemble expected, but {name!r} has none "
              f"(run the full pipeline: raysemble run)", file=sys.stderr)
        return 2
    ensemble = registered["ensemble"]["uri"]
    student = registered.get("student", {}).get("uri")
    ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=False)
    url = serve_models(ensemble, student, sweep.spec.serve, store=sweep.where)
    print(json.dumps({"sweep": name, "url": url, "app": sweep.spec.serve.app_name, "ensemble": ensemble,
                      "student": student}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.jobrun")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pipeline")
    p.add_argument("--command", choices=COMMANDS, required=True)
    p.add_argument("spec")
    d = sub.add_parser("deploy")
    d.add_argument("name")
    r = sub.add_parser("resume")
    r.add_argument("--command", choices=COMMANDS, required=True)
    r.add_argument("name")
    args = parser.parse_args(argv)
    if args.what == "pipeline":
        args.spec = os.path.abspath(args.spec)
    _defaults()
    if args.what == "pipeline":
        return pipeline(args.command, args.spec)
    if args.what == "resume":
        return resume(args.command, args.name)
    return deploy(args.name)


if __name__ == "__main__":
    sys.exit(main())
