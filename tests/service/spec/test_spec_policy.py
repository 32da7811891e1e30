"""Spec safety for remote submission (service.spec.policy through the one parse path): data roots, path
forms, tracking, body parsing."""
from __future__ import annotations

import pytest

from service.spec import Budget, Policy, SpecError, parse_spec, read_spec
from tests.conftest import tiny_spec
from tests.service.roots import make_roots


def _parse(raw, policy):
    """What `submit` and the REST API do with a spec: the one parse path with their Policy."""
    return parse_spec(raw, None, policy)


def _body(text: str, kind: str):
    """What the REST API does with a request body."""
    return read_spec(text, "<body>", kind, untrusted=True)


@pytest.fixture
def roots(tmp_path):
    return make_roots(tmp_path)


def _spec(source: str) -> dict:
    return tiny_spec("safe", data={"source": source, "test_fraction": 0.2})


def _problems(source: str, policy: Policy) -> list[str]:
    with pytest.raises(SpecError) as e:
        _parse(_spec(source), policy)
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
                             ("./set.npz", root / "set.npz"), ("sub/./set.npz", root / "sub" / "set.npz")]:
        if not expected.exists():
            expected.write_bytes((root / "set.npz").read_bytes())
        assert _parse(_spec(source), policy).data.source == str(expected)
    # a link inside a root, even one that stays inside, is refused: it is never opened (nor followed)
    with pytest.raises(SpecError, match="'inside.npz' is not one"):
        _parse(_spec("inside.npz"), policy)
    spec = _parse(_spec("set.npz"), policy)
    assert spec.data.source == str((root / "set.npz").resolve())


def test_a_second_root_is_allowed_too(roots):
    root, outside = roots
    policy = Policy(data_roots=[root, outside])
    assert _parse(_spec(str(outside / "set.npz")), policy).data.source == str(outside / "set.npz")


def test_no_roots_means_scikit_learn_sets_only(roots):
    root, _ = roots
    problems = _problems(str(root / "set.npz"), Policy(data_roots=[]))
    assert "no data roots" in problems[0]
    assert _parse(tiny_spec("sk"), Policy(data_roots=[])).data.source == "sklearn:digits"


def test_tracking_is_set_by_the_server(tmp_path):
    policy = Policy(tracking="server", mlflow_uri="sqlite:////srv/mlflow.db", storage_path="s3://bucket/rs")
    spec = tiny_spec("t", tracking={"mlflow_uri": "sqlite:////tmp/mine.db", "storage_path": "/etc",
                                    "experiment": "x"})
    with pytest.raises(SpecError) as e:
        _parse(spec, policy)
    assert sorted(p.split(":")[0] for p in e.value.problems) == ["tracking.mlflow_uri", "tracking.storage_path"]
    filled = _parse(tiny_spec("t", tracking={"experiment": "x"}), policy)
    assert filled.tracking.model_dump() == {"experiment": "x", "mlflow_uri": "sqlite:////srv/mlflow.db",
                                            "storage_path": "s3://bucket/rs"}
    # a trusted CLI user keeps their own
    assert _parse(spec, Policy(tracking="user")).tracking.model_dump() == spec["tracking"]


def test_nothing_in_a_spec_can_set_a_runtime_env_or_name_code():
    for raw in [tiny_spec("x", runtime_env={"pip": ["evil"]}),
                tiny_spec("x", model={"family": "os.system"}),
                tiny_spec("x", data={"source": "sklearn:__import__('os')"}),
                {**tiny_spec("x"), "search": {**tiny_spec("x")["search"], "space": {"entrypoint": {"choice": [1]}}}},
                tiny_spec("x", resources={"runtime_env": {"working_dir": "/"}})]:
        with pytest.raises(SpecError) as e:
            _parse(raw, Policy())
        assert e.value.problems and all(":" in line for line in e.value.problems)


