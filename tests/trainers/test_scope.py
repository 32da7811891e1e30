"""One sweep over several families: keys reach the right family, for every search algorithm."""
import optuna
import pytest
from ray.tune.search.variant_generator import generate_variants

from trainers.config import SearchConfig
from trainers.families.scope import effective_params, key_problem
from trainers.algorithms._optuna import DefineByRun
from trainers.search import param_space

SPACE = {
    "family": {"choice": ["mlp", "hist_gb", "logreg"]},
    "lr": {"loguniform": [1e-3, 1e-2]},  # only mlp takes lr
    "mlp.hidden": {"choice": [32, 64]},
    "hist_gb.learning_rate": {"choice": [0.05, 0.1, 0.2]},
    "logreg.C": {"choice": [0.1, 1.0]},
}
FIXED = {"epochs": 5, "hist_gb.max_iter": 50}


def _keys_reach_only_their_family(params: dict) -> None:
    family = params["family"]
    expected = {"mlp": {"family", "lr", "hidden", "epochs"}, "hist_gb": {"family", "learning_rate", "max_iter"},
                "logreg": {"family", "C"}}[family]
    assert set(params) == expected, params


def test_effective_params_unscope_and_drop_other_families():
    config = {"family": "hist_gb", "lr": 0.01, "hist_gb.learning_rate": 0.1, "logreg.C": 3.0, "epochs": 5}
    assert effective_params(config, "mlp") == {"family": "hist_gb", "learning_rate": 0.1}
    # the grid/random searchers nest a family's branch under "model"
    nested = {"model": {"family": "logreg", "logreg.C": 2.0}, "epochs": 5}
    assert effective_params(nested, "mlp") == {"family": "logreg", "C": 2.0}
    # one family, not searched: every unscoped key is kept (the family's split refuses unknown ones)
    assert effective_params({"lr": 0.1, "bogus": 1}, "mlp") == {"family": "mlp", "lr": 0.1, "bogus": 1}
    # a scoped value wins over the unscoped one
    assert effective_params({"family": "mlp", "hidden": 8, "mlp.hidden": 16}, "mlp")["hidden"] == 16


def test_key_problems_name_the_family_and_the_key():
    families = ["mlp", "logreg"]
    assert key_problem("lr", families) is None and key_problem("logreg.C", families) is None
    assert "'hist_gb' is not searched" in key_problem("hist_gb.learning_rate", families)
    assert "a hyperparameter of family 'logreg'" in key_problem("logreg.hidden", families)
    assert "but got 'learning_rate'" in key_problem("learning_rate", families)


def test_grid_runs_each_familys_own_combinations_once():
    space = {k: v for k, v in SPACE.items() if k != "lr"}
    search = SearchConfig(algorithm="grid", space=space, fixed=FIXED)
    configs = [effective_params(c, "mlp") for _, c in generate_variants(param_space(search))]
    assert search.trial_count() == len(configs) == 2 + 3 + 2  # not 2*3*2*3 of a flat grid
    assert len({tuple(sorted(c.items())) for c in configs}) == len(configs)  # no duplicates
    for params in configs:
        expected = {"mlp": {"family", "hidden", "epochs"}, "hist_gb": {"family", "learning_rate", "max_iter"},
                    "logreg": {"family", "C"}}[params["family"]]
        assert set(params) == expected


def test_random_samples_each_familys_keys_only():
    search = SearchConfig(algorithm="random", num_trials=30, space=SPACE, fixed=FIXED)
    # generate_variants yields one sample per call of the space; draw several
    configs = [effective_params(c, "mlp") for _ in range(30) for _, c in generate_variants(param_space(search))]
    assert {c["family"] for c in configs} == {"mlp", "hist_gb", "logreg"}
    for params in configs:
        _keys_reach_only_their_family(params)


@pytest.mark.parametrize("sampler", [optuna.samplers.TPESampler(seed=0), optuna.samplers.RandomSampler(seed=0)])
def test_define_by_run_asks_only_the_chosen_familys_dimensions(sampler):
    search = SearchConfig(algorithm="bayesian", num_trials=20, space=SPACE, fixed=FIXED)
    define = DefineByRun(search)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    seen = set()
    for i in range(20):
        trial = study.ask()
        constants = define(trial)
        params = effective_params({**trial.params, **constants}, "mlp")
        _keys_reach_only_their_family(params)
        asked = set(trial.params) - {"family"}
        assert all(k == "lr" or k.startswith(params["family"] + ".") for k in asked), (params, asked)
        seen.add(params["family"])
        study.tell(trial, float(i % 3))
    assert seen == {"mlp", "hist_gb", "logreg"}
