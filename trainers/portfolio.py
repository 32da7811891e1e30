"""Search presets: a portfolio of strong, diverse configurations tried first, then the searcher goes on
from them in a space around them. A preset is data (trainers/presets/<name>.yaml: its portfolio, space
and fixed keys, with where each configuration comes from), so no family name is written here; TabRepo
(Salinas et al. 2023) found such a fixed portfolio beats a search started from scratch in the same time."""
from __future__ import annotations

import functools
from pathlib import Path

import yaml

PRESETS = ("auto", "tabular", "none")
BUDGET_TRIALS = 500  # num_trials with a time budget and none set: the budget is then what ends the search
MORE_TRIALS = 16  # num_trials without a budget and none set: the portfolio, then this many of the searcher's own


@functools.cache
def preset(name: str) -> dict:
    """The preset's portfolio, space and fixed keys, as the spec would write them."""
    return yaml.safe_load((Path(__file__).parent / "presets" / f"{name}.yaml").read_text())


def trials(name: str = "tabular", budget: bool = False) -> int:
    return BUDGET_TRIALS if budget else len(preset(name)["portfolio"]) + MORE_TRIALS


def distill(section: dict, name: str = "tabular") -> dict:
    """A raw distill section with the preset's student candidates where the spec chose no student."""
    if "sizes" in section or "student" in section:
        return section
    return {**section, "sizes": [dict(s) for s in preset(name)["students"]]}


def ensemble(name: str = "tabular") -> dict:
    """The preset's raw ensemble section, for a spec that gave none; greedy's pool is the best
    trials(name) of the search (a budget's many trials add candidates no faster than they add noise)."""
    return {**preset(name)["ensemble"], "top_k": trials(name)}


def expand(search: dict, name: str = "tabular") -> dict:
    """A raw search section (what the spec gave) with the preset filled in where the spec left it out."""
    found = preset(name)
    out = dict(search)
    out["space"] = {k: dict(v) for k, v in found["space"].items()}
    out["fixed"] = {**found["fixed"], **(search.get("fixed") or {})}
    out.setdefault("start_with", [dict(p) for p in found["portfolio"]])
    out.setdefault("algorithm", found["algorithm"])
    if "patience" in found:
        out.setdefault("patience", found["patience"])
    out.setdefault("num_trials", trials(name, search.get("time_budget_s") is not None))
    return out
