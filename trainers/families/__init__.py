"""Model families and their registry. A new family is one module and one line below."""
from __future__ import annotations

from trainers.families._base import Family, Fit
from trainers.families.cnn import CNNFamily
from trainers.families.extra_trees import ExtraTreesFamily
from trainers.families.factory import TorchFactoryFamily
from trainers.families.hist_gb import HistGBFamily
from trainers.families.knn import KNNFamily
from trainers.families.logreg import LogRegFamily
from trainers.families.mlp import MLPFamily
from trainers.families.random_forest import RandomForestFamily
from trainers.families.resnet import ResNetFamily
from trainers.families.svc import SVCFamily

FAMILIES: dict[str, Family] = {f.name: f for f in (
    MLPFamily(), CNNFamily(), ResNetFamily(), TorchFactoryFamily(),
    HistGBFamily(), RandomForestFamily(), ExtraTreesFamily(), LogRegFamily(), SVCFamily(), KNNFamily(),
)}


def known_family(name: str) -> str:
    """A validator's check of a family name: ValueError with the registry's names."""
    if name not in FAMILIES:
        raise ValueError(f"one of {sorted(FAMILIES)} expected, but got {name[:80]!r}")
    return name


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"model.family: one of {sorted(FAMILIES)} expected, but got {name!r}") from None


__all__ = ["FAMILIES", "Family", "Fit", "get_family", "known_family"]