def test_untrusted_yaml_without_aliases_and_bounded_depth():
    assert _body("name: a\ndata: {source: 'sklearn:iris'}\n", "yaml")["name"] == "a"
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(SpecError, match="aliases|anchors"):
        _body(bomb, "yaml")
    with pytest.raises(SpecError, match="nesting"):
        _body("[" * 5000 + "]" * 5000, "json")
    with pytest.raises(SpecError, match="nesting"):
        _body("[" * 100 + "]" * 100, "yaml")
    with pytest.raises(SpecError, match="valid JSON"):
        _body("{not json", "json")
    with pytest.raises(SpecError, match="valid YAML"):
        _body("a: [1, 2\n", "yaml")
    with pytest.raises(SpecError, match="valid YAML"):
        _body("!!python/object/apply:os.system ['true']", "yaml")


def _outside_problem(source: str, policy: Policy) -> list[str]:
    with pytest.raises(SpecError) as e:
        _parse(_spec(source), policy)
    return e.value.problems


def test_outside_the_roots_says_nothing_of_the_file(roots):
    """An outside file that exists, one that does not, and a link out all read the same: no
    content, no link target, no word on existence."""
    root, outside = roots
    (outside / "secret.csv").write_text("a,target\nTOPSECRET,1\nTOPSECRET,0\n")
    policy = Policy(data_roots=[root], tracking="server")
    existing = _outside_problem(str(outside / "secret.csv"), policy)
    missing = _outside_problem(str(outside / "nothing-here.csv"), policy)
    assert existing == [f"data.source: a file inside the data roots {[str(root)]} expected, but "
                        f"{str(outside / 'secret.csv')!r} is outside them"]
    assert missing == [existing[0].replace("secret.csv", "nothing-here.csv")]
    # inside a root, a link (wherever it points) reads as a missing file does: opened without following it
    link = _outside_problem("escape.npz", policy)
    absent = _outside_problem("absent.npz", policy)
    assert link == [line.replace("absent.npz", "escape.npz") for line in absent] == [
        "data.source: a file or directory inside the data roots expected, but 'escape.npz' is not one (missing, "
        "a link, or another kind of file)"]
    assert not any(str(outside) in line for line in link)


def test_a_file_inside_a_root_with_text_is_named_by_column_not_value(roots):
    root, _ = roots
    (root / "words.csv").write_text("a,target\n" + "TOPSECRET,1\nTOPSECRET,0\n" * 20)
    spec = tiny_spec("safe", data={"source": "words.csv", "numeric": ["a"]})
    with pytest.raises(SpecError) as e:
        _parse(spec, Policy(data_roots=[root]))
    assert e.value.problems == ["data.source: column 'a': numbers expected, but 40 values are not numbers (declare it "
                                "in data.categorical, or list the markers in data.na_values)"]


def test_the_sandbox_checks_the_value_the_schema_keeps(roots):
    """Only str reaches data.source: bytes, a !!binary value or a list never become a path."""
    root, outside = roots
    for value in (str(outside / "set.npz").encode(), [str(outside / "set.npz")], {"path": "x"}):
        problems = _outside_problem(value, Policy(data_roots=[root]))
        assert [p.split(":")[0] for p in problems] == ["data.source"], problems
        assert not any("outside" in p and "set.npz" in p for p in problems)


BUDGET = Budget(max_trials=4, max_fold_epochs=60, max_concurrent=2, max_parameters=5000, max_failures=1)


def _budget_problems(**search) -> list[str]:
    spec = tiny_spec("b", search={"algorithm": "random", "num_trials": 2, "max_concurrent": 2, "max_failures": 1,
                                  "space": {"lr": {"loguniform": [0.002, 0.01]}},
                                  "fixed": {"epochs": 3, "hidden": 16}, **search})
    spec["distill"] = {"enabled": False}
    try:
        _parse(spec, Policy(budget=BUDGET))
    except SpecError as e:
        return e.problems
    return []


WORK = "search: trials x folds x passes of the largest fit (+ students x distillation epochs) <= {} (budget " \
       "max_fold_epochs) must hold, but got {}"


