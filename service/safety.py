"""What a spec may ask of a shared cluster: checks applied by `raysemble submit` and the REST API.

The schema already limits a spec to built-in model families, scikit-learn sets and data files,
and forbids unknown keys everywhere (so nothing in a spec can name a runtime_env, a module or a
command). What is left to check before a spec leaves for a cluster:

- data.source, when a file, must resolve inside one of the allowed data roots: `..` components,
  absolute paths outside the roots, URLs (`file://`, `s3://`, any `scheme:`), percent-encoded
  characters (`%2e%2e`, `%2f`), `~`, backslashes and control characters are rejected, and the
  path is resolved with symlinks followed, so a link pointing out of a root is rejected too.
  A relative path is relative to the first data root.
- tracking.mlflow_uri and tracking.storage_path: where a sweep writes. With tracking="server"
  (the REST API) a spec must leave both out (422 naming the field) and the server fills in its
  own; with tracking="user" (the CLI, whose user can already run anything on the cluster through
  Ray Jobs) the spec's values are kept.

YAML from an untrusted client is parsed without anchors/aliases (no alias bombs) and with a depth
limit, so a bad body is a 4xx, never a hang or a 5xx.
"""
from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from service.spec import SpecError, SweepSpec, _format_pydantic, parse_spec

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
MAX_DEPTH = 32
FAMILIES = ("mlp", "cnn")


@dataclass
class Policy:
    """What the submitting side allows. data_roots: directories a data file must resolve inside."""

    data_roots: list[Path] = field(default_factory=list)
    tracking: str = "user"  # "server": the spec may not set mlflow_uri / storage_path
    mlflow_uri: str | None = None  # with tracking="server": what every spec gets
    storage_path: str | None = None

    def roots(self) -> list[Path]:
        return [Path(os.path.realpath(Path(r).expanduser())) for r in self.data_roots]


def _inside(path: Path, root: Path) -> bool:
    try:
        return os.path.commonpath([str(path), str(root)]) == str(root)
    except ValueError:
        return False


def data_source_problems(source: object, policy: Policy) -> tuple[list[str], str | None]:
    """([problems], resolved absolute path or None) for a raw data.source value."""
    if not isinstance(source, str) or source.startswith("sklearn:"):
        return [], None  # the schema checks the type and the scikit-learn set name
    where = "data.source"
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
        shown = [str(r) for r in roots]
        return [f"{where}: a file inside the data roots {shown} expected, but {source!r} resolves to "
                f"{str(resolved)!r}"], None
    return [], str(resolved)


def check(raw: object, policy: Policy) -> dict:
    """The raw spec mapping made safe for a cluster (a copy), or SpecError naming each field."""
    if not isinstance(raw, dict):
        raise SpecError([f"<spec>: a mapping at the top level expected, but got {type(raw).__name__}"])
    raw = copy.deepcopy(raw)
    problems: list[str] = []
    data = raw.get("data")
    if isinstance(data, dict) and "source" in data:
        found, resolved = data_source_problems(data["source"], policy)
        problems += found
        if resolved:
            data["source"] = resolved
    model = raw.get("model")
    if isinstance(model, dict) and "family" in model and model["family"] not in FAMILIES:
        # checked here too: parse_spec lets an unknown family through as a bare pydantic error
        problems.append(f"model.family: one of {list(FAMILIES)} expected, but got {str(model['family'])[:80]!r}")
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
    """check() then the full spec validation (schema, semantics, the data itself)."""
    safe = check(raw, policy)
    roots = policy.roots()
    try:
        return parse_spec(safe, roots[0] if roots else Path.cwd())
    except ValidationError as err:  # anything parse_spec did not word itself still names its fields
        raise SpecError(_format_pydantic(err)) from None


class _NoAliasLoader(yaml.SafeLoader):
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
            value = json.loads(text)
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
