"""A ray_train trial's reports reach Tune from the trial's own thread, and a trial whose Train run
never ends after its workers' final report is failed with a stack dump.

Ray's TuneReportCallback hands each report to the trial through a one-slot queue that Tune's main
thread drains; on GPU sweeps the trial then hung now and then after the workers' last report (its
main thread blocked in a Queue.put inside Ray's session code). Here the Train controller puts each
report on an unbounded queue (ReportForwarder) and the trial's training thread, which waits for the
run in `forward_reports`, calls tune.report itself: the ordinary path of a function trainable, and
every report is made before the trainable returns.

`hang_timeout_s` after the final epoch's report, if the Train run still has not returned, the trial
dumps every thread's stack to its log (faulthandler) and exits its process: Tune counts a failed
attempt (search.max_failures) and retries it from its last checkpoint; the Train run it owned ends
with it.
"""
from __future__ import annotations

import faulthandler
import os
import queue
import sys
import threading
import time
from typing import Callable

from ray.train.v2.api.callback import UserCallback

CHECKPOINT_PATH_KEY = "checkpoint_path"  # what TuneReportCallback called it; the sweep's Recorder reads it
POLL_S = 0.2  # how often the trial looks for reports and for the run's end


class ReportForwarder(UserCallback):
    """Runs in the Train controller: rank 0's metrics (and its checkpoint's path) onto `reports`."""

    def __init__(self, reports):
        self.reports = reports  # ray.util.queue.Queue, unbounded

    def after_report(self, run_context, metrics, checkpoint):
        item = dict(metrics[0])
        if checkpoint:
            item[CHECKPOINT_PATH_KEY] = checkpoint.path
        self.reports.put(item)


def new_report_queue():
    from ray.util.queue import Queue

    return Queue(actor_options={"num_cpus": 0})


def forward_reports(run: Callable[[], object], reports, report: Callable[[dict], None], final_epoch: int,
                    hang_timeout_s: float | None, on_hang: Callable[[str], None] | None = None) -> object:
    """run() (the Train run's fit) in a thread; each item of `reports` to report(item) from here, in
    order, until run() has returned and its reports are all made; returns run()'s value or raises its
    error. on_hang(reason) when the run outlives its final report by hang_timeout_s (default: dump
    stacks and exit the process)."""
    from ray.util.queue import Empty

    outcome: dict = {}

    def target():
        try:
            outcome["value"] = run()
        except BaseException as err:  # re-raised in the trial's thread below
            outcome["error"] = err

    worker = threading.Thread(target=target, name="raysemble-train-run", daemon=True)
    worker.start()
    final_at = None
    while True:
        try:
            item = reports.get(timeout=POLL_S)
        except (Empty, queue.Empty):
            item = None
        if item is not None:
            report(item)
            if int(item.get("epoch", 0)) >= final_epoch:
                final_at = time.monotonic()
            continue
        if not worker.is_alive():
            break
        if final_at is not None and hang_timeout_s is not None and time.monotonic() - final_at > hang_timeout_s:
            (on_hang or _dump_and_exit)(f"the Ray Train run did not end within search.hang_timeout_s="
                                        f"{hang_timeout_s:g} s of its workers' final report")
            break
    worker.join(timeout=0)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _dump_and_exit(reason: str) -> None:
    print(f"[raysemble] hung trial: {reason}; every thread's stack follows, then this attempt exits "
          f"and Tune retries it", file=sys.stderr, flush=True)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(3)
