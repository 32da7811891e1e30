"""What travels with a job: a clean copy of raysemble (service/, serving/, trainers/ only: no .venv,
.git, .raysemble or tests), the validated spec as spec.json, a user-code family's module when it lies
beside the spec or in the submitter's cwd, and the environment that points the job at its home.

The entrypoint is always `python -m service.jobrun ...` with fixed arguments: no user string is ever
part of it."""
from __future__ import annotations

import contextlib
import importlib.machinery
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from trainers.atomic import write_atomic

if TYPE_CHECKING:  # importing the spec pulls in torch: the read-only commands do without
    from service.spec import SweepSpec

SPEC_FILE = "spec.json"  # the job's own copy, in its working dir
PACKAGES = ("service", "serving", "trainers")
ROOT = Path(__file__).resolve().parents[2]


def entrypoint(*args: str) -> str:
    return shlex.join(["python", "-m", "service.jobrun", *args])


@contextlib.contextmanager
def runtime_env(home: str | None, mlflow_uri: str | None, spec: "SweepSpec | None" = None,
                code_dirs: Iterable[Path] = (), data_roots: Iterable[str] = ()) -> Iterator[dict]:
    """A job's runtime_env for the block: its working dir (a temporary copy, removed afterwards: Ray has
    uploaded it by then) and its environment variables."""
    with tempfile.TemporaryDirectory(prefix="raysemble-job-") as tmp:
        directory = Path(tmp)
        for name in PACKAGES:
            shutil.copytree(ROOT / name, directory / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if spec is not None:
            # 0600: it may hold serve.token
            write_atomic(directory / SPEC_FILE, spec.model_dump_json(indent=1), mode=0o600)
            ship_factory(directory, spec, code_dirs)
        yield {"working_dir": str(directory), "env_vars": job_env(home, mlflow_uri, data_roots)}


def ship_factory(directory: Path, spec: "SweepSpec", code_dirs: Iterable[Path]) -> Path | None:
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
        return None  # raysemble's own code, shipped already
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


def job_env(home: str | None, mlflow_uri: str | None, data_roots: Iterable[str] = ()) -> dict[str, str]:
    """RAYSEMBLE_HOME and MLFLOW_TRACKING_URI as paths on the cluster (unset: chosen there, by jobrun),
    and the data roots the submitting side checked the spec against: the job opens its data files
    inside them, as the check did (trainers.data.files)."""
    from trainers.data.files import Files

    env = {"PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": os.environ.get("RAY_USAGE_STATS_ENABLED", "1"),
           **(Files(list(data_roots)).env() if data_roots else {})}
    if home:
        env["RAYSEMBLE_HOME"] = home
    if mlflow_uri:
        env["MLFLOW_TRACKING_URI"] = mlflow_uri
    return env
