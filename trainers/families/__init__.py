"""Model families and their registry. A new family is one module and one line below."""
from __future__ import annotations

from trainers.families._base import Cost, Family, Fit
from trainers.families.config import DEFAULT_FAMILY, ModelConfig
from trainers.families.catboost import CatBoostFamily
from trainers.families.cnn import CNNFamily
from trainers.families.extra_trees import ExtraTreesFamily
from trainers.families.factory import TorchFactoryFamily
from trainers.families.hist_gb import HistGBFamily
from trainers.families.knn import KNNFamily
from trainers.families.lightgbm import LightGBMFamily
from trainers.families.logreg import LogRegFamily
from trainers.families.mlp import MLPFamily
from trainers.families.random_forest import RandomForestFamily
from trainers.families.resnet import ResNetFamily
from trainers.families.svc import SVCFamily
from trainers.families.xgboost import XGBoostFamily

FAMILIES: dict[str, Family] = {f.name: f for f in (
    MLPFamily(), CNNFamily(), ResNetFamily(), TorchFactoryFamily(),
    HistGBFamily(), RandomForestFamily(), ExtraTreesFamily(), LogRegFamily(), SVCFamily(), KNNFamily(),
    LightGBMFamily(), XGBoostFamily(), CatBoostFamily(),
)}
assert DEFAULT_FAMILY in FAMILIES and FAMILIES[DEFAULT_FAMILY].student_keys  # model.family's and the student's
STUDENT_FAMILIES = tuple(name for name, f in FAMILIES.items() if f.student_keys)


def user_code_families(names) -> list[str]:
    """Those of `names` that build from the user's code (model.factory)."""
    return [n for n in names if get_family(n).runs_user_code]


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


def start_fit(model_cfg: ModelConfig, fit_cfg, x, y, seed: int, device="cpu", data_parallel=None) -> Fit:
    """A Fit of model_cfg's family on these training rows: a table's rows through the family's table
    encoding fitted on them (trainers.families.tabular), a matrix as it is."""
    from trainers.tables import is_table

    family = get_family(model_cfg.family)
    if is_table(x):
        from trainers.families.tabular import TableFit

        return TableFit(family, model_cfg, fit_cfg, x, y, seed, device, data_parallel)
    return family.start(model_cfg, fit_cfg, x, y, seed, device, data_parallel)


def build_model(cfg: ModelConfig | dict):
    """An untrained network of a torch family."""
    cfg = cfg if isinstance(cfg, ModelConfig) else ModelConfig.model_validate(cfg)
    outputs_ok = cfg.n_classes == 1 if cfg.task == "regression" else cfg.n_classes >= 2
    if cfg.in_features < 1 or not outputs_ok:
        need = "n_classes == 1 (regression)" if cfg.task == "regression" else "n_classes >= 2"
        raise ValueError(f"in_features >= 1 and {need} must hold, but got "
                         f"(in_features={cfg.in_features}, n_classes={cfg.n_classes})")
    family = get_family(cfg.family)
    if not family.is_torch:
        torch_names = sorted(n for n, f in FAMILIES.items() if f.is_torch)
        raise ValueError(f"a torch family ({', '.join(torch_names)}) must hold to build a network, but got "
                         f"{cfg.family!r}")
    return family.network(cfg)


__all__ = ["Cost", "DEFAULT_FAMILY", "ModelConfig", "build_model", "start_fit", "FAMILIES", "STUDENT_FAMILIES", "Family", "Fit", "get_family", "known_family",
           "user_code_families"]
