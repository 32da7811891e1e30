"""Property-based tests of the one spec validation path (service.spec.parse_spec via
service.spec.parse_spec with a Policy, as the REST API and `submit` use it): specs generated from the schema
and from a valid base, then mutated (wrong types, huge / negative / non-finite numbers, deep
nesting, odd unicode, huge integers, YAML tags). Whatever the input, the outcome is a SweepSpec or
a SpecError whose every line names a field; never another exception. No Ray needed."""
from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.spec import (MAX_PROBLEMS, Budget, Policy, SpecError, SweepSpec, TaggedValue, TooLongInteger, parse_spec,
                          read_spec)
from tests.conftest import tiny_spec

FUZZ = settings(database=None, derandomize=True, deadline=None, max_examples=120,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOP = set(SweepSpec.model_fields) | {"<spec>"}
ROOT = Path(__file__).parent  # a data root holding no data files: every file source must fail cleanly
POLICY = Policy(data_roots=[ROOT], tracking="server", mlflow_uri="sqlite:////nonexistent/m.db",
                budget=Budget(), allow_serve_fields=False)


def outcome(raw: object, policy: Policy | None = POLICY) -> str:
    """'ok' or 'invalid'; fails the test on any other exception or on a line without a field path."""
    try:
        parse_spec(raw, None, policy) if policy else parse_spec(raw)
    except SpecError as err:
        assert 0 < len(err.problems) <= MAX_PROBLEMS, err.problems
        for line in err.problems:
            where, sep, message = line.partition(": ")
            assert sep and message.strip(), line
            head = where.split(".")[0]
            assert head in TOP or (isinstance(raw, dict) and head in map(str, raw)), line
            assert len(line) < 3000, line[:200]
        return "invalid"
    return "ok"


# ---- values from the JSON schema (at, inside and just past each bound) ----

SCHEMA = SweepSpec.model_json_schema()


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _number(node: dict, integer: bool) -> st.SearchStrategy:
    edges = [node.get(k) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")]
    edges = [e for e in edges if e is not None]
    near = [e + d for e in edges for d in (-1, 0, 1)] if integer else \
        [e + d for e in edges for d in (-1e-9, 0.0, 1e-9, 0.5)]
    base = st.integers(-(2**40), 2**40) if integer else st.floats(-1e12, 1e12)
    return st.one_of(st.sampled_from(near), base) if near else base


def from_schema(node: dict, depth: int = 0) -> st.SearchStrategy:
    node = _resolve(node)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return st.one_of([from_schema(n, depth + 1) for n in node[key]])
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        if not props:
            return st.dictionaries(st.text(max_size=12), st.integers(0, 3) | st.booleans(), max_size=3)
        required = set(node.get("required", ()))
        return st.fixed_dictionaries({k: from_schema(v, depth + 1) for k, v in props.items() if k in required},
                                     optional={k: from_schema(v, depth + 1) for k, v in props.items()
                                               if k not in required})
    if kind == "array":
        if "prefixItems" in node:
            return st.tuples(*[from_schema(n, depth + 1) for n in node["prefixItems"]]).map(list)
        return st.lists(from_schema(node.get("items", {"type": "integer"}), depth + 1),
                        min_size=node.get("minItems", 0), max_size=min(node.get("maxItems", 4), 4))
    if kind == "integer":
        return _number(node, integer=True)
    if kind == "number":
        return _number(node, integer=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        return st.text(max_size=node.get("maxLength", 20) + 1) | st.sampled_from(["sklearn:iris", "set.csv", "relu"])
    return st.none()


# ---- mutations of a valid base ----

huge_ints = st.one_of(st.integers(2**53 - 2, 2**53 + 2), st.integers(-(2**70), -(2**53)),
                      st.sampled_from([2**64, -(2**63), 10**40, 16**4000]),
                      st.integers(1, 8000).map(TooLongInteger))
odd_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["\x00", "\u202e", "\ud7ff", "𝔘𝔫𝔦", "../../etc/passwd", "%2e%2e/x.csv", "sklearn:digits\x00", "x" * 5000])
nasty = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), huge_ints,
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308]),
    odd_text, st.binary(max_size=8), st.sampled_from(["!!binary", "!!timestamp", "!!set", "!!omap"]).map(TaggedValue),
    st.lists(st.integers(), max_size=3), st.just(list(range(2000))), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                                   max_size=3),
    st.just({str(i): i for i in range(400)}), st.just(frozenset({1})), st.just((1, 2, 3)),
    st.integers(1, 80).map(lambda n: _nested(n)),
)


