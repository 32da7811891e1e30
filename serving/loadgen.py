"""A bounded HTTP load generator: N concurrent clients POST bodies in a loop for a fixed time.

Used by the tests and by bench/serving.py when wrk is not installed. Bounded twice: by time and
by a request count, so it always ends.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np


@dataclass
class LoadResult:
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # exception type -> count (connection errors etc.)
    latencies_s: list[float] = field(default_factory=list)
    times: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, status or -1)
    samples: dict[int, str] = field(default_factory=dict)  # the first body seen per non-200 status
    elapsed_s: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def rate(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1e3) if self.latencies_s else float("nan")


async def run_load(url: str, bodies: list[bytes], clients: int, duration_s: float, max_requests: int = 1_000_000,
                   headers: dict | None = None, timeout_s: float = 30.0, stop: asyncio.Event | None = None) -> LoadResult:
    """Ends after duration_s, max_requests, or once `stop` is set, whichever comes first."""
    result = LoadResult()
    headers = {"Content-Type": "application/json", **(headers or {})}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    start = time.perf_counter()
    sent = 0

    async def client(k: int, http: httpx.AsyncClient):
        nonlocal sent
        i = k
        while time.perf_counter() - start < duration_s and sent < max_requests and not (stop and stop.is_set()):
            sent += 1
            t0 = time.perf_counter()
            try:
                r = await http.post(url, content=bodies[i % len(bodies)], headers=headers)
                result.statuses[r.status_code] += 1
                if r.status_code != 200 and r.status_code not in result.samples:
                    result.samples[r.status_code] = r.text[:500]
                result.latencies_s.append(time.perf_counter() - t0)
                result.times.append((t0 - start, r.status_code))
            except httpx.HTTPError as e:
                result.errors[type(e).__name__] += 1
                result.times.append((t0 - start, -1))
            i += clients

    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    result.elapsed_s = time.perf_counter() - start
    return result


def load(url: str, bodies: list[bytes], clients: int, duration_s: float, **kwargs) -> LoadResult:
    return asyncio.run(run_load(url, bodies, clients, duration_s, **kwargs))
