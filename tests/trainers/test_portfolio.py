"""Every search preset (trainers/presets/*.yaml) expands to a search section the schema takes: its
portfolio's points inside its space (checked by SearchConfig), its families registered."""
from __future__ import annotations

from pathlib import Path

import pytest

from trainers import portfolio
from trainers.config import SearchConfig
from trainers.families import FAMILIES

NAMES = sorted(p.stem for p in (Path(portfolio.__file__).parent / "presets").glob("*.yaml"))


def test_every_named_preset_has_a_file():
    assert NAMES == sorted(set(portfolio.PRESETS) - {"auto", "none"})


@pytest.mark.parametrize("name", NAMES)
def test_a_preset_expands_to_a_search_whose_first_trials_are_its_portfolio(name):
    search = SearchConfig.model_validate(portfolio.expand({}, name))
    points = portfolio.preset(name)["portfolio"]
    assert search.start_with == points and search.num_trials == len(points) + portfolio.MORE_TRIALS
    assert {p["family"] for p in points} <= set(FAMILIES) and search.searcher().takes_start_points
    budgeted = SearchConfig.model_validate(portfolio.expand({"time_budget_s": 60, "fixed": {"mlp.epochs": 5}}, name))
    assert budgeted.num_trials == portfolio.BUDGET_TRIALS and budgeted.fixed["mlp.epochs"] == 5
    assert search.patience == portfolio.preset(name).get("patience")
    assert SearchConfig.model_validate(portfolio.expand({"patience": None}, name)).patience is None  # the spec's own


@pytest.mark.parametrize("name", NAMES)
def test_a_preset_fills_student_candidates_only_where_the_spec_chose_none(name):
    from trainers.config import DistillConfig

    filled = DistillConfig.model_validate(portfolio.distill({"margin": 0.02}, name))
    wanted = portfolio.preset(name)["students"]
    assert [s.family for s in filled.sizes] == [w["family"] for w in wanted] and filled.margin == 0.02
    for chosen in ({"student": {"family": "mlp", "hidden": 32}}, {"sizes": [{"hidden": 16}, {"hidden": 32}]}):
        assert portfolio.distill(chosen, name) == chosen
