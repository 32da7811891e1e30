"""How fast the REST control plane's /healthz answers while hostile specs are being checked (issue 19's
aim: within 1 s while 40 run). A real `raysemble api` process, real HTTP: 8 bodies of ~1 MiB of slow
YAML and 32 specs whose 200,000-row CSV is sampled and refused, all at once, while a watcher probes
/healthz every 50 ms. Prints the probes' latency (median, p95, max) and what the checks were answered.

    .venv/bin/python bench/api_gate.py [--rounds 3]

Run it on an otherwise idle machine: the client threads, the API process and the probes share its cores.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOKEN = "bench-gate-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _spec(source: str) -> dict:
    """Refused (a weight decay past its bound) after its data is sampled and checked."""
    return {"name": "gate", "data": {"source": source, "target": "label"}, "cv": {"folds": 50},
            "search": {"fixed": {"epochs": 3, "weight_decay": 5.0}}}


WATCHER = """
import sys, time, httpx
url, stop = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < stop:
    started = time.monotonic()
    httpx.get(url + "/healthz", timeout=30).raise_for_status()
    print(time.monotonic() - started, flush=True)
    time.sleep(0.05)
"""


def _round(url: str) -> tuple[list[float], dict, float]:
    """(probe seconds, answers by status, seconds the 40 checks took). The watcher is a process of its
    own: in this one it would wait for the interpreter behind the 40 client threads, and time them."""
    slow = (yaml.safe_dump(_spec("big.csv")) + "padding: [" + ", ".join("{a: 1}" for _ in range(100_000)) + "]\n").encode()
    watcher = subprocess.Popen([sys.executable, "-c", WATCHER, url, "3600"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        jobs = [pool.submit(httpx.post, f"{url}/sweeps", content=slow, timeout=300,
                            headers={**AUTH, "Content-Type": "application/yaml"}) for _ in range(8)]
        jobs += [pool.submit(httpx.post, f"{url}/sweeps", json=_spec("big.csv"), headers=AUTH, timeout=300)
                 for _ in range(32)]
        codes = [j.result().status_code for j in jobs]
    took = time.monotonic() - started
    watcher.terminate()
    seconds = [float(line) for line in watcher.communicate(timeout=30)[0].split()]
    return seconds, {c: codes.count(c) for c in sorted(set(codes))}, took


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from serving.cluster import free_port

    tmp = Path(tempfile.mkdtemp(prefix="raysemble-gate-"))
    (tmp / "data").mkdir()
    rows = 200_000
    import pandas as pd

    pd.DataFrame({"a": np.zeros(rows), "label": np.arange(rows) % 2}).to_csv(tmp / "data" / "big.csv", index=False)
    port, dead = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYSEMBLE_", "MLFLOW_", "RAY_ADDRESS"))}
    env.update(RAYSEMBLE_API_TOKEN=TOKEN, RAY_AUTH_MODE="disabled")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "raysemble"), "api", "--port", str(port), "--address",
                             f"http://127.0.0.1:{dead}", "--data-root", str(tmp / "data"), "--home", str(tmp / "home")],
                            env=env, stdout=open(tmp / "api.log", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        for r in range(args.rounds):
            seconds, codes, took = _round(url)
            s = np.asarray(seconds)
            print(f"round {r}: {len(s)} /healthz probes around 40 checks ({took:.1f} s): median {np.median(s) * 1e3:.0f} ms, "
                  f"p95 {np.percentile(s, 95) * 1e3:.0f} ms, max {s.max() * 1e3:.0f} ms; checks answered {codes}; "
                  f"load average {os.getloadavg()[0]:.1f}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