def test_each_budget_at_its_limit_and_one_past():
    # at every limit: 4 trials x 3 folds x 5 epochs = 60, 2 concurrent, 1 retry
    at = {"num_trials": 4, "max_concurrent": 2, "max_failures": 1, "fixed": {"epochs": 5, "hidden": 8}}
    assert _budget_problems(**at) == []
    assert _budget_problems(**{**at, "num_trials": 5}) == [
        "search.num_trials: at most 4 trials (budget max_trials) expected, but the spec asks for 5"]
    assert _budget_problems(**{**at, "fixed": {"epochs": 6, "hidden": 8}}) == [WORK.format(60, "4 x 3 x 6 = 72")]
    # counted as the trial will see it: a string "6" is 6 epochs, and a space counts its largest value
    assert _budget_problems(**{**at, "fixed": {"epochs": "6", "hidden": 8}})[0].endswith("4 x 3 x 6 = 72")
    assert _budget_problems(**{**at, "fixed": {"hidden": 8}, "space": {"epochs": {"choice": [1, "6"]}}}) == [
        WORK.format(60, "4 x 3 x 6 = 72")]
    assert _budget_problems(**{**at, "max_concurrent": 3}) == [
        "search.max_concurrent: at most 2 (budget max_concurrent) expected, but got 3"]
    assert _budget_problems(**{**at, "max_failures": 2}) == [
        "search.max_failures: at most 1 (budget max_failures) expected, but got 2"]


def test_parameter_budget_counts_the_largest_shape_of_the_space():
    # one hidden layer of width h on digits (64 features, 10 classes): 64h + h + 10h + 10 parameters
    at = {"fixed": {"epochs": 1, "depth": 1}, "space": {"hidden": {"choice": [8, 66]}}}
    assert 75 * 66 + 10 == 4960
    assert _budget_problems(**at) == []
    past = {"fixed": {"epochs": 1, "depth": 1}, "space": {"hidden": {"choice": [8, 67]}}}
    assert _budget_problems(**past) == ["model: at most 5000 parameters per model (budget max_parameters) "
                                        "expected, but the space's largest mlp model has 5035"]


def test_every_family_is_costed_by_its_own_size_and_passes():
    """Boosting iterations and trees count as passes over the data, their nodes as the model's size; a
    ResNet's width and stages count (a 195M-parameter one is refused, not passed as an MLP)."""
    def problems(space: dict, fixed: dict, budget: Budget, family: str = "mlp") -> list[str]:
        spec = tiny_spec("b", search={"algorithm": "random", "num_trials": 1, "space": space, "fixed": fixed},
                         distill={"enabled": False}, model={"family": family})
        try:
            _parse(spec, Policy(budget=budget))
        except SpecError as e:
            return e.problems
        return []

    wide = Budget(max_fold_epochs=10**9, max_parameters=10**12)
    families = {"family": {"choice": ["hist_gb", "random_forest"]}}
    # 3 folds x 1 trial x 1000 boosting iterations: at 3000 passes and one past
    boosting = {"hist_gb.max_iter": 1000, "random_forest.n_estimators": 10}
    assert problems(families, boosting, wide.model_copy(update={"max_fold_epochs": 3000})) == []
    assert problems(families, boosting, wide.model_copy(update={"max_fold_epochs": 2999})) == [
        WORK.format(2999, "1 x 3 x 1000 = 3000")]
    # 10 classes x 1000 iterations x 2 x 31 leaves = 620000 nodes
    assert problems(families, boosting, wide.model_copy(update={"max_parameters": 620_000})) == []
    assert problems(families, boosting, wide.model_copy(update={"max_parameters": 619_999})) == [
        "model: at most 619999 parameters per model (budget max_parameters) expected, but the space's largest "
        "hist_gb model has 620000"]
    resnet = problems({}, {"width": 128, "depth": 8, "stages": 4, "epochs": 1},
                      wide.model_copy(update={"max_parameters": 10_000_000}), family="resnet")
    assert len(resnet) == 1 and resnet[0].startswith("model: at most 10000000 parameters per model (budget "
                                                     "max_parameters) expected, but the space's largest resnet "
                                                     "model has "), resnet
    assert int(resnet[0].rsplit(" ", 1)[1]) > 100_000_000


