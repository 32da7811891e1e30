"""Every search algorithm of the registry (trainers.algorithms), through a real Ray Tune run with a
trivial trainable: it runs exactly trial_count() trials, each a config of the space (fixed keys
included), over one family and over several (the searched `family` dimension)."""
from __future__ import annotations

import json

import pytest
from ray import tune

from trainers.algorithms import ALGORITHMS, get_algorithm
from trainers.algorithms._optuna import OptunaAlgorithm
from trainers.config import SearchConfig
from trainers.families.scope import effective_params
from trainers.search import param_space, tune_config

pytestmark = pytest.mark.usefixtures("ray_session")

ONE_FAMILY = {"lr": {"choice": [0.001, 0.01]}, "hidden": {"choice": [8, 16, 32]}}
FAMILIES = {"family": {"choice": ["mlp", "logreg"]}, "mlp.hidden": {"choice": [8, 16]}, "logreg.C": {"choice": [0.1, 1.0]}}


def _space(name: str, space: dict) -> dict:
    """The space as this algorithm takes it: continuous dimensions where it allows them (not grid)."""
    if name == "grid":
        return space
    return {**space, "lr": {"loguniform": [1e-3, 1e-2]}} if "lr" in space else space


def _run(search: SearchConfig, tmp_path) -> list[dict]:
    def trainable(config):
        tune.report({search.metric: float(len(str(config)))})

    tuner = tune.Tuner(tune.with_resources(trainable, {"CPU": 0.1}), param_space=param_space(search),
                       tune_config=tune_config(search),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name=search.algorithm, verbose=0))
    return [r.config for r in tuner.fit()]


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_an_algorithm_runs_exactly_its_trial_count_of_configs_from_the_space(name, tmp_path):
    search = SearchConfig(algorithm=name, num_trials=3, max_concurrent=2, space=_space(name, ONE_FAMILY),
                          fixed={"epochs": 2})
    configs = [effective_params(c, "mlp") for c in _run(search, tmp_path)]
    assert len(configs) == search.trial_count() == (6 if name == "grid" else 3)
    for config in configs:
        assert config["epochs"] == 2 and config["hidden"] in (8, 16, 32) and 1e-3 <= config["lr"] <= 1e-2
    if name == "grid":  # every combination exactly once
        assert sorted((c["lr"], c["hidden"]) for c in configs) == sorted((a, b) for a in (0.001, 0.01)
                                                                         for b in (8, 16, 32))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_an_algorithm_searches_several_families_each_with_its_own_keys(name, tmp_path):
    search = SearchConfig(algorithm=name, num_trials=4, max_concurrent=2, space=FAMILIES, fixed={"mlp.epochs": 2})
    configs = [effective_params(c, "mlp") for c in _run(search, tmp_path)]
    assert len(configs) == search.trial_count() == 4  # grid: 2 mlp + 2 logreg combinations
    for config in configs:
        expected = {"mlp": {"family", "hidden", "epochs"}, "logreg": {"family", "C"}}[config["family"]]
        assert set(config) == expected, config
    assert get_algorithm(name).family_problem(search) is None


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_a_space_an_algorithm_cannot_take_is_a_clear_error(name):
    """Each algorithm refuses what it cannot search with a message naming the keys; a grid space is
    the one every algorithm but the Optuna ones takes, continuous dimensions the one grid refuses."""
    refused = {"grid": ({"lr": {"uniform": [0.1, 0.2]}}, "algorithm grid needs grid or choice dimensions only, "
                                                         "but got ['lr']"),
               "bayesian": ({"lr": {"grid": [0.1, 0.2]}}, "grid dimensions need algorithm grid or random, but got "
                                                          "algorithm='bayesian' with grid for ['lr']"),
               "gp": ({"lr": {"grid": [0.1, 0.2]}}, "grid dimensions need algorithm grid or random, but got "
                                                    "algorithm='gp' with grid for ['lr']")}
    if name not in refused:
        search = SearchConfig(algorithm=name, space={"lr": {"grid": [0.1, 0.2]}, "hidden": {"uniform": [8, 9]}})
        assert search.trial_count() == 2 * search.num_trials  # grid axes crossed with num_trials samples
        return
    space, message = refused[name]
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SearchConfig(algorithm=name, space=space)


START = [{"family": "logreg", "logreg.C": 1.0}, {"family": "mlp", "mlp.hidden": 16}]


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_an_algorithm_that_takes_start_points_runs_them_first_and_others_refuse_them(name, tmp_path):
    """search.start_with (the tabular preset's portfolio): the given configurations are the first trials,
    in order, then the searcher's own; an algorithm that cannot take them says which can."""
    algorithm = get_algorithm(name)
    if not algorithm.takes_start_points:
        takers = " or ".join(sorted(n for n, a in ALGORITHMS.items() if a.takes_start_points))
        with pytest.raises(ValueError, match=f"start_with needs algorithm {takers}, but got algorithm '{name}'"):
            SearchConfig(algorithm=name, space=FAMILIES, start_with=START)
        return
    search = SearchConfig(algorithm=name, num_trials=3, max_concurrent=1, space=FAMILIES, start_with=START,
                          fixed={"mlp.epochs": 2})
    configs = [effective_params(c, "mlp") for c in _run(search, tmp_path)]
    assert len(configs) == 3
    assert configs[0] == {"family": "logreg", "C": 1.0} and configs[1] == {"family": "mlp", "hidden": 16, "epochs": 2}


@pytest.mark.parametrize("point, words", [({"family": "svc"}, "values inside search.space expected, but got family='svc'"),
                                          ({"lr": 0.1}, "keys of search.space expected, but got ['lr']"),
                                          ({"logreg.C": 5}, "values inside search.space expected, but got logreg.C=5")])
def test_a_start_point_outside_the_space_names_its_key(point, words):
    with pytest.raises(ValueError, match=f"start_with\\[1\\]: {words.replace('[', '.').replace(']', '.')}"):
        SearchConfig(algorithm="bayesian", space=FAMILIES, start_with=[START[0], point])


@pytest.mark.parametrize("name", sorted(n for n, a in ALGORITHMS.items() if isinstance(a, OptunaAlgorithm)))
def test_an_optuna_algorithm_trains_each_configuration_of_a_small_space_once(name, tmp_path):
    """TPE repeats itself on a small space; a repeat would train the same seeded models again."""
    search = SearchConfig(algorithm=name, num_trials=8, max_concurrent=2, space=FAMILIES, fixed={"mlp.epochs": 2})
    configs = [effective_params(c, "mlp") for c in _run(search, tmp_path)]
    assert len(configs) == 4
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == 4
