"""The progress line counts a failed trial as failed, never as done."""
import io
import math

from rich.console import Console

from service.progress import SweepProgress
from service.store import TrialRecord


def _line(finished: dict) -> str:
    stream = io.StringIO()
    progress = SweepProgress(Console(file=stream, force_terminal=False, width=200))
    progress.start(3, "accuracy", "max", finished)
    return stream.getvalue().strip().splitlines()[-1]


def test_errored_trials_are_failed_not_done():
    ok = TrialRecord("a", {}, "TERMINATED", 0.9, [0.9, 0.9])
    bad = TrialRecord("b", {}, "ERROR", math.nan, [], error="boom")
    assert _line({}) == "trials 0/3 done · 0 running · best accuracy -"
    assert _line({"a": ok, "b": bad}) == "trials 1/3 done · 1 failed · 0 running · best accuracy 0.9000"
    assert _line({"b": bad}) == "trials 0/3 done · 1 failed · 0 running · best accuracy -"