def _nested(n: int):
    value: object = 1
    for _ in range(n):
        value = [value] if n % 2 else {"k": value}
    return value


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


BASE = tiny_spec("fuzz", search={"algorithm": "random", "num_trials": 2, "max_concurrent": 2,
                                 "space": {"lr": {"loguniform": [0.002, 0.01]}, "hidden": {"choice": [8, 16]},
                                           "dropout": {"uniform": [0.0, 0.5]}, "epochs": {"randint": [1, 3]}},
                                 "fixed": {"cutmix_alpha": 0.2, "activation": "relu"}},
                 model={"family": "cnn", "channels": 4}, serve={"max_batch_size": 8},
                 distill={"enabled": True, "epochs": 2})
PATHS = [p for p in _paths(BASE) if p]
EXTRA_KEYS = ["search.fixed.cutmix_alpha", "search.fixed.epochs", "search.fixed.step_size", "search.space.depth",
              "data.image_shape", "cv.seed", "serve.port", "serve.host", "tracking.experiment", "data.split_seed",
              "model.hidden", "model.activation", "resources.gpus_per_worker", "ensemble.top_k", "distill.student"]


def _set(raw: dict, path: tuple, value) -> None:
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        if not isinstance(node, (dict, list)):
            return
    if isinstance(node, dict):
        node[path[-1]] = value
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        node[path[-1]] = value


mutation = st.tuples(st.sampled_from(PATHS) | st.sampled_from(EXTRA_KEYS).map(lambda s: tuple(s.split("."))), nasty)


def test_the_base_spec_is_valid():
    assert outcome(copy.deepcopy(BASE)) == "ok"
    assert outcome(copy.deepcopy(BASE), policy=None) == "ok"


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_specs_give_field_errors_never_crashes(mutations):
    raw = copy.deepcopy(BASE)
    for path, value in mutations:
        _set(raw, path, copy.deepcopy(value))
    outcome(raw)
    outcome(copy.deepcopy(raw), policy=None)  # the trusted CLI path too


@FUZZ
@given(from_schema(SCHEMA))
def test_specs_generated_from_the_schema_validate_or_name_fields(raw):
    outcome(raw)


@FUZZ
@given(nasty)
def test_any_top_level_value(raw):
    outcome(raw)


SCALARS = ["!!binary aGVsbG8=", "!!timestamp 2001-12-14", "!!set {a: null}", "!!omap [{a: 1}]", "!!pairs [{a: 1}]",
           "0x" + "f" * 6000, "9" * 6000, "-0o" + "7" * 100, "0b" + "1" * 300, ".nan", ".inf", "-.inf", "1e999",
           "!!float .nan", "!!int '12'", "2001-12-14", "1:30:00", "~", "'\\u0000'", "\"\\x00\"", "yes"]


@FUZZ
@given(st.sampled_from(PATHS) | st.sampled_from(EXTRA_KEYS).map(lambda s: tuple(s.split("."))),
       st.sampled_from(SCALARS), st.booleans())
def test_yaml_scalars_and_tags_anywhere(path, scalar, untrusted):
    raw = copy.deepcopy(BASE)
    marker = "__MARK__"
    _set(raw, path, marker)
    text = yaml.safe_dump(raw).replace(f"'{marker}'", scalar).replace(marker, scalar)
    try:
        loaded = read_spec(text, "<body>", "yaml", untrusted=True) if untrusted else read_spec(text)
    except SpecError as err:  # unreadable YAML is a body error naming the body
        assert all(line.startswith(("<body>:", "<spec>:")) for line in err.problems), err.problems
        return
    outcome(loaded)