def test_students_and_trial_resources_count_too():
    spec = tiny_spec("b", search={"algorithm": "random", "num_trials": 1, "fixed": {"epochs": 1, "hidden": 8},
                                  "space": {"lr": {"choice": [0.01]}}},
                     distill={"sizes": [{"hidden": 8}, {"hidden": 16}], "epochs": 10})
    at = Budget(max_fold_epochs=3 + 2 * 10)
    assert _parse(spec, Policy(budget=at)).distill.epochs == 10
    with pytest.raises(SpecError) as e:
        _parse(spec, Policy(budget=at.model_copy(update={"max_fold_epochs": 22})))
    assert e.value.problems == [WORK.format(22, "1 x 3 x 1 + 2 x 10 = 23")]
    for resources, limit, line in [
            ({"workers_per_trial": 3, "executor": "ray_train"}, {"max_workers_per_trial": 2},
             "resources.workers_per_trial: at most 2 (budget max_workers_per_trial) expected, but got 3"),
            ({"workers_per_trial": 2, "cpus_per_worker": 2.5, "executor": "ray_train"}, {"max_cpus_per_trial": 4},
             "resources: at most 4 CPUs per trial (budget max_cpus_per_trial) expected, but the spec asks for 5"),
            ({"workers_per_trial": 2, "gpus_per_worker": 1, "executor": "ray_train"}, {"max_gpus_per_trial": 1},
             "resources: at most 1 GPUs per trial (budget max_gpus_per_trial) expected, but the spec asks for "
             "2 x 1 = 2")]:
        limited = dict(spec, resources=resources, distill={"enabled": False})
        with pytest.raises(SpecError) as e:
            _parse(limited, Policy(budget=Budget(**limit)))
        assert e.value.problems == [line]
        fits = Budget(**{k: v * 10 for k, v in limit.items()})
        assert _parse(limited, Policy(budget=fits)).resources.workers_per_trial == resources["workers_per_trial"]


def test_a_grid_is_capped_by_the_trial_budget_too():
    at = {"algorithm": "grid", "space": {"lr": {"grid": [0.01, 0.02]}, "hidden": {"choice": [8, 16]}},
          "fixed": {"epochs": 1}}
    assert _budget_problems(**at) == []
    past = {**at, "space": {"lr": {"grid": [0.01, 0.02, 0.03]}, "hidden": {"choice": [8, 16]}}}
    assert _budget_problems(**past) == ["search.space: at most 4 trials (budget max_trials) expected, but the spec "
                                        "asks for 6"]


def test_serve_fields_that_open_the_service_need_the_operator():
    spec = tiny_spec("s", serve={"host": "0.0.0.0", "port": 80, "num_gpus": 1, "max_batch_size": 8})
    with pytest.raises(SpecError) as e:
        _parse(spec, Policy(allow_serve_fields=False))
    assert e.value.problems == ["serve.host: set by the operator, so it must be left out of the spec, but got "
                                "'0.0.0.0'",
                                "serve.port: set by the operator, so it must be left out of the spec, but got 80",
                                "serve.num_gpus: set by the operator, so it must be left out of the spec, but got 1.0"]
    assert _parse(spec, Policy(allow_serve_fields=True)).serve.host == "0.0.0.0"
    # batching knobs do not open anything
    batching = _parse(tiny_spec("s", serve={"max_batch_size": 8}), Policy(allow_serve_fields=False))
    assert batching.serve.max_batch_size == 8


# ---- model.factory: the one spec field that names code (issue 10) ----

def _torch_spec(factory: str) -> dict:
    return tiny_spec("f", model={"family": "torch", "factory": factory},
                     search={"algorithm": "random", "num_trials": 1, "max_concurrent": 1,
                             "space": {"lr": {"loguniform": [0.002, 0.01]}}, "fixed": {"epochs": 1, "width": 8}})


