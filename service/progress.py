"""The sweep's progress line (stderr): trials done/total, failed, running, best so far."""
from __future__ import annotations

import math

from rich.console import Console
from rich.live import Live
from rich.table import Table


class SweepProgress:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.live: Live | None = None
        self.total, self.metric, self.mode = 0, "", "max"
        self.done = self.failed = self.running = 0
        self.best = math.nan
        self._last = ""

    def start(self, total: int, metric: str, mode: str, finished: dict) -> None:
        self.total, self.metric, self.mode = total, metric, mode
        self._count(finished)
        if self.console.is_terminal:
            self.live = Live(self._line(), console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        else:
            self._print()

    def _count(self, finished: dict) -> None:
        # a trial that errored is over but not done: counting it as done hid failed sweeps
        self.failed = sum(1 for r in finished.values() if r.status != "TERMINATED")
        self.done = len(finished) - self.failed
        scores = [r.mean_score for r in finished.values() if r.status == "TERMINATED"]
        if scores:
            self.best = max(scores) if self.mode == "max" else min(scores)

    def update(self, trials, result: dict | None, finished: dict | None = None) -> None:
        if finished is not None:
            self._count(finished)
        self.running = sum(1 for t in trials if t.status == "RUNNING")
        if self.live:
            self.live.update(self._line())
        else:
            self._print()

    def _line(self) -> str:
        best = "-" if math.isnan(self.best) else f"{self.best:.4f}"
        failed = f" · {self.failed} failed" if self.failed else ""
        return f"trials {self.done}/{self.total} done{failed} · {self.running} running · best {self.metric} {best}"

    def _print(self) -> None:
        line = self._line()
        if line != self._last:
            self.console.print(line, highlight=False)
            self._last = line

    def stop(self) -> None:
        if self.live:
            self.live.stop()
            self.live = None


class Silent(SweepProgress):
    def start(self, *a, **k):
        pass

    def update(self, *a, **k):
        pass


def results_table(summary: dict) -> Table:
    table = Table(title=f"sweep {summary['sweep']} — {summary['metric']} ({summary['mode']}), best first")
    for col in ("trial", "status", "epochs", f"mean {summary['metric']}", "folds", "config"):
        table.add_column(col)
    for t in summary["trials"]:
        mean = "-" if t["mean"] is None or math.isnan(t["mean"]) else f"{t['mean']:.4f}"
        folds = " ".join(f"{s:.3f}" for s in t["folds"])
        shown = {k: v for k, v in t["config"].items() if k in summary.get("searched", t["config"])}
        config = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
        table.add_row(t["trial_id"], t["status"], str(t["epochs"]), mean, folds, config)
    return table
