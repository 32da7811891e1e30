"""Checking a client's spec away from the event loop, bounded in concurrency, queue and time, so the
REST control plane keeps answering (/healthz, status) whatever arrives.

A spec body is parsed (YAML can be slow) and validated (its data sampled: trainers.data.files) in a
small pool of worker processes: threads would share the interpreter with the event loop, and a check
holding it inside a C call (a CSV chunk being parsed, a counter filled) delayed /healthz past a second.
At most `workers` checks run and `queue` more wait; past that a request is refused at once with 503
and Retry-After, never queued without bound. A check that takes longer than `timeout_s` is answered
(422, naming the limit) while its worker finishes on its own and only then frees its place: a slow check
can make the API busy, never make it hang or grow. A worker that dies (killed for memory) is replaced
and its check answered as failed."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

DEFAULT_WORKERS = 2  # checks running at once (each may read a data file's sample)
DEFAULT_QUEUE = 8  # checks waiting for a worker
DEFAULT_TIMEOUT_S = 60.0  # one check
RETRY_AFTER_S = 5
PARENT_POLL_S = 1.0  # how soon a worker notices that the server process is gone


class Busy(Exception):
    """Every worker and queue place is taken."""


class TooSlow(Exception):
    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"a spec checked within {seconds:g} s expected, but checking it took longer")


class WorkerLost(Exception):
    def __init__(self):
        super().__init__("a check that runs to its end expected, but the process checking it stopped (too much "
                         "memory?)")


def _exit_with(parent: int) -> None:
    # a server killed, or stopped by SIGTERM (uvicorn re-raises it once shut down, before the pool's manager
    # thread has told the workers to stop), leaves its workers waiting on queues whose write ends they hold
    # themselves: they would never see EOF, and would outlive it
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _warm(parent: int) -> None:
    """In a new worker: end with the server process; import what checking needs, so the first check does
    not pay for it."""
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="exit-with-server").start()
    import service.spec.parse  # noqa: F401
    import service.spec.policy  # noqa: F401


class Gate:
    def __init__(self, workers: int = DEFAULT_WORKERS, queue: int = DEFAULT_QUEUE,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        self.workers, self.places, self.taken, self.timeout_s = workers, workers + queue, 0, timeout_s
        self.pool = self._pool()

    def _pool(self) -> ProcessPoolExecutor:
        # spawn: the server process runs threads (uvicorn's, the cluster client's), which fork would copy
        # mid-state
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_warm, initargs=(os.getpid(),))
        for _ in range(self.workers):  # started now, not by the first request
            pool.submit(int)
        return pool

    async def run(self, fn: Callable, *args):
        """fn(*args) in a worker (fn and args picklable); Busy at once when no place is free, TooSlow
        past the time limit, WorkerLost when the worker died."""
        if self.taken >= self.places:
            raise Busy()
        self.taken += 1
        pool = self.pool
        try:
            future = asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            self._release()
            self._replace(pool)
            raise WorkerLost() from None
        # the place is given back when the work ends, not when the client stops waiting for it
        future.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except asyncio.TimeoutError:
            raise TooSlow(self.timeout_s) from None
        except BrokenProcessPool:
            self._replace(pool)
            raise WorkerLost() from None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self.pool is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self.pool = self._pool()

    def _release(self) -> None:
        self.taken -= 1

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
