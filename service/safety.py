"""What a spec may ask of a shared cluster: checks applied by `raysemble submit` and the REST API.

The schema already limits a spec to the registered model families, scikit-learn sets and data
files, and forbids unknown keys everywhere (so nothing in a spec can name a runtime_env or a
command). The one field that names code is model.factory (family torch: the user's own network,
"pkg.module:build"). What is left to check before a spec leaves for a cluster:

- model.factory: the module must lie under one of the operator's factory_prefixes (`raysemble api
  --allow-factory PREFIX`); none by default, so the REST API runs no user code. The CLI (`raysemble
  submit`, whose user can already run anything on the cluster through Ray Jobs) allows any module
  (factory_prefixes=None). The check runs in before_data, before anything imports the module (the
  parameter budget in after_data builds the user's net, i.e. imports and calls the factory).

- data.source, when a file, must resolve inside one of the allowed data roots: `..` components,
  absolute paths outside the roots, URLs (`file://`, `s3://`, any `scheme:`), percent-encoded
  characters (`%2e%2e`, `%2f`), `~`, backslashes and control characters are rejected, and the
  path is resolved with symlinks followed, so a link pointing out of a root is rejected too.
  A relative path is relative to the first data root.
- tracking.mlflow_uri and tracking.storage_path: where a sweep writes. With tracking="server"
  (the REST API) a spec must leave both out (422 naming the field) and the server fills in its
  own; with tracking="user" (the CLI, whose user can already run anything on the cluster through
  Ray Jobs) the spec's values are kept.
- a Budget (the REST API's operator sets it): trials, trials x folds x epochs, concurrent trials,
  parameters per model and retries; a spec over it is refused naming the budget and its value.
- serve.* fields that open or enlarge the service (OPERATOR_SERVE_FIELDS) only where the operator
  allows them (allow_serve_fields).

These run inside spec.parse_spec (Policy is its Checks) on the values the schema produced, so the
sandbox sees exactly the path that will be read. YAML from an untrusted client is parsed with core
types only, without anchors/aliases (no alias bombs) and with a depth limit, so a bad body is a 4xx,
never a hang or a 5xx.
"""
from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from service.spec import MAX_DEPTH, Checks, SpecError, SpecLoader, SweepSpec, loads_json, parse_spec, trial_values
from trainers.data import Dataset
from trainers.families import FAMILIES
from trainers.loop import TrainConfig

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# a module path: what --allow-factory takes and a factory's module part is made of
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# serve fields that decide who can reach the service or how much of the cluster it takes; the rest
# (topology, batching, health-check timing) only tune a deployment the operator already allows
OPERATOR_SERVE_FIELDS = ("host", "port", "token", "app_name", "ingress", "min_replicas", "max_replicas",
                         "num_cpus", "num_gpus", "max_instances", "max_body_bytes", "max_output_values_per_row")


