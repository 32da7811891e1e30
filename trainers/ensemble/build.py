"""From ranked finished trials + the spec's `ensemble` section to an EnsemblePredictor.

Member weights are decided per trial and spread evenly over the trial's members (its k fold
models, or its one refit model), so a trial's vote does not grow with its fold count.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from torch import nn

from trainers.checkpoint import load_model
from trainers.config import EnsembleConfig
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.ensemble.combiners import get_combiner
from trainers.ensemble.combiners.soft_vote import SoftVote
from trainers.ensemble.combiners.stacking import Stacking
from trainers.ensemble.combiners.weighted import Weighted
from trainers.ensemble.guard import SINGLE, as_info, held_out_choice
from trainers.ensemble.select import TrialLike, greedy_selection, top_k
from trainers.families.config import ModelConfig

# chosen trials -> per trial (model, config), or None where that trial keeps its fold models (refit.Refitter)
RefitFn = Callable[[Sequence[TrialLike]], list[tuple[nn.Module, ModelConfig] | None]]


def choose_trials(ranked: Sequence[TrialLike], cfg: EnsembleConfig, y_train: np.ndarray, metric: str,
                  mode: str) -> tuple[list[TrialLike], np.ndarray]:
    """(chosen trials, per-trial weights summing to 1).

    top_k: the k best, equal weights. greedy: Caruana selection over the k best (the candidate
    pool), trials never picked dropped. A combiner that fits its weights (weighted) needs them, and
    greedy selection is the one thing here that fits them on OOF predictions, so top_k fits them that
    way too.
    """
    pool = top_k(ranked, cfg.top_k)
    if cfg.selection == "greedy" or get_combiner(cfg.method).fits_weights:
        pool = with_every_family(pool, ranked)
        sel_metric, sel_mode = selection_objective(cfg, metric, mode)
        weights = greedy_selection([t.oof() for t in pool], y_train, sel_metric, cfg.greedy_rounds, sel_mode)
        keep = np.flatnonzero(weights > 0)
        return [pool[i] for i in keep], weights[keep]
    return pool, np.full(len(pool), 1.0 / len(pool))


def selection_objective(cfg: EnsembleConfig, metric: str, mode: str) -> tuple[str, str]:
    """(metric, mode) greedy selection optimises on the OOF predictions."""
    return ("log_loss", "min") if cfg.selection_metric == "log_loss" else (metric, mode)


def with_every_family(pool: list[TrialLike], ranked: Sequence[TrialLike]) -> list[TrialLike]:
    """The pool plus the best trial of each family it lacks. Greedy selection can only combine what
    the pool offers, and a search spends most trials on the family whose CV score leads (TPE does,
    by design), so the k best are often all one family: too alike to fix each other's errors."""
    seen = {t.params.get("family") for t in pool}
    extra = []
    for trial in ranked[len(pool):]:
        family = trial.params.get("family")
        if family not in seen:
            seen.add(family)
            extra.append(trial)
    return [*pool, *extra]


def _fold_group(trial: TrialLike) -> list[tuple]:
    """The trial's fold models as (model, config, path) members."""
    group = [(*load_model(p)[:2], p) for p in trial.fold_model_paths()]
    if not group:
        raise ValueError(f"fold models for every chosen trial must hold, but got none for {trial.trial_id!r}")
    return group


def resolved_method(cfg: EnsembleConfig) -> str:
    """The combiner a bundle stores: under greedy selection, what the spec's combiner becomes over a
    weighted multiset of trials (Combiner.under_greedy)."""
    if cfg.selection == "greedy":
        return get_combiner(cfg.method).under_greedy or cfg.method
    return cfg.method


def build_ensemble(ranked: Sequence[TrialLike], cfg: EnsembleConfig, *, y_train: np.ndarray, metric: str,
                   mode: str, classes: list | None = None, refit: RefitFn | None = None,
                   task: str = "classification") -> tuple[EnsemblePredictor, dict]:
    """Returns (predictor, info). `ranked`: finished trials best first; `y_train`: labels of the
    training split in the OOF rows' order; `refit`: needed for members: refit (see refit.Refitter)."""
    chosen, trial_weights = choose_trials(ranked, cfg, y_train, metric, mode)
    method, guard, members = resolved_method(cfg), None, cfg.members
    if "if_better" in (cfg.stacking, cfg.single):
        pool = with_every_family(top_k(ranked, cfg.top_k), ranked)
        sel_metric, sel_mode = selection_objective(cfg, metric, mode)
        guard = held_out_choice([t.oof() for t in pool], y_train, sel_metric, sel_mode, cfg.greedy_rounds, task,
                                stacking=cfg.stacking == "if_better", single=cfg.single == "if_better")
        if guard.kept == Stacking.name:
            chosen, trial_weights, method = pool, np.full(len(pool), 1.0 / len(pool)), Stacking.name
        elif guard.kept == SINGLE:  # the best trial by its own CV score (the judge's "single" row) as its fold
            # models, whose OOF predictions the comparison judged: one refit would lose the bag's averaging
            chosen, trial_weights, members = pool[:1], np.ones(1), "folds"
    kept_folds: list[str] = []  # members: refit, but the refit did not finish by the run's deadline
    if members == "folds":
        groups = [_fold_group(t) for t in chosen]
    elif refit is None:
        raise ValueError("members 'refit' needs a refit function, but got refit=None")
    else:
        refits = refit(chosen)
        groups = [[(*pair, None)] if pair is not None else _fold_group(t) for t, pair in zip(chosen, refits)]
        kept_folds = [t.trial_id for t, pair in zip(chosen, refits) if pair is None]
    if method == SoftVote.name and len({len(g) for g in groups}) > 1:
        method = Weighted.name  # a plain mean over members would give a trial a vote per fold model
    combiner = get_combiner(method)
    if task not in combiner.tasks:
        raise ValueError(f"ensemble.method: one for a {task} target expected, but got {method!r}")
    member_weights = [w / len(g) for w, g in zip(trial_weights, groups) for _ in g]
    state = combiner.fit([t.oof() for t in chosen], y_train, [len(g) for g in groups], task)
    predictor = EnsemblePredictor(
        [m for g in groups for m, _, _ in g], [c for g in groups for _, c, _ in g], method=method,
        weights=member_weights if combiner.uses_weights else None, stacker=state,
        classes=classes, kind="ensemble").read_from([p for g in groups for _, _, p in g])
    info = {"selection": cfg.selection, "method": method, "members": members,
            "n_members": len(member_weights),
            "trials": [{"trial_id": t.trial_id, "weight": float(w), "n_members": len(g), "family": g[0][1].family,
                        "mean_score": float(t.mean_score)} for t, w, g in zip(chosen, trial_weights, groups)]}
    if kept_folds:
        info["kept_fold_models"] = kept_folds
    if guard is not None:
        info["stacking_guard"] = as_info(guard)  # the key older sweeps wrote, kept so their reports still read
    return predictor, info
