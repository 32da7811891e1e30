"""One sweep over several families: which keys reach which family.

A sweep searches families with a `family` dimension (`search.space.family: {choice: [mlp,
hist_gb, logreg]}`). Keys scoped with a family name (`hist_gb.learning_rate`) reach that family
only; unscoped keys reach every searched family that takes them (`epochs` reaches mlp and cnn,
not logreg). A trial's config, however the searcher nested it, becomes the flat hyperparameters
of the one family it trains (`effective_params`).
"""
from __future__ import annotations

from trainers.families import FAMILIES, get_family

FAMILY_KEY = "family"
BRANCH_KEY = "model"  # grid/random searches nest each family's dimensions under this key


def scope_of(key: str) -> tuple[str | None, str]:
    """'hist_gb.learning_rate' -> ('hist_gb', 'learning_rate'); 'lr' -> (None, 'lr')."""
    head, dot, rest = key.partition(".")
    return (head, rest) if dot and head in FAMILIES else (None, key)


def effective_params(config: dict, base_family: str) -> dict:
    """The flat hyperparameters a trial trains with: the searcher's nesting undone, the family key
    always present, scoped keys of the trial's family unscoped, other families' keys dropped. In a
    one-family sweep every unscoped key is kept (split() then refuses the unknown ones)."""
    flat = {k: v for k, v in config.items() if k != BRANCH_KEY}
    if isinstance(config.get(BRANCH_KEY), dict):
        flat.update(config[BRANCH_KEY])
    searched = FAMILY_KEY in flat
    family = get_family(flat.pop(FAMILY_KEY, base_family))
    out: dict = {FAMILY_KEY: family.name}
    for key, value in flat.items():
        scope, name = scope_of(key)
        if scope is None and (not searched or family.accepts(name)):
            out.setdefault(name, value)
        elif scope == family.name:
            out[name] = value  # a scoped value wins over an unscoped one
    return out


def key_problem(key: str, families: list[str]) -> str | None:
    """Why a search.space / search.fixed key reaches none of the sweep's families, or None."""
    scope, name = scope_of(key)
    if scope is not None:
        if scope not in families:
            return f"a key scoped to a searched family {families} expected, but {scope!r} is not searched"
        return None if get_family(scope).accepts(name) else (
            f"a hyperparameter of family {scope!r} ({sorted(get_family(scope).keys())}) expected, but got {name!r}")
    if any(get_family(f).accepts(name) for f in families):
        return None
    known = sorted(set().union(*(get_family(f).keys() for f in families)))
    return f"a hyperparameter of {known} expected, but got {key!r}"


def receivers(key: str, families: list[str]) -> list[str]:
    """The families a key's values reach."""
    scope, name = scope_of(key)
    if scope is not None:
        return [scope] if scope in families else []
    return [f for f in families if get_family(f).accepts(name)]
