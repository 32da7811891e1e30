"""A real local multi-node Ray cluster for tests: `ray start --head --block` plus `ray start --address
--block` per extra node, each in its own process group, every port explicit and free, a short temp
dir, token authentication on. Nodes are stopped by killing their own process trees (never `ray stop`,
which would stop every Ray on this shared machine)."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")


def free_port() -> int:
    # outside the kernel's ephemeral range and Ray's worker ports: a port picked there can be taken by
    # one of Ray's own connections before the node binds it (a worker then never joined, in CI)
    from serving.cluster import free_port as outside_ephemeral_range

    return outside_ephemeral_range()


class LocalCluster:
    def __init__(self, num_cpus: int = 1, token: str | None = None):
        self.temp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
        self.token = token or secrets.token_hex(16)
        self.num_cpus = num_cpus
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.nodes: list[subprocess.Popen] = []
        self.env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "RAY_USAGE_STATS_ENABLED": "0",
                    "PYTHONUNBUFFERED": "1"}
        for key in ("RAY_ADDRESS", "RAYSEMBLE_HOME", "MLFLOW_TRACKING_URI"):
            self.env.pop(key, None)

    def client_env(self, **extra) -> dict:
        """Environment for a client process (CLI, API) of this cluster."""
        return {**self.env, "RAY_ADDRESS": self.address, **extra}

    def _ports(self) -> list[str]:
        return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(Path(self.temp) / f"{name}.log", "ab")
        proc = subprocess.Popen([RAY, "start", "--block", f"--num-cpus={self.num_cpus}", "--num-gpus=0",
                                 "--disable-usage-stats", *self._ports(), *args],
                                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes.append(proc)
        return proc

    def start_head(self, timeout_s: float = 120) -> None:
        self._start(["--head", f"--port={self.gcs_port}", f"--temp-dir={self.temp}",
                     "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                     f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={free_port()}"], "head")
        self.wait_for_nodes(1, timeout_s)

    def add_worker(self, timeout_s: float = 120) -> subprocess.Popen:
        # a temp dir of its own: nodes sharing one would share (and delete) each other's unpacked
        # runtime_env working dirs, which on separate machines never happens
        for attempt in (1, 2):
            name = f"worker{len(self.nodes)}" + ("" if attempt == 1 else f"-{attempt}")
            temp = Path(self.temp) / (f"w{len(self.nodes)}" + ("" if attempt == 1 else f"-{attempt}"))
            temp.mkdir()
            proc = self._start([f"--address=127.0.0.1:{self.gcs_port}", f"--temp-dir={temp}"], name)
            try:
                self.wait_for_nodes(len(self.alive()), timeout_s, joining=(proc, name))
                return proc
            except RuntimeError:
                if attempt == 2 or proc.poll() is None:
                    raise
                # it exited before joining (a port it was given was taken meanwhile): once more, new ports
                self.nodes.remove(proc)

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.nodes if p.poll() is None]

    def node_ids(self) -> list[str]:
        """Alive node ids, head first, from the dashboard's state API."""
        import httpx

        r = httpx.get(f"{self.address}/api/v0/nodes", params={"limit": 100},
                      headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        r.raise_for_status()
        nodes = [n for n in r.json()["data"]["result"]["result"] if n["state"] == "ALIVE"]
        return [n["node_id"] for n in sorted(nodes, key=lambda n: not n["is_head_node"])]

    def wait_for_nodes(self, n: int, timeout_s: float, joining: tuple | None = None) -> None:
        """joining: (process, log name) of the node being added: its exit or a timeout shows its log."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.nodes[:1]):
                raise RuntimeError(f"ray head exited:\n{self.log('head')}")
            if joining and joining[0].poll() is not None:
                raise RuntimeError(f"ray {joining[1]} exited:\n{self.log(joining[1])}")
            try:
                if len(self.node_ids()) >= n:
                    return
            except Exception as err:  # dashboard not up yet
                last = err
            time.sleep(1.0)
        shown = f"{joining[1]}:\n{self.log(joining[1])}" if joining else f"head:\n{self.log('head')}"
        raise TimeoutError(f"{n} alive Ray nodes expected within {timeout_s}s ({last})\n{shown}")

    def log(self, name: str) -> str:
        path = Path(self.temp) / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """Kill one node: its `ray start` process, every process below it, and its process group."""
        try:
            tree = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=30)

    def leftovers(self) -> list[int]:
        """Pids of processes still running from this cluster's temp dir (should be none after shutdown)."""
        found = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(self.temp in part for part in (p.info["cmdline"] or [])):
                    found.append(p.info["pid"])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found

    def shutdown(self) -> None:
        # workers first, then the head
        for proc in reversed(self.nodes):
            self.kill(proc)
        shutil.rmtree(self.temp, ignore_errors=True)