def _factory_problems(factory: str, prefixes) -> list[str]:
    try:
        _parse(_torch_spec(factory), Policy(factory_prefixes=prefixes))
    except SpecError as e:
        return e.problems
    return []


def test_a_factory_is_refused_without_an_operator_allow_list():
    assert Policy().factory_prefixes == ()  # the safe default
    assert _factory_problems("evil.mod:build", ()) == [
        "model.factory: a module under an operator-allowed prefix ([]) expected, but got 'evil.mod:build' "
        "(the REST API runs no user code unless `raysemble api --allow-factory PREFIX`)"]
    # the raw-spec check says the same
    with pytest.raises(SpecError) as e:
        _parse(_torch_spec("evil.mod:build"), Policy())
    assert [p.split(":")[0] for p in e.value.problems] == ["model.factory"]
    # a factory is code whatever the family: one set beside family mlp is refused too
    mlp = tiny_spec("f", model={"family": "mlp", "factory": "evil.mod:build"})
    with pytest.raises(SpecError) as e:
        _parse(mlp, Policy())
    assert e.value.problems[0].startswith("model.factory: a module under an operator-allowed prefix ([])")


def test_a_factory_under_an_allowed_prefix_is_accepted_and_none_allows_any():
    spec = _parse(_torch_spec("pkg.models:build"), Policy(factory_prefixes=("other", "pkg")))
    assert (spec.model.family, spec.model.factory) == ("torch", "pkg.models:build")
    # the trusted CLI (`raysemble submit`): any module
    assert _parse(_torch_spec("anything.at.all:build"), Policy(factory_prefixes=None)).model.factory == \
        "anything.at.all:build"


def test_a_prefix_matches_whole_module_path_components():
    # at the limit: the prefix itself and a module under it
    assert _factory_problems("pkg:build", ("pkg",)) == []
    assert _factory_problems("pkg.models.deep:build", ("pkg",)) == []
    assert _factory_problems("pkg.models:build", ("pkg.models",)) == []
    # one past it: a longer first component, a parent of the prefix, a sibling
    for factory, prefix in [("pkgevil:build", "pkg"), ("pkg.modelsx:build", "pkg.models"),
                            ("pkg:build", "pkg.models"), ("pkg.other:build", "pkg.models")]:
        problems = _factory_problems(factory, (prefix,))
        assert problems == [f"model.factory: a module under an operator-allowed prefix (['{prefix}']) expected, "
                            f"but got '{factory}' (the REST API runs no user code unless `raysemble api "
                            f"--allow-factory PREFIX`)"], (factory, prefix)


def test_a_refused_factory_is_never_imported_even_where_the_budget_builds_models():
    """The parameter budget builds the space's largest model, i.e. imports and calls the factory:
    the refusal comes first, so a refused module is never imported on the API's machine."""
    import sys

    module = "tests.trainers.factory_models"
    sys.modules.pop(module, None)
    factory = f"{module}:build"
    with pytest.raises(SpecError) as e:
        _parse(_torch_spec(factory), Policy(budget=Budget(), factory_prefixes=("tests.service",)))
    assert e.value.problems[0].startswith("model.factory: ")
    assert module not in sys.modules
    # allowed, the budget does build it (so the assertion above could fail)
    _parse(_torch_spec(factory), Policy(budget=Budget(), factory_prefixes=("tests.trainers",)))
    assert module in sys.modules


def test_new_families_are_accepted_by_name_from_the_registry():
    from trainers.families import FAMILIES

    hist_gb = tiny_spec("h", model={"family": "hist_gb"}, search={"num_trials": 1, "fixed": {"max_iter": 5}})
    assert _parse(hist_gb, Policy()).model.family == "hist_gb"
    with pytest.raises(SpecError) as e:
        _parse(tiny_spec("h", model={"family": "os.system"}), Policy())
    assert e.value.problems == [f"model.family: one of {sorted(FAMILIES)} expected, but got 'os.system'"]
    with pytest.raises(SpecError) as e:
        _parse(tiny_spec("h", model={"family": ["mlp"]}), Policy())
    assert e.value.problems == ["model.family: Input should be a valid string"]


