"""Spec safety for remote submission (service.safety): data roots, path forms, tracking, body parsing."""
from __future__ import annotations

import pytest

from service.safety import Policy, check, load_untrusted, validate
from service.spec import SpecError
from tests.conftest import tiny_spec
from tests.service.roots import make_roots


@pytest.fixture
def roots(tmp_path):
    return make_roots(tmp_path)


def _spec(source: str) -> dict:
    return tiny_spec("safe", data={"source": source, "test_fraction": 0.2})


def _problems(source: str, policy: Policy) -> list[str]:
    with pytest.raises(SpecError) as e:
        check(_spec(source), policy)
    assert all(line.startswith("data.source: ") for line in e.value.problems), e.value.problems
    return e.value.problems


@pytest.mark.parametrize("source", [
    "../outside/set.npz",              # parent traversal
    "sub/../../outside/set.npz",       # traversal in the middle
    "{outside}/set.npz",               # absolute, outside every root
    "file://{outside}/set.npz",        # file URL
    "file:{outside}/set.npz",          # scheme without //
    "s3://bucket/set.npz",             # any other URL
    "http://example.com/set.npz",
    "%2e%2e/outside/set.npz",          # URL-encoded ..
    "..%2foutside/set.npz",            # URL-encoded /
    "%2E%2E%2Foutside%2Fset.npz",
    "escape.npz",                      # symlink inside the root pointing out
    "outdir/set.npz",                  # symlinked directory pointing out
    "~/set.npz",                       # home expansion
    "..\\outside\\set.npz",            # backslashes
    "set.npz\x00.csv",                 # NUL byte
])
def test_each_rejected_path_form(roots, source):
    root, outside = roots
    problems = _problems(source.format(outside=outside), Policy(data_roots=[root]))
    assert len(problems) == 1


def test_paths_inside_a_root_are_accepted_and_made_absolute(roots):
    root, _ = roots
    policy = Policy(data_roots=[root])
    for source, expected in [("set.npz", root / "set.npz"), (str(root / "set.npz"), root / "set.npz"),
                             ("./set.npz", root / "set.npz"),
                             ("inside.npz", root / "set.npz")]:
        assert check(_spec(source), policy)["data"]["source"] == str(expected.resolve())
    spec = validate(_spec("set.npz"), policy)
    assert spec.data.source == str((root / "set.npz").resolve())


def test_a_second_root_is_allowed_too(roots):
    root, outside = roots
    policy = Policy(data_roots=[root, outside])
    assert check(_spec(str(outside / "set.npz")), policy)["data"]["source"] == str(outside / "set.npz")


def test_no_roots_means_scikit_learn_sets_only(roots):
    root, _ = roots
    problems = _problems(str(root / "set.npz"), Policy(data_roots=[]))
    assert "no data roots" in problems[0]
    assert validate(tiny_spec("sk"), Policy(data_roots=[])).data.source == "sklearn:digits"


def test_tracking_is_set_by_the_server(tmp_path):
    policy = Policy(tracking="server", mlflow_uri="sqlite:////srv/mlflow.db", storage_path="s3://bucket/rs")
    spec = tiny_spec("t", tracking={"mlflow_uri": "sqlite:////tmp/mine.db", "storage_path": "/etc",
                                    "experiment": "x"})
    with pytest.raises(SpecError) as e:
        check(spec, policy)
    assert sorted(p.split(":")[0] for p in e.value.problems) == ["tracking.mlflow_uri", "tracking.storage_path"]
    filled = check(tiny_spec("t", tracking={"experiment": "x"}), policy)
    assert filled["tracking"] == {"experiment": "x", "mlflow_uri": "sqlite:////srv/mlflow.db",
                                  "storage_path": "s3://bucket/rs"}
    # a trusted CLI user keeps their own
    assert check(spec, Policy(tracking="user"))["tracking"] == spec["tracking"]


def test_nothing_in_a_spec_can_set_a_runtime_env_or_name_code():
    for raw in [tiny_spec("x", runtime_env={"pip": ["evil"]}),
                tiny_spec("x", model={"family": "os.system"}),
                tiny_spec("x", data={"source": "sklearn:__import__('os')"}),
                {**tiny_spec("x"), "search": {**tiny_spec("x")["search"], "space": {"entrypoint": {"choice": [1]}}}},
                tiny_spec("x", resources={"runtime_env": {"working_dir": "/"}})]:
        with pytest.raises(SpecError) as e:
            validate(raw, Policy())
        assert e.value.problems and all(":" in line for line in e.value.problems)


def test_untrusted_yaml_without_aliases_and_bounded_depth():
    assert load_untrusted("name: a\ndata: {source: 'sklearn:iris'}\n", "yaml")["name"] == "a"
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(SpecError, match="aliases|anchors"):
        load_untrusted(bomb, "yaml")
    with pytest.raises(SpecError, match="nesting"):
        load_untrusted("[" * 5000 + "]" * 5000, "json")
    with pytest.raises(SpecError, match="nesting"):
        load_untrusted("[" * 100 + "]" * 100, "yaml")
    with pytest.raises(SpecError, match="valid JSON"):
        load_untrusted("{not json", "json")
    with pytest.raises(SpecError, match="valid YAML"):
        load_untrusted("a: [1, 2\n", "yaml")
    with pytest.raises(SpecError, match="valid YAML"):
        load_untrusted("!!python/object/apply:os.system ['true']", "yaml")