class Budget(BaseModel):
    """What one sweep may ask of the cluster; set by the operator (`raysemble api` options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_trials: int = Field(1000, ge=1)  # trials Tune runs (num_trials, or a grid's combinations)
    max_fold_epochs: int = Field(100_000, ge=1)  # trials x folds x (most) epochs
    max_concurrent: int = Field(8, ge=1)  # search.max_concurrent
    max_parameters: int = Field(10_000_000, ge=1)  # per model: the largest of the space, and the student
    max_failures: int = Field(3, ge=0)  # search.max_failures (retries of a dying trial)

    def problems(self, spec: SweepSpec) -> list[str]:
        search, got = spec.search, []
        trials = search.trial_count()
        if trials > self.max_trials:
            where = "search.space" if search.algorithm == "grid" else "search.num_trials"
            got.append(f"{where}: at most {self.max_trials} trials (budget max_trials) expected, but the spec "
                       f"asks for {trials}")
        epochs = max(trial_values(spec, "epochs") or [TrainConfig.model_fields["epochs"].default])
        work = trials * spec.cv.folds * epochs
        if work > self.max_fold_epochs:
            got.append(f"search: trials x folds x epochs <= {self.max_fold_epochs} (budget max_fold_epochs) must "
                       f"hold, but got {trials} x {spec.cv.folds} x {epochs} = {work}")
        if search.max_concurrent > self.max_concurrent:
            got.append(f"search.max_concurrent: at most {self.max_concurrent} (budget max_concurrent) expected, "
                       f"but got {search.max_concurrent}")
        if search.max_failures > self.max_failures:
            got.append(f"search.max_failures: at most {self.max_failures} (budget max_failures) expected, "
                       f"but got {search.max_failures}")
        return got

    def model_problems(self, spec: SweepSpec, dataset: Dataset) -> list[str]:
        """Parameter counts need the data's feature and class counts; the space's largest shape counts."""
        shape = {}
        for key in ("hidden", "depth", "channels"):
            values = trial_values(spec, key)
            if values:
                shape[key] = max(values)
        dims = {"in_features": dataset.x.shape[1], "n_classes": dataset.n_classes}
        base = spec.base_model_config(**dims)
        # per family the space reaches; scikit-learn families have no count (their sizes are bounded
        # by their schemas: trees, iterations, leaves)
        counts = [base.model_copy(update={**shape, "family": f}).parameter_count() for f in spec.families()]
        largest = max((c for c in counts if c is not None), default=0)
        got = []
        if largest > self.max_parameters:
            got.append(f"model: at most {self.max_parameters} parameters per model (budget max_parameters) "
                       f"expected, but the space's largest model has {largest}")
        if spec.distill.enabled:
            for i, shape in enumerate(spec.distill.candidates()):
                student = shape.model_dump()
                student.pop("dropout")
                count = base.model_copy(update=student).parameter_count()
                if count > self.max_parameters:
                    where = f"distill.sizes.{i}" if spec.distill.sizes else "distill.student"
                    got.append(f"{where}: at most {self.max_parameters} parameters per model (budget "
                               f"max_parameters) expected, but the student has {count}")
        return got


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

    def roots(self) -> list[Path]:
        return [Path(os.path.realpath(Path(r).expanduser())) for r in self.data_roots]

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
                                    f"but got {_short(getattr(spec.serve, key))}")
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


def _short(value: object) -> str:
    return repr(value[:40] + "...") if isinstance(value, str) and len(value) > 40 else repr(value)


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
    resolved = Path(os.path.realpath(raw if raw.is_absolute() else roots[0] / raw))
    if not any(_inside(resolved, root) for root in roots):
        # where it leads (a link's target) and whether it exists are facts about files outside the roots
        shown = [str(r) for r in roots]
        return [f"{where}: a file inside the data roots {shown} expected, but {source!r} is outside them"], None
    return [], str(resolved)


def check(raw: object, policy: Policy) -> dict:
    """The raw spec mapping made safe for a cluster (a copy), or SpecError naming each field."""
    if not isinstance(raw, dict):
        raise SpecError([f"<spec>: a mapping at the top level expected, but got {type(raw).__name__}"])
    raw = copy.deepcopy(raw)
    problems: list[str] = []
    data = raw.get("data")
    for key in ("source", "test_source"):
        if isinstance(data, dict) and data.get(key) is not None:
            found, resolved = data_source_problems(data[key], policy, f"data.{key}")
            problems += found
            if resolved:
                data[key] = resolved
    model = raw.get("model")
    if isinstance(model, dict):
        family = model.get("family", "mlp")
        if not isinstance(family, str) or family not in FAMILIES:  # a list is unhashable: no `in` a dict
            # the registry's names (trainers.families), so a new family is accepted here too
            problems.append(f"model.family: one of {sorted(FAMILIES)} expected, but got "
                            f"{str(family)[:80]!r}")
        problem = factory_problem(model.get("factory"), policy.factory_prefixes)
        if problem:
            problems.append(problem)
    tracking = raw.get("tracking")
    if policy.tracking == "server":
        if isinstance(tracking, dict):
            for key in ("mlflow_uri", "storage_path"):
                if tracking.get(key) is not None:
                    problems.append(f"tracking.{key}: set by the server, so it must be left out of the spec, "
                                    f"but got {str(tracking[key])[:120]!r}")
        if not problems:
            tracking = raw.setdefault("tracking", {})
            if isinstance(tracking, dict):
                if policy.mlflow_uri:
                    tracking["mlflow_uri"] = policy.mlflow_uri
                if policy.storage_path:
                    tracking["storage_path"] = policy.storage_path
    if problems:
        raise SpecError(problems)
    return raw


def validate(raw: object, policy: Policy) -> SweepSpec:
    """The full spec validation (plain values, schema, policy, semantics, the data itself) with the
    policy's checks run on the values the schema produced. Raises SpecError only."""
    roots = policy.roots()
    return parse_spec(raw, roots[0] if roots else Path.cwd(), checks=policy)


class _NoAliasLoader(SpecLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(None, None, "YAML aliases are not accepted here",
                                                    event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.constructor.ConstructorError(None, None, "YAML anchors are not accepted here",
                                                    event.start_mark)
        return super().compose_node(parent, index)


def _depth(value, limit: int = MAX_DEPTH) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def load_untrusted(text: str, kind: str) -> object:
    """Parse a spec body from a client: kind "json" or "yaml". Raises SpecError('<body>: ...')."""
    try:
        if kind == "json":
            value = loads_json(text)
        else:
            value = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise SpecError([f"<body>: at most {MAX_DEPTH} levels of nesting expected, but got more"]) from None
    except (yaml.YAMLError, json.JSONDecodeError, ValueError) as err:
        first = re.sub(r"\s+", " ", str(err))[:300]
        raise SpecError([f"<body>: valid {kind.upper()} expected, but parsing failed: {first}"]) from None
    if _depth(value) > MAX_DEPTH:
        raise SpecError([f"<body>: at most {MAX_DEPTH} levels of nesting expected, but got more"])
    return value
