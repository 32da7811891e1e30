"""What a spec may ask of a shared cluster: the Policy `raysemble submit` and the REST API add to parse_spec.

The schema already limits a spec to the registered model families, scikit-learn sets and data
files, and forbids unknown keys everywhere (so nothing in a spec can name a runtime_env or a
command). The one field that names code is model.factory (family torch: the user's own network,
"pkg.module:build"). What is left to check before a spec leaves for a cluster:

- model.factory: the module must lie under one of the operator's factory_prefixes (`raysemble api
  --allow-factory PREFIX`); none by default, so the REST API runs no user code. The CLI (`raysemble
  submit`, whose user can already run anything on the cluster through Ray Jobs) allows any module
  (factory_prefixes=None). The check runs in before_data, before anything imports the module (the
  parameter budget in after_data builds the user's net, i.e. imports and calls the factory).

- data.source, when a file, must lie inside one of the allowed data roots: `..` components,
  absolute paths outside the roots, URLs (`file://`, `s3://`, any `scheme:`), percent-encoded
  characters (`%2e%2e`, `%2f`), `~`, backslashes and control characters are rejected. Links are not
  resolved here: the loader opens the file walking down from the root without following any
  (trainers.data.files), so the check and the read are one step. A relative path is relative to the
  first data root.
- tracking.mlflow_uri and tracking.storage_path: where a sweep writes. With tracking="server"
  (the REST API) a spec must leave both out (422 naming the field) and the server fills in its
  own; with tracking="user" (the CLI, whose user can already run anything on the cluster through
  Ray Jobs) the spec's values are kept.
- a Budget (the REST API's operator sets it): trials, trials x folds x epochs, concurrent trials,
  parameters per model and retries; a spec over it is refused naming the budget and its value.
- serve.* fields that open or enlarge the service (OPERATOR_SERVE_FIELDS) only where the operator
  allows them (allow_serve_fields).

These run inside parse_spec (Policy is its Checks) on the values the schema produced, so the
sandbox sees exactly the path that will be read. A client's body is read by service.spec.reading
(core types only, no anchors or aliases, bounded depth), so a bad body is a 4xx, never a hang or a 5xx.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from service.spec.budget import Budget
from service.spec.checks import Checks
from service.spec.errors import short
from service.spec.schema import SweepSpec
from trainers.data import Dataset
from trainers.data.files import Files

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# a module path: what --allow-factory takes and a factory's module part is made of
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# serve fields that decide who can reach the service or how much of the cluster it takes; the rest
# (topology, batching, health-check timing) only tune a deployment the operator already allows
OPERATOR_SERVE_FIELDS = ("host", "port", "token", "app_name", "ingress", "min_replicas", "max_replicas",
                         "num_cpus", "num_gpus", "max_instances", "max_body_bytes", "max_output_values_per_row")


@dataclass
class Policy(Checks):
    """What the submitting side allows. data_roots: directories a data file must resolve inside."""

    data_roots: list[Path] = field(default_factory=list)
    tracking: str = "user"  # "server": the spec may not set mlflow_uri / storage_path
    mlflow_uri: str | None = None  # with tracking="server": what every spec gets
    storage_path: str | None = None
    budget: Budget | None = None  # None: no budget (a trusted CLI user)
    allow_serve_fields: bool = True  # False: OPERATOR_SERVE_FIELDS may not be set by the spec
    # modules model.factory may name, as whole dotted components ("pkg" allows pkg and pkg.models,
    # not pkgevil); () allows none (the safe default); None allows any (a trusted CLI user)
    factory_prefixes: tuple[str, ...] | None = ()
    # check the data on a sample (its first rows' features, every row's label; trainers.data.files):
    # the REST API, whose process must stay small; the job that runs the sweep loads it all
    sample_rows: int | None = None

    def roots(self) -> list[Path]:
        return [Path(os.path.realpath(Path(r).expanduser())) for r in self.data_roots]

    def base_dir(self) -> Path:
        roots = self.roots()
        return roots[0] if roots else Path.cwd()

    def files(self) -> Files:
        """Data files opened inside the roots, no link followed; a sample when sample_rows is set."""
        return Files(self.roots(), self.sample_rows)

    def before_data(self, spec: SweepSpec) -> list[str]:
        problems, resolved = data_source_problems(spec.data.source, self)
        if resolved:
            spec.data.source = resolved  # the path checked is the path read
        if spec.data.test_source is not None:
            found, resolved = data_source_problems(spec.data.test_source, self, "data.test_source")
            problems += found
            if resolved:
                spec.data.test_source = resolved
        problem = factory_problem(spec.model.factory, self.factory_prefixes)
        if problem:
            problems.append(problem)
        if self.tracking == "server":
            for key in ("mlflow_uri", "storage_path"):
                value = getattr(spec.tracking, key)
                if value is not None:
                    problems.append(f"tracking.{key}: set by the server, so it must be left out of the spec, "
                                    f"but got {value[:120]!r}")
        if not self.allow_serve_fields:
            for key in OPERATOR_SERVE_FIELDS:
                if key in spec.serve.model_fields_set:
                    problems.append(f"serve.{key}: set by the operator, so it must be left out of the spec, "
                                    f"but got {short(getattr(spec.serve, key))}")
        if self.budget is not None:
            problems += self.budget.problems(spec)
        if not problems and self.tracking == "server":
            if self.mlflow_uri:
                spec.tracking.mlflow_uri = self.mlflow_uri
            if self.storage_path:
                spec.tracking.storage_path = self.storage_path
        return problems

    def after_data(self, spec: SweepSpec, dataset: Dataset) -> list[str]:
        return self.budget.model_problems(spec, dataset) if self.budget is not None else []


def _inside(path: Path, root: Path) -> bool:
    try:
        return os.path.commonpath([str(path), str(root)]) == str(root)
    except ValueError:
        return False


def factory_prefix_problem(prefix: object) -> str | None:
    """Why an operator's --allow-factory value is not a module path, or None."""
    if isinstance(prefix, str) and _MODULE.match(prefix):
        return None
    return (f"--allow-factory: a module path such as 'mypkg' or 'mypkg.models' expected, but got "
            f"{str(prefix)[:120]!r}")