def test_the_api_policy_takes_the_operators_prefixes_and_never_allows_any(tmp_path):
    from service.api import Settings

    settings = Settings.build(address="http://127.0.0.1:1", token="t", home=str(tmp_path),
                              factory_prefixes=["pkg"])
    assert settings.policy().factory_prefixes == ("pkg",)
    assert Settings("http://127.0.0.1:1", "t", factory_prefixes=None).policy().factory_prefixes == ()


def test_allow_factory_takes_module_paths_only(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from service.cli import app

    monkeypatch.setenv("RAYSEMBLE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["api", "--allow-factory", "pkg", "--allow-factory", "pkg:build",
                                      "--allow-factory", "pkg."])
    assert result.exit_code == 2
    assert "--allow-factory: a module path such as 'mypkg' or 'mypkg.models' expected, but got 'pkg:build'" in \
        result.output
    assert "but got 'pkg.'" in result.output and "got 'pkg'" not in result.output


def test_submit_ships_a_factory_module_found_beside_the_spec_only(tmp_path):
    """`raysemble submit`: the factory's top-level module (a package or one file) in the spec's
    directory or the cwd is copied into the job's working_dir, which Ray puts first on every job
    process's PYTHONPATH; one found only on sys.path (installed) is not shipped."""
    from service.cluster.package import ship_factory
    from service.spec import SweepSpec

    here = tmp_path / "project"
    (here / "mynets" / "sub").mkdir(parents=True)
    (here / "mynets" / "__init__.py").write_text("")
    (here / "mynets" / "sub" / "nets.py").write_text("def build(*a, **k): ...\n")
    (here / "mynets" / "__pycache__").mkdir()
    (here / "onefile.py").write_text("def build(*a, **k): ...\n")
    for factory, shipped in [("mynets.sub.nets:build", "mynets"), ("onefile:build", "onefile.py"),
                             ("torch.nn:Linear", None), ("trainers.x:build", None), ("absent.mod:build", None)]:
        spec = SweepSpec.model_validate(tiny_spec("s", model={"family": "torch", "factory": factory}))
        job = tmp_path / f"job-{factory.split(':')[0]}"
        job.mkdir()
        got = ship_factory(job, spec, [tmp_path / "elsewhere", here])
        assert got == (job / shipped if shipped else None), factory
        assert sorted(p.name for p in job.iterdir()) == ([shipped] if shipped else []), factory
    assert (tmp_path / "job-mynets.sub.nets" / "mynets" / "sub" / "nets.py").is_file()
    assert not (tmp_path / "job-mynets.sub.nets" / "mynets" / "__pycache__").exists()


def test_a_predefined_test_source_is_sandboxed_like_the_source(roots):
    """data.test_source is read as well: every path form refused for data.source is refused for it,
    naming data.test_source, and an accepted one is made absolute."""
    root, outside = roots
    policy = Policy(data_roots=[root])
    for bad in ("../outside/set.npz", str(outside / "set.npz"), "escape.npz", "inside.npz", "file:///etc/passwd"):
        spec = tiny_spec("safe", data={"source": "set.npz", "test_source": bad})
        with pytest.raises(SpecError) as e:
            _parse(spec, policy)
        assert [line.split(":")[0] for line in e.value.problems] == ["data.test_source"], e.value.problems
    (root / "test.npz").write_bytes((root / "set.npz").read_bytes())
    spec = tiny_spec("safe", data={"source": "set.npz", "test_source": "./test.npz"})
    assert _parse(spec, policy).data.test_source == str(root / "test.npz")


def test_a_bodys_yaml_nodes_at_the_limit_and_one_past(monkeypatch):
    from service.spec import reading

    monkeypatch.setattr(reading, "MAX_YAML_NODES", 5)
    assert _body("a: [1, 2]\n", "yaml") == {"a": [1, 2]}  # mapping, key, list, two items: 5 nodes
    with pytest.raises(SpecError, match="at most 5 YAML nodes are accepted here"):
        _body("a: [1, 2, 3]\n", "yaml")
