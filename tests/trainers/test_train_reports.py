"""The ray_train trial's report loop: order, completion, errors, and a run that outlives its final report."""
from __future__ import annotations

import queue
import threading

import pytest

from trainers.train_reports import forward_reports


def _reports(items):
    q = queue.Queue()
    for item in items:
        q.put(item)
    return q


def test_every_report_is_made_in_order_before_it_returns():
    q, seen = queue.Queue(), []

    def run():  # reports arrive while the run goes on, the last one just before it returns
        for epoch in (1, 2, 3):
            q.put({"epoch": epoch})
        return "fitted"

    assert forward_reports(run, q, seen.append, final_epoch=3, hang_timeout_s=5) == "fitted"
    assert [r["epoch"] for r in seen] == [1, 2, 3]


def test_the_runs_error_is_raised_in_the_callers_thread_after_its_reports():
    seen = []

    def run():
        raise RuntimeError("worker group failed")

    with pytest.raises(RuntimeError, match="worker group failed"):
        forward_reports(run, _reports([{"epoch": 1}]), seen.append, final_epoch=3, hang_timeout_s=5)
    assert seen == [{"epoch": 1}]


def test_a_run_that_outlives_its_final_report_is_hung():
    release, hung = threading.Event(), []

    def run():
        release.wait(30)  # never returns by itself within the timeout

    forward_reports(run, _reports([{"epoch": 1}, {"epoch": 2}]), lambda r: None, final_epoch=2,
                    hang_timeout_s=0.5, on_hang=hung.append)
    release.set()
    assert len(hung) == 1 and "search.hang_timeout_s=0.5" in hung[0] and "final report" in hung[0]


def test_a_slow_run_before_its_final_report_is_not_hung():
    hung = []

    def run():
        threading.Event().wait(1.0)  # longer than the timeout, but no final report yet

    forward_reports(run, _reports([{"epoch": 1}]), lambda r: None, final_epoch=5, hang_timeout_s=0.3,
                    on_hang=hung.append)
    assert hung == []


def test_a_hung_attempt_dumps_every_threads_stack_and_exits():
    import subprocess
    import sys

    code = ("import queue, threading\n"
            "from trainers.train_reports import forward_reports\n"
            "q = queue.Queue(); q.put({'epoch': 1})\n"
            "forward_reports(lambda: threading.Event().wait(60), q, print, final_epoch=1, hang_timeout_s=0.3)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "[raysemble] hung trial: the Ray Train run did not end within search.hang_timeout_s=0.3 s" in proc.stderr
    assert "raysemble-train-run" in proc.stderr or "Thread 0x" in proc.stderr, proc.stderr[-2000:]
    assert "threading.py" in proc.stderr  # the stuck run's stack is in the dump
