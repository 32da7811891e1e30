"""The search's time budget as a Tune Stopper: after the deadline each trial stops at its next result
(a round that checkpointed: trainers.kfold.TrialData.deadline), and a grace period later the experiment
ends, with trials that never reported again left unrecorded."""
from __future__ import annotations

import time

from ray.tune import Stopper


def grace_s(search_s: float) -> float:
    """How long after the deadline a running trial may take to reach its next round: a tenth of the
    search's time, at least 10 s (a round of a small model) and at most a minute."""
    return min(60.0, max(10.0, 0.1 * search_s))


class Deadline(Stopper):
    def __init__(self, deadline: float, grace: float):
        self.deadline, self.grace = deadline, grace

    def __call__(self, trial_id: str, result: dict) -> bool:
        return time.time() >= self.deadline

    def stop_all(self) -> bool:
        return time.time() >= self.deadline + self.grace
