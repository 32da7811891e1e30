"""The REST control plane against a hostile user who can write inside a data root (a real `raysemble api`
process, real HTTP): a file swapped for a link while it is checked, a FIFO, slow YAML, forty checks at
once, files whose headers promise far more than they hold. Every answer is a 4xx or a 503 with
Retry-After, /healthz keeps answering (how fast: bench/api_gate.py), the process stays small, and
nothing outside the roots is ever read. Every spec here fails validation, so no cluster is needed (nothing is submitted)."""
from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import yaml

from serving.cluster import free_port
from tests.conftest import tiny_spec

RAYSEMBLE = str(Path(sys.executable).parent / "raysemble")
TOKEN = "hostile-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MEMORY_BOUND = 256 * 2**20  # docs/security.md: what checking specs may add to the API process


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "data").mkdir()
    (tmp / "outside").mkdir()
    (tmp / "outside" / "secret.csv").write_text("TOPSECRET,ALSOSECRET\n1,2\n")
    with socket_port() as dead:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYSEMBLE_", "MLFLOW_", "RAY_ADDRESS"))}
        env.update(RAYSEMBLE_API_TOKEN=TOKEN, RAY_AUTH_MODE="disabled")
        proc = subprocess.Popen([RAYSEMBLE, "api", "--host", "127.0.0.1", "--port", str(port), "--address",
                                 f"http://127.0.0.1:{dead}", "--data-root", str(tmp / "data"), "--home",
                                 str(tmp / "home")], env=env, stdout=open(tmp / "api.log", "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp / "api.log").read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "the API did not come up"
                    time.sleep(0.3)
            yield url, tmp, proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


class socket_port:
    """A port bound and never listened on: nothing answers there (no cluster)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


def post(url: str, spec: dict, timeout: float = 120) -> httpx.Response:
    return httpx.post(f"{url}/sweeps", json=spec, headers=AUTH, timeout=timeout)


def failing(source: str) -> dict:
    """A spec refused (a weight decay past its bound) whose data is read and checked all the same."""
    spec = tiny_spec("hostile", data={"source": source, "target": "label"}, cv={"folds": 50})
    spec["search"]["fixed"]["weight_decay"] = 5.0
    return spec


def test_a_file_swapped_for_a_link_while_it_is_checked_never_shows_what_the_link_points_at(api):
    url, tmp, _ = api
    good = tmp / "data" / "table.csv"
    content = "a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(40))
    good.write_text(content)
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            link = tmp / "data" / "link.tmp"
            link.unlink(missing_ok=True)
            link.symlink_to(tmp / "outside" / "secret.csv")
            os.replace(link, good)  # the checked name now a link out
            regular = tmp / "data" / "regular.tmp"
            regular.write_text(content)
            os.replace(regular, good)  # and a regular file again

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    try:
        answers = [post(url, failing("table.csv")) for _ in range(30)]
    finally:
        stop.set()
        flipper.join(timeout=10)
    assert {r.status_code for r in answers} <= {422}
    texts = " ".join(r.text for r in answers)
    assert "TOPSECRET" not in texts and "ALSOSECRET" not in texts and "outside" not in texts
    kinds = {p.split(":")[0] for r in answers for p in r.json()["problems"]}
    assert kinds <= {"search.fixed.weight_decay", "cv.folds", "data.source"}, texts[:2000]


def test_a_fifo_is_refused_at_once_and_healthz_keeps_answering(api):
    url, tmp, _ = api
    fifo = tmp / "data" / "pipe.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    r = post(url, failing("pipe.csv"), timeout=30)
    assert time.monotonic() - started < 10
    assert r.status_code == 422 and r.json()["problems"][-1] == (
        "data.source: a file or directory inside the data roots expected, but 'pipe.csv' is not one (missing, a "
        "link, or another kind of file)")
    assert httpx.get(f"{url}/healthz", timeout=1).status_code == 200


def _healthz_seconds(url: str, stop: threading.Event, worst: list) -> None:
    while not stop.is_set():
        started = time.monotonic()
        httpx.get(f"{url}/healthz", timeout=5).raise_for_status()
        worst.append(time.monotonic() - started)
        time.sleep(0.05)


def test_slow_yaml_and_forty_hostile_checks_leave_healthz_answering(api):
    url, tmp, _ = api
    rows = 200_000
    pd_frame = __import__("pandas").DataFrame({"a": np.zeros(rows), "label": np.arange(rows) % 2})
    pd_frame.to_csv(tmp / "data" / "big.csv", index=False)
    # ~1 MiB of YAML: a flow sequence of many small mappings (slow to parse, no aliases)
    slow = yaml.safe_dump({**failing("big.csv"), "serve": {"app_name": "x"}}) + \
        "padding: [" + ", ".join("{a: 1}" for _ in range(100_000)) + "]\n"
    assert len(slow) > 700_000
    stop, seconds = threading.Event(), []
    watcher = threading.Thread(target=_healthz_seconds, args=(url, stop, seconds), daemon=True)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            jobs = [pool.submit(httpx.post, f"{url}/sweeps", content=slow.encode(), timeout=180,
                                headers={**AUTH, "Content-Type": "application/yaml"}) for _ in range(8)]
            jobs += [pool.submit(post, url, failing("big.csv"), 180) for _ in range(32)]
            answers = [j.result() for j in jobs]
    finally:
        stop.set()
        watcher.join(timeout=10)
    codes = sorted({r.status_code for r in answers})
    assert set(codes) <= {400, 413, 422, 503}, codes
    parsed = [r for r in answers[:8] if r.status_code == 400]  # the YAML bodies that got a place: cut short
    assert all("at most 20000 YAML nodes" in r.json()["problems"][0] for r in parsed), [r.text for r in parsed]
    assert 503 in codes  # more than the gate holds: refused at once, not queued without bound
    busy = next(r for r in answers if r.status_code == 503)
    assert busy.headers["Retry-After"] and "retry later" in busy.json()["error"]
    # answered throughout (before the gate, one YAML body stalled every request for 15 s); how fast is
    # measured by bench/api_gate.py, not asserted here: a shared 2-core CI box is no stopwatch
    assert len(seconds) >= 5 and max(seconds) < 5.0, str([round(s, 2) for s in seconds])


def _parquet_bomb(path: Path, rows: int) -> None:
    """A small file whose metadata promises many rows (one repeated value compresses to nothing)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": pa.array(np.zeros(rows)), "label": pa.array(np.arange(rows) % 2)})
    pq.write_table(table, path, compression="zstd", row_group_size=1_000_000)


def _npz_bomb(path: Path) -> None:
    """An NPZ whose X header claims 2**40 rows: refused from the header, nothing allocated."""
    import zipfile

    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 4)))
    header["shape"] = (2**40, 4)
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("X.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(b"\0" * 64)
        with archive.open("label.npy", "w") as member:
            np.lib.format.write_array(member, np.arange(10) % 2)


def test_checking_files_that_promise_far_more_than_they_hold_keeps_the_processes_small(api):
    url, tmp, proc = api
    _parquet_bomb(tmp / "data" / "bomb.parquet", 20_000_000)
    assert (tmp / "data" / "bomb.parquet").stat().st_size < 2 * 2**20
    _npz_bomb(tmp / "data" / "bomb.npz")
    post(url, failing("bomb.npz"))  # warm: the first check imports the data libraries
    process = psutil.Process(proc.pid)

    def rss() -> int:
        """The API process and its spec-checking workers together."""
        total = 0
        for p in [process, *process.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    base = rss()
    peak, stop = [base], threading.Event()

    def watch():
        while not stop.is_set():
            peak.append(rss())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        answers = [post(url, failing(name)) for name in ("bomb.parquet", "bomb.npz", "bomb.parquet")]
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert {r.status_code for r in answers} == {422}, [r.text for r in answers]
    npz = answers[1].json()["problems"][-1]
    assert npz.startswith("data.source: at most") and "array 'X'" in npz
    assert max(peak) - base < MEMORY_BOUND, (max(peak) - base) / 2**20
