"""CPU accounting shared by the benchmarks (run as scripts: `python bench/<name>.py`)."""
from __future__ import annotations


class CpuMeter:
    """CPU seconds of this process and every descendant (Ray's GCS, raylet, trial and Train workers),
    sampled twice a second: on a shared machine the wall clock measures the neighbours' load too, and
    CPU seconds / cores bounds what an idle machine with that many cores would take."""

    def __init__(self, interval: float = 0.5):
        import threading

        self.interval, self.seen, self.lock = interval, {}, threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            with self.lock:
                self.seen[key] = t.user + t.system  # the last sample of a process that ends is kept

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self._sample()

    def seconds(self) -> float:
        self._sample()
        with self.lock:
            return float(sum(self.seen.values()))

    def stop(self) -> None:
        self.stop_event.set()
