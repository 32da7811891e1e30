"""The time budget's stopper (trainers/deadline.py) without Ray running: Tune calls it per result, asks
stop_all between events, and tells it (as a Callback) when trials start and end."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from trainers.deadline import Deadline, grace_s


def trial(trial_id: str):
    return SimpleNamespace(trial_id=trial_id)


def test_before_the_deadline_nothing_stops():
    d = Deadline(time.time() + 60, grace=10)
    d.on_trial_start(0, [], trial("a"))
    assert not d("a", {}) and not d.stop_all()


def test_after_it_a_result_stops_its_trial_and_the_experiment_waits_for_the_trials_then_running():
    d = Deadline(time.time() + 60, grace=10)
    d.on_trial_start(0, [], trial("a"))
    d.on_trial_start(0, [], trial("b"))
    d.deadline = time.time() - 1  # the deadline passes
    d.on_trial_start(0, [], trial("late"))  # started after it: not waited for
    assert d("a", {}) and not d.stop_all()
    d.on_trial_complete(0, [], trial("a"))
    d.on_trial_error(0, [], trial("b"))
    assert d.stop_all()


def test_a_trial_that_never_reports_again_is_given_up_after_the_grace():
    d = Deadline(time.time() + 60, grace=10)
    d.on_trial_start(0, [], trial("a"))
    d.deadline = time.time() - 11
    assert d.stop_all()


@pytest.mark.parametrize("search_s, grace", [(10, 10), (100, 10), (300, 30), (3600, 60)])
def test_the_grace_is_a_tenth_of_the_search_within_10_to_60_s(search_s, grace):
    assert grace_s(search_s) == grace
