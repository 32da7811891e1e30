"""Checking a client's spec off the event loop, bounded in concurrency, queue and time, so the REST
control plane keeps answering (/healthz, status) whatever arrives.

A spec body is parsed (YAML can be slow) and validated (its data sampled: trainers.data.files) in a
small pool of worker threads. At most `workers` checks run and `queue` more wait; past that a request
is refused at once with 503 and Retry-After, never queued without bound. A check that takes longer
than `timeout_s` is answered (422, naming the limit) while its thread finishes on its own and only then
frees its place: a slow check can make the API busy, never make it hang or grow."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

DEFAULT_WORKERS = 2  # checks running at once (each may read a data file's sample)
DEFAULT_QUEUE = 8  # checks waiting for a worker
DEFAULT_TIMEOUT_S = 60.0  # one check
RETRY_AFTER_S = 5


class Busy(Exception):
    """Every worker and queue place is taken."""


class TooSlow(Exception):
    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"a spec checked within {seconds:g} s expected, but checking it took longer")


class Gate:
    def __init__(self, workers: int = DEFAULT_WORKERS, queue: int = DEFAULT_QUEUE,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spec-check")
        self.places, self.taken, self.timeout_s = workers + queue, 0, timeout_s

    async def run(self, fn: Callable, *args):
        """fn(*args) on a worker; Busy at once when no place is free, TooSlow past the time limit."""
        if self.taken >= self.places:
            raise Busy()
        self.taken += 1
        future = asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        # the place is given back when the work ends, not when the client stops waiting for it
        future.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except asyncio.TimeoutError:
            raise TooSlow(self.timeout_s) from None

    def _release(self) -> None:
        self.taken -= 1

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
