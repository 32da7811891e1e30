"""A searcher that never hands Tune a configuration it already handed out.

Trials are seeded from their hyperparameters (trainers.kfold.derived_seed), so a repeated configuration
trains the very same models again: time spent for nothing, and one more copy crowding the ensemble's
candidate pool. TPE repeats itself readily where a family's space is small and its score leads (a
600 s tabular sweep trained extra_trees' three configurations 67 times). A repeat is told to the inner
searcher as an errored trial (a failed Optuna trial, which its model ignores) and the inner searcher is
asked again; only public Searcher calls are used, so any Tune searcher can sit inside.
"""
from __future__ import annotations

import json
import logging
from typing import Optional

from ray.tune.search import Searcher

logger = logging.getLogger(__name__)

MAX_REDRAWS = 50  # draws in a row that may repeat a configuration before a repeat is trained after all


def config_key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


class Distinct(Searcher):
    """`searcher`, asked again whenever it repeats a configuration, up to `redraws` times in a row.
    `limit`: how many distinct configurations the space holds (None: unbounded); the search ends once
    all were handed out."""

    def __init__(self, searcher: Searcher, limit: int | None = None, redraws: int = MAX_REDRAWS):
        if redraws < 0:
            raise ValueError(f"redraws >= 0 must hold, but got redraws={redraws}")
        self.searcher, self.limit, self.redraws = searcher, limit, redraws
        self.seen: set[str] = set()
        self.inner_ids: dict[str, str] = {}  # Tune's trial id -> the inner searcher's (a redraw's own id)
        self.repeats = 0  # draws refused as repeats so far
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    @property
    def metric(self):
        return self.searcher.metric

    @property
    def mode(self):
        return self.searcher.mode

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> Optional[dict]:
        if self.limit is not None and len(self.seen) >= self.limit:
            return Searcher.FINISHED
        n = 0
        while True:
            inner_id = trial_id if n == 0 else f"{trial_id}~{n}"
            config = self.searcher.suggest(inner_id)
            if config is None or config == Searcher.FINISHED:
                return config
            key = config_key(config)
            # the last redraw is handed out even as a repeat: a search that ended early would leave the
            # sweep short of the trials its spec counts (service.sweep takes that for an interruption)
            if key not in self.seen or n == self.redraws:
                if key in self.seen:
                    logger.info("%d draws in a row repeated a configuration already tried; training it again",
                                self.redraws + 1)
                self.seen.add(key)
                self.inner_ids[trial_id] = inner_id
                return config
            self.repeats += 1
            self.searcher.on_trial_complete(inner_id, result=None, error=True)
            n += 1

    def _inner(self, trial_id: str) -> str:
        return self.inner_ids.get(trial_id, trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(self._inner(trial_id), result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        self.searcher.on_trial_complete(self._inner(trial_id), result=result, error=error)

    def on_pause(self, trial_id: str) -> None:
        self.searcher.on_pause(self._inner(trial_id))

    def on_unpause(self, trial_id: str) -> None:
        self.searcher.on_unpause(self._inner(trial_id))

    def add_evaluated_point(self, parameters, value, error=False, pruned=False, intermediate_values=None):
        return self.searcher.add_evaluated_point(parameters, value, error, pruned, intermediate_values)

    # Tune's SearchGenerator saves a wrapper (anything with a .searcher) by get_state and the searcher
    # inside it by its own save; restore_from_dir does the reverse
    def get_state(self) -> dict:
        return {"seen": sorted(self.seen), "inner_ids": dict(self.inner_ids), "repeats": self.repeats}

    def set_state(self, state: dict) -> None:
        self.seen, self.inner_ids, self.repeats = set(state["seen"]), dict(state["inner_ids"]), state["repeats"]

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)