def factory_problem(factory: object, prefixes: tuple[str, ...] | None) -> str | None:
    """Why model.factory may not run here, or None. A prefix matches whole module path components,
    so "pkg" allows "pkg:build" and "pkg.models:build" but not "pkgevil:build"."""
    if factory is None or prefixes is None:
        return None
    module = str(factory).partition(":")[0]
    if any(module == p or module.startswith(p + ".") for p in prefixes):
        return None
    return (f"model.factory: a module under an operator-allowed prefix ({list(prefixes)}) expected, but got "
            f"{str(factory)[:120]!r} (the REST API runs no user code unless `raysemble api --allow-factory "
            f"PREFIX`)")


def data_source_problems(source: object, policy: Policy, where: str = "data.source") -> tuple[list[str], str | None]:
    """([problems], resolved absolute path or None) for a raw data.source or data.test_source value."""
    if not isinstance(source, str) or source.startswith("sklearn:"):
        return [], None  # the schema checks the type and the scikit-learn set name (test_source: refused)
    if any(ord(c) < 32 or ord(c) == 127 for c in source):
        return [f"{where}: a plain file path expected, but it contains control characters"], None
    if _PERCENT.search(source):
        return [f"{where}: a plain file path expected, but got URL-encoded characters in {source!r}"], None
    if "://" in source or _SCHEME.match(source):
        return [f"{where}: a file path inside the data roots or 'sklearn:<name>' expected, "
                f"but got a URL {source!r}"], None
    if "\\" in source:
        return [f"{where}: a '/'-separated file path expected, but got a backslash in {source!r}"], None
    if source.startswith("~"):
        return [f"{where}: a path relative to a data root or absolute expected, but got {source!r}"], None
    if ".." in Path(source).parts:
        return [f"{where}: a path without '..' components expected, but got {source!r}"], None
    roots = policy.roots()
    if not roots:
        return [f"{where}: only 'sklearn:<name>' sources are accepted here (no data roots configured), "
                f"but got {source!r}"], None
    raw = Path(source)
    # as written, links not followed: whether one lies on the way is for the open to find (it refuses any,
    # trainers.data.files), so what is checked here is what will be read
    resolved = Path(os.path.normpath(raw if raw.is_absolute() else roots[0] / raw))
    if not any(_inside(resolved, root) for root in roots):
        shown = [str(r) for r in roots]
        return [f"{where}: a file inside the data roots {shown} expected, but {source!r} is outside them"], None
    return [], str(resolved)