def test_huge_numbers_and_tags_name_their_field():
    hexed = yaml.safe_dump(BASE).replace("num_trials: 2", "num_trials: 0x" + "f" * 5000)
    with pytest.raises(SpecError) as err:
        parse_spec(read_spec(hexed), None, POLICY)
    assert err.value.problems == ["search.num_trials: an integer of at most 32 digits expected, but got one of "
                                  "5002 digits"]
    with pytest.raises(SpecError) as err:
        parse_spec(read_spec('{"name": "x", "data": {"source": "sklearn:iris"}, "cv": {"seed": 1' + "0" * 5000
                                + "}}", "<body>", "json", untrusted=True), None, POLICY)
    assert err.value.problems[0].startswith("cv.seed: an integer of at most 32 digits expected")
    tagged = yaml.safe_dump(BASE).replace("source: sklearn:digits", "source: !!binary L2V0Yy9wYXNzd2Q=")
    with pytest.raises(SpecError) as err:
        parse_spec(read_spec(tagged, "<body>", "yaml", untrusted=True), None, POLICY)
    assert err.value.problems == ["data.source: a plain JSON/YAML value expected, but got a !!binary-tagged value"]
    spec = copy.deepcopy(BASE)
    spec["search"]["fixed"]["lr"] = float("nan")
    with pytest.raises(SpecError) as err:
        parse_spec(spec, None, POLICY)
    assert err.value.problems == ["search.fixed.lr: a finite number expected, but got nan"]


def test_string_fields_take_strings_only():
    for path, value in [("name", b"fuzz"), ("data.source", b"/etc/passwd.csv"), ("data.target", 5),
                        ("search.metric", ["accuracy"]), ("tracking.experiment", 1.5), ("serve.host", True)]:
        raw = copy.deepcopy(BASE)
        _set(raw, tuple(path.split(".")), value)
        with pytest.raises(SpecError) as err:
            parse_spec(raw, None, Policy(data_roots=[ROOT]))
        assert err.value.problems[0].startswith(f"{path}:"), err.value.problems


CLI_CASES = {
    "cutmix": "search:\n  fixed: {cutmix_alpha: abc}\n",
    "hex": "cv: {folds: 0x" + "f" * 4000 + "}\n",
    "binary": "data: {source: !!binary L2V0Yy9wYXNzd2QuY3N2}\n",
}


def test_the_console_script_exits_2_without_a_traceback(tmp_path):
    exe = Path(sys.executable).with_name("raysemble")
    env = {**os.environ, "RAYSEMBLE_HOME": str(tmp_path / "home")}
    procs = {}
    for what, patch in CLI_CASES.items():
        raw = copy.deepcopy(BASE)
        raw.update({k: {**raw.get(k, {}), **v} for k, v in yaml.safe_load(patch.replace("!!binary", "")
                                                                           .replace("0x" + "f" * 4000, "0")).items()})
        text = yaml.safe_dump(raw)
        if what == "hex":
            text = text.replace("folds: 0", "folds: 0x" + "f" * 4000)
        if what == "binary":
            text = text.replace("source: L2V0Yy9wYXNzd2QuY3N2", "source: !!binary L2V0Yy9wYXNzd2QuY3N2")
        path = tmp_path / f"{what}.yaml"
        path.write_text(text)
        procs[what] = subprocess.Popen([str(exe), "validate", str(path)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=env)
    expected = {"cutmix": "search.fixed.cutmix_alpha: ", "hex": "cv.folds: an integer of at most 32 digits",
                "binary": "data.source: a plain JSON/YAML value expected, but got a !!binary-tagged value"}
    for what, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (what, out, err)
        assert expected[what] in err and "Traceback" not in err + out, (what, err)
