"""No searcher hands out a configuration twice: trials are seeded from their hyperparameters, so a repeat
trains the same models again (trainers.algorithms._distinct)."""
from __future__ import annotations

import pytest
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from trainers.algorithms import ALGORITHMS
from trainers.algorithms._base import distinct_configs
from trainers.algorithms._distinct import Distinct, config_key
from trainers.algorithms._optuna import DefineByRun, OptunaAlgorithm
from trainers.config import SearchConfig
from trainers.families.scope import effective_params

FAMILIES = {"family": {"choice": ["mlp", "logreg"]}, "mlp.hidden": {"choice": [8, 16]}, "logreg.C": {"choice": [0.1, 1.0]}}
OPTUNA = sorted(n for n, a in ALGORITHMS.items() if isinstance(a, OptunaAlgorithm))


def _search(space=FAMILIES, num_trials=10, **kw) -> SearchConfig:
    return SearchConfig(algorithm="bayesian", num_trials=num_trials, space=space, **kw)


def _optuna(search: SearchConfig) -> OptunaSearch:
    import optuna

    return OptunaSearch(space=DefineByRun(search), metric=search.metric, mode=search.mode,
                        sampler=optuna.samplers.TPESampler(seed=0))


def _ask(searcher: Searcher, ids) -> list:
    out = []
    for trial_id in ids:
        config = searcher.suggest(trial_id)
        out.append(config)
        if isinstance(config, dict):
            searcher.on_trial_complete(trial_id, result={"accuracy": 0.5, "training_iteration": 1})
    return out


def test_distinct_configs_counts_each_familys_combinations_and_none_where_a_range_reaches():
    assert distinct_configs(_search()) == 4  # mlp: 2 hidden, logreg: 2 C
    assert distinct_configs(_search({**FAMILIES, "logreg.C": {"randint": [1, 3]}})) == 5  # 2 + 3
    assert distinct_configs(_search({"hidden": {"choice": [8, 16, 8]}, "lr": {"quniform": [0.1, 0.3, 0.1]}})) == 6
    assert distinct_configs(_search({**FAMILIES, "logreg.C": {"loguniform": [0.1, 1.0]}})) is None


@pytest.mark.parametrize("name", OPTUNA)
def test_an_optuna_algorithm_counts_no_more_trials_than_the_space_holds(name):
    search = SearchConfig(algorithm=name, num_trials=10, space=FAMILIES)
    assert search.trial_count() == 4
    assert SearchConfig(algorithm=name, num_trials=3, space=FAMILIES).trial_count() == 3


def test_every_configuration_of_a_finite_space_once_then_the_search_ends():
    search = _search()
    searcher = Distinct(_optuna(search), limit=distinct_configs(search))
    configs = _ask(searcher, [f"t{i}" for i in range(6)])
    handed = configs[:4]
    assert len({config_key(c) for c in handed}) == 4
    assert {(effective_params(c, "mlp")["family"]) for c in handed} == {"mlp", "logreg"}
    assert configs[4:] == [Searcher.FINISHED, Searcher.FINISHED]


def test_a_repeat_is_handed_out_only_after_the_redraws_all_repeat():
    """One configuration in all and no limit given: the second trial gets it again after `redraws`
    refused draws (an unbounded space's search never ends short of its trial count)."""
    search = _search({"family": {"choice": ["logreg"]}, "logreg.C": {"choice": [1.0]}})
    searcher = Distinct(_optuna(search), limit=None, redraws=3)
    first, second = _ask(searcher, ["a", "b"])
    assert first == second and searcher.repeats == 3


def test_results_reach_the_inner_searcher_under_the_id_it_drew_with():
    search = _search()
    inner = _optuna(search)
    searcher = Distinct(inner, limit=None)
    _ask(searcher, [f"t{i}" for i in range(4)])  # later trials needed redraws (4 configurations, TPE draws)
    import optuna

    states = [t.state for t in inner._ot_study.trials]  # white box: what Optuna's model learns from
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4
    assert all(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL) for s in states)


def test_a_restored_searcher_remembers_what_it_handed_out(tmp_path):
    """The way Tune saves and restores a sweep's searcher (SearchGenerator.save_to_dir, restore_from_dir)."""
    from ray.tune.search import SearchGenerator

    search = _search()
    searcher = Distinct(_optuna(search), limit=distinct_configs(search))
    before = _ask(searcher, ["t0", "t1"])
    SearchGenerator(searcher).save_to_dir(str(tmp_path), "test")
    restored = Distinct(_optuna(search), limit=distinct_configs(search))
    SearchGenerator(restored).restore_from_dir(str(tmp_path))
    after = _ask(restored, ["t2", "t3", "t4"])
    assert len({config_key(c) for c in before + after[:2]}) == 4
    assert after[2] == Searcher.FINISHED


def test_redraws_below_zero_is_refused():
    with pytest.raises(ValueError, match="redraws >= 0 must hold, but got redraws=-1"):
        Distinct(_optuna(_search()), redraws=-1)
