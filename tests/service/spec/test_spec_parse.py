"""Every invalid spec a user can write: exit 2, one line naming the field, nothing started."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from service.cli import app
from service.spec import SpecError, parse_spec
from tests.conftest import tiny_spec
from trainers.config import SearchConfig

runner = CliRunner()


def _with(path: str, value):
    spec = tiny_spec("bad")
    node = spec
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return spec


INVALID = [
    # (mutation, field path expected in the message, words expected in the message)
    (_with("bogus", 1), "bogus", "Extra inputs"),
    (_with("search.space.lr", {"uniform": [0.5, 0.1]}), "search.space.lr.uniform", "`low <= high` must hold"),
    (_with("search.space.lr", {"loguniform": [0.0, 0.1]}), "search.space.lr.loguniform", "0 < low"),
    (_with("search.space.lr", {"loguniform": [-1.0, 0.1]}), "search.space.lr.loguniform", "0 < low"),
    (_with("cv.folds", 1), "cv.folds", "greater than or equal to 2"),
    (_with("cv.folds", 45) | {"data": {"source": "sklearn:iris"}}, "cv.folds", "smallest class's training rows (40)"),
    (_with("search.num_trials", 0), "search.num_trials", "greater than or equal to 1"),
    (_with("search.space.hidden", {"choice": []}), "search.space.hidden.choice", "at least 1 item"),
    (_with("search.metric", "auc_pr"), "search.metric", "'auc_pr'"),
    (_with("search.algorithm", "bayesian") | {"search": {**tiny_spec("x")["search"], "algorithm": "bayesian",
                                                          "space": {"lr": {"grid": [0.01, 0.1]}}}},
     "search", "grid dimensions need algorithm grid or random"),
    (_with("data.source", "missing/file.csv"), "data.source", "does not exist"),
    (_with("search.space.lr", "fast"), "search.space.lr", "one key of"),
    (_with("search.space.warp", {"uniform": [0, 1]}), "search.space.warp", "a hyperparameter of"),
    (_with("search.space.dropout", {"uniform": [0.0, 1.5]}), "search.space.dropout", "less than 1"),
    (_with("cv.folds", "three"), "cv.folds", "valid integer"),
    (_with("cv.repeats", 0), "cv.repeats", "greater than or equal to 1"),
    (_with("cv.repeats", 11), "cv.repeats", "less than or equal to 10"),
    (_with("search.patience", 0), "search.patience", "greater than or equal to 1"),
    (_with("search.patience", 10_001), "search.patience", "less than or equal to 10000"),
    (_with("ensemble", {"stacking": "if_better"}), "ensemble", "selection 'greedy' and method one of"),
    (_with("ensemble", {"selection": "greedy", "method": "hard_vote", "single": "if_better"}), "ensemble",
     "single 'if_better' is weighed against greedy averaging"),
    (_with("ensemble.single", "always"), "ensemble.single", "'off' or 'if_better'"),
    (_with("data", {"source": "sklearn:iris", "test_fraction": 0.2}) | {"search": {
        **tiny_spec("x")["search"], "fixed": {"cutmix_alpha": 1.0, "epochs": 2}}}, "cutmix_alpha", "image-shaped"),
    (_with("search.space.lr", {"randint": [5, 1]}), "search.space.lr.randint", "`low <= high` must hold"),
    (_with("model", {"family": "transformer"}), "model.family", "one of ['catboost', 'cnn', 'extra_trees'"),
    # several families in one sweep
    (_with("search.space.family", {"choice": ["mlp", "transformer"]}), "search.space.family", "names of"),
    (_with("search.space.family", {"uniform": [0, 1]}), "search.space.family", "a choice or grid of family"),
    (_with("search.space", {"hist_gb.learning_rate": {"uniform": [0.1, 0.2]}}), "search.space.hist_gb.learning_rate",
     "'hist_gb' is not searched"),
    (_with("search.space", {"family": {"choice": ["logreg", "hist_gb"]}, "logreg.hidden": {"choice": [8]}}),
     "search.space.logreg.hidden", "a hyperparameter of family 'logreg'"),
    (_with("search.space", {"family": {"choice": ["logreg", "hist_gb"]},
                            "hist_gb.learning_rate": {"uniform": [0.1, 2.0]}}) | {"search": {
        "algorithm": "random", "num_trials": 2, "space": {"family": {"choice": ["logreg", "hist_gb"]},
                                                          "hist_gb.learning_rate": {"uniform": [0.1, 2.0]}}}},
     "search.space.hist_gb.learning_rate", "less than or equal to 1"),
    (_with("search.fixed.family", "logreg"), "search.fixed.family", "set model.family"),
    (_with("model", {"family": "torch"}), "model.factory", "expected for family torch"),
    (_with("model", {"family": "torch", "factory": "no colon"}), "model.factory", "should match pattern"),
    (_with("model", {"family": "torch", "factory": "no_such_module_xyz:build"}), "model.factory",
     "importing 'no_such_module_xyz' failed"),
    (_with("model", {"family": "logreg"}) | {"resources": {"executor": "ray_train", "parallelism": "ddp"},
                                             "search": {"algorithm": "random", "num_trials": 1}},
     "resources.parallelism", "needs torch families only"),
]


@pytest.mark.parametrize("spec, field, words", INVALID, ids=[f"{i}-{c[1]}" for i, c in enumerate(INVALID)])
def test_invalid_spec_exits_2_naming_the_field(home, tmp_path, spec, field, words):
    import ray

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["sweep", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if field in line]
    assert lines and any(words in line for line in lines), result.output
    assert "Traceback" not in result.output
    assert not ray.is_initialized()
    assert not (home / "home").exists()


def test_several_problems_one_line_each():
    spec = tiny_spec("bad", cv={"folds": 1}, bogus=True)
    spec["search"]["metric"] = "nope"
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert len(err.value.problems) == 3
    assert {p.split(":")[0] for p in err.value.problems} == {"cv.folds", "search.metric", "bogus"}


def test_bad_yaml_and_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "valid YAML or JSON expected" in result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_json_spec_validates(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_spec("ok")))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok: ok" in result.output


def test_validate_prints_the_search_share_of_a_time_budget_for_the_tables_rows(tmp_path):
    spec = tiny_spec("ok", search={**tiny_spec("ok")["search"], "time_budget_s": 60})
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    search_s = parse_spec(spec).search.deadlines(0.0, 1797 - round(1797 * 0.2))[0]  # digits, 20 % held out
    assert 30 < search_s < 45  # not the 75 % share: the estimate for these rows is more than 15 s
    assert f"time budget: 60 s ({search_s:.0f} s search, the rest ensemble and student)" in result.output


def test_invalid_sweep_starts_no_ray_process(tmp_path):
    """The real console script: exit 2 and no Ray session directory created."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_with("cv.folds", 1)))
    ray_tmp = tmp_path / "raytmp"
    ray_tmp.mkdir()
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "RAYSEMBLE_HOME": str(tmp_path / "home")}
    exe = Path(sys.executable).with_name("raysemble")
    proc = subprocess.run([str(exe), "sweep", str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "cv.folds" in proc.stderr
    assert list(ray_tmp.iterdir()) == []
    assert not (tmp_path / "home").exists()


def test_a_grid_is_capped_like_num_trials():
    """10,000 combinations (the num_trials limit) validate; 10,100 do not, naming the limit."""
    grid = {"algorithm": "grid", "num_trials": 1, "max_concurrent": 2, "fixed": {"epochs": 1},
            "space": {"lr": {"grid": [0.001 * (i + 1) for i in range(100)]},
                      "weight_decay": {"grid": [0.0001 * i for i in range(100)]}}}
    assert parse_spec(tiny_spec("g", search=grid)).search.trial_count() == 10_000
    grid["space"]["hidden"] = {"choice": [8, 16]}
    grid["space"]["weight_decay"] = {"grid": [0.0001 * i for i in range(51)]}
    with pytest.raises(SpecError) as err:
        parse_spec(tiny_spec("g", search=grid))
    assert err.value.problems == ["search: at most 10000 trials (the num_trials limit) expected, but the space "
                                  "gives 10200 grid combinations"]
    # random search runs num_trials samples of each combination of its grid axes
    rand = {"algorithm": "random", "num_trials": 101, "space": {"lr": {"grid": [0.001 * (i + 1) for i in range(100)]}}}
    with pytest.raises(SpecError, match="but the space gives 10100$"):
        parse_spec(tiny_spec("g", search=rand))


def test_a_bad_fixed_value_is_a_field_error_not_a_crash():
    spec = tiny_spec("c")
    spec["search"]["fixed"]["cutmix_alpha"] = "abc"
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert err.value.problems == ["search.fixed.cutmix_alpha: Input should be a valid number, unable to parse "
                                  "string as a number (got 'abc')"]


# ---- data.task ----

def _diabetes(**sections) -> dict:
    return {"name": "diab", "data": {"source": "sklearn:diabetes"}, "cv": {"folds": 3}, **sections}


def test_a_numeric_target_sets_the_task_and_its_default_metric():
    spec = parse_spec(_diabetes())
    assert (spec.data.task, spec.search.metric, spec.search.mode) == ("regression", "rmse", "min")
    assert (parse_spec(_diabetes(search={"metric": "r2"})).search.mode) == "max"
    assert parse_spec(_diabetes(search={"mode": "max"})).search.mode == "max"  # a mode the spec set stays
    iris = parse_spec({"name": "iris", "data": {"source": "sklearn:iris"}})
    assert (iris.data.task, iris.search.metric) == ("classification", "accuracy")


@pytest.mark.parametrize("search", [{}, {"mode": "max"}, {"metric": "r2"}])
def test_a_search_section_equals_itself_after_a_trip_through_json(search):
    # the stored and shipped spec.json must read back as the spec that was checked
    section = SearchConfig.model_validate(search)
    assert SearchConfig.model_validate_json(section.model_dump_json()) == section


@pytest.mark.parametrize("sections, line", [
    ({"search": {"metric": "accuracy"}},
     "search.metric: one of ['mae', 'r2', 'rmse'] for a regression target expected, but got 'accuracy'"),
    ({"ensemble": {"method": "hard_vote"}}, "ensemble.method: one of ['soft_vote', 'weighted', 'stacking'] for a "
                                            "regression target expected, but got 'hard_vote'"),
    ({"ensemble": {"selection_metric": "log_loss"}},
     "ensemble.selection_metric: 'search' for a regression target expected, but got 'log_loss'"),
    ({"search": {"fixed": {"label_smoothing": 0.1}}}, "search.label_smoothing: 0 for a regression target expected"),
    ({"search": {"space": {"family": {"choice": ["mlp", "random_forest"]}},
                 "fixed": {"random_forest.class_weight": "balanced"}}},
     "search.class_weight: None for a regression target expected"),
])
def test_what_only_classes_have_is_refused_for_a_regression_target_naming_the_field(sections, line):
    with pytest.raises(SpecError) as err:
        parse_spec(_diabetes(**sections))
    assert any(p.startswith(line) for p in err.value.problems), err.value.problems


def test_a_class_target_refuses_a_regression_metric_and_loss():
    with pytest.raises(SpecError) as err:
        parse_spec({"name": "iris", "data": {"source": "sklearn:iris"}, "search": {"metric": "rmse"}})
    assert err.value.problems == ["search.metric: one of ['accuracy', 'f1_macro', 'log_loss', 'precision_macro', "
                                  "'recall_macro', 'roc_auc'] for a classification target expected, but got 'rmse'"]
    with pytest.raises(SpecError, match="search.regression_loss: 'mse' \\(unused\\) for a class target expected"):
        parse_spec({"name": "iris", "data": {"source": "sklearn:iris"}, "search": {"fixed": {"regression_loss": "huber"}}})


def test_a_time_budget_is_split_between_the_search_and_what_follows():

    def search_s(budget: float, rows: int, **search) -> float:
        spec = parse_spec(tiny_spec("b", search={**tiny_spec("b")["search"], "time_budget_s": budget, **search}))
        start, end = spec.search.deadlines(1000.0, rows)
        assert end == 1000.0 + budget
        return start - 1000.0

    assert search_s(600, 0) == 450.0  # the default 25 % after the search where it is more than the estimate
    assert search_s(600, 0, postsweep_share=0.5) == 300.0
    # on more rows the steps after the search are estimated to take longer, and the search gives way
    assert search_s(300, 20_000, postsweep_share=0.05) < search_s(300, 17_817, postsweep_share=0.05) \
        < search_s(300, 3_000, postsweep_share=0.05) < 285
    assert search_s(120, 3_000) < 90
    assert search_s(120, 17_817) < 60  # hi's rows: the estimate, not the share's 90 s
    # the search keeps at least a tenth of the budget, whatever the estimate
    assert search_s(20, 0) == pytest.approx(2.0) and search_s(120, 10**6) == pytest.approx(12.0)
    assert parse_spec(tiny_spec("b")).search.deadlines(1000.0, 100) is None
    with pytest.raises(SpecError) as err:
        parse_spec(tiny_spec("b", search={**tiny_spec("b")["search"], "time_budget_s": 19.5}))
    assert err.value.problems == ["search.time_budget_s: Input should be greater than or equal to 20 (got 19.5)"]


@pytest.mark.parametrize("sections, preset", [
    ({}, "tabular"),  # only data: the portfolio
    ({"search": {"time_budget_s": 60}}, "tabular"),
    ({"search": {"preset": "none"}}, "none"),
    ({"model": {"family": "logreg"}}, "auto"),  # a model named: the user's, not the preset
    ({"search": {"fixed": {"epochs": 3}}}, "auto"),
    ({"search": {"preset": "tabular", "fixed": {"mlp.epochs": 3}}}, "tabular"),
])
def test_the_tabular_preset_fills_a_spec_that_names_no_model_space_or_fixed_keys(sections, preset):
    spec = parse_spec({"name": "p", "data": {"source": "sklearn:iris"}, **sections})
    assert spec.search.preset == preset
    if preset == "tabular":
        assert spec.search.start_with and spec.search.space and spec.ensemble.selection == "greedy"
        assert spec.search.fixed["mlp.epochs"] == sections.get("search", {}).get("fixed", {}).get("mlp.epochs", 40)
        # what is stored parses again as itself
        assert parse_spec(json.loads(spec.model_dump_json())).model_dump() == spec.model_dump()
    else:
        assert spec.search.start_with == [] and spec.search.space == {}


def test_cv_repeats_at_its_limit_parses_and_counts_every_fold_model():
    from trainers.config import MAX_REPEATS

    spec = parse_spec(tiny_spec("rep", cv={"folds": 3, "repeats": MAX_REPEATS}))
    assert spec.cv.fold_count() == 3 * MAX_REPEATS and spec.cv.describe() == "3-fold CV x 10 repeats"
    assert parse_spec(tiny_spec("one")).cv.describe() == "3-fold CV"


def test_a_spec_parses_without_the_training_libraries():
    """`raysemble validate` and every CLI error come before any training: a table spec naming torch and
    scikit-learn families (examples/penguins.yaml) parses in a fresh process without importing torch,
    scikit-learn or scipy (together some 4 s here), which load only when a model is built or scored."""
    heavy = ("torch", "sklearn", "scipy", "lightgbm", "xgboost", "catboost", "ray", "mlflow")
    code = ("import sys, json; from service.spec import load_spec; spec = load_spec(sys.argv[1]); "
            f"print(json.dumps([spec.families(), [m for m in {heavy!r} if m in sys.modules]]))")
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", code, str(root / "examples" / "penguins.yaml")], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    families, imported = json.loads(done.stdout)
    assert {"mlp", "logreg"} <= set(families)
    assert imported == [], imported
