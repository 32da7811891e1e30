"""The search's time budget as a Tune Stopper: after the deadline each trial stops at its next result
(a round that checkpointed: trainers.kfold.TrialData.deadline), and the experiment ends once the trials
running at the deadline have ended, or a grace period later with those that never reported again left
unrecorded. Also a Callback (pass it as both): it keeps count of those trials."""
from __future__ import annotations

import time

from ray.tune import Callback, Stopper


def grace_s(search_s: float) -> float:
    """How long after the deadline a running trial may take to reach its next round: a tenth of the
    search's time, at least 10 s (a round of a small model) and at most a minute."""
    return min(60.0, max(10.0, 0.1 * search_s))


class Deadline(Stopper, Callback):
    def __init__(self, deadline: float, grace: float):
        self.deadline, self.grace = deadline, grace
        self.running: set[str] = set()  # trials that started before the deadline and have not ended

    def __call__(self, trial_id: str, result: dict) -> bool:
        return time.time() >= self.deadline

    def stop_all(self) -> bool:
        # ending at once, not after the grace: Tune would go on starting trials that only report NaN
        now = time.time()
        return now >= self.deadline and (not self.running or now >= self.deadline + self.grace)

    def on_trial_start(self, iteration, trials, trial, **info):
        if time.time() < self.deadline:
            self.running.add(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
