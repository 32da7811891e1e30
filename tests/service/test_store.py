"""Sweep state on disk: one driver per sweep (service.sweeplock), and a sweep whose job ended
without its driver recording it settles to a terminal state (service.cluster.settle)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from service import sweeplock
from service.cluster import progress, settle
from service.cluster.jobs import HOME, SWEEP
from service.sweeplock import SweepBusy, hold

HOLD = ("import sys, time\nfrom service.sweeplock import hold\n"
        "with hold(sys.argv[1], 'raysemble sweep'):\n    print('held', flush=True)\n    time.sleep(600)\n")


@pytest.fixture
def holder():
    """Start a process that holds a sweep dir; yields a function (dir -> Popen)."""
    procs = []

    def start(directory: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True,
                                cwd=Path(__file__).resolve().parents[2])
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_a_held_sweep_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_lock(tmp_path, holder):
    directory = tmp_path / "sweeps" / "s1"
    proc = holder(directory)
    with pytest.raises(SweepBusy) as info:
        with hold(directory, "raysemble resume"):
            pass
    message = str(info.value)
    assert f"pid {proc.pid} on host {socket.gethostname()} since " in message and "(raysemble sweep)" in message
    assert message.startswith("NAME: a sweep that no other driver holds expected, but 's1' is held by")
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up: the kernel drops the flock
    proc.wait(timeout=30)
    with hold(directory, "raysemble resume"):
        assert json.loads((directory / "driver.lock").read_text())["pid"] == os.getpid()
    assert (directory / "driver.lock").read_text() == ""  # released: no stale name left


def test_holds_are_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    directory = tmp_path / "sweeps" / "s2"
    probe = [sys.executable, "-c", "import sys\nfrom service.sweeplock import hold, SweepBusy\ntry:\n"
             "    with hold(sys.argv[1], 'probe'): print('free')\nexcept SweepBusy as e: print(e)\n", str(directory)]
    cwd = Path(__file__).resolve().parents[2]
    with hold(directory, "raysemble run"):
        with hold(directory, "prepare"):  # the CLI holds, then prepare/run_sweep hold again
            pass
        # still held by the outer block after the inner one ended
        out = subprocess.run(probe, capture_output=True, text=True, cwd=cwd, timeout=60).stdout
        assert f"pid {os.getpid()}" in out and "(raysemble run)" in out
    assert subprocess.run(probe, capture_output=True, text=True, cwd=cwd, timeout=60).stdout.strip() == "free"


def _sweep_json(home: Path, name: str, **meta) -> Path:
    directory = home / "sweeps" / name
    directory.mkdir(parents=True)
    (directory / "sweep.json").write_text(json.dumps({"name": name, **meta}))
    return directory


def test_a_stopped_job_settles_its_running_sweep_to_stopped_on_disk(tmp_path, holder):
    meta = {SWEEP: "cut", HOME: str(tmp_path)}
    directory = _sweep_json(tmp_path, "cut", state="RUNNING", finished=None)
    # a driver still holds it (e.g. a local `raysemble resume`): it is running, whatever the job says
    proc = holder(directory)
    assert settle(meta, "STOPPED", "RUNNING", "sweep_dir", 123.0) == "RUNNING"
    assert json.loads((directory / "sweep.json").read_text())["state"] == "RUNNING"
    proc.kill()
    proc.wait(timeout=30)
    assert settle(meta, "STOPPED", "RUNNING", "sweep_dir", 123.0) == "STOPPED"
    on_disk = json.loads((directory / "sweep.json").read_text())
    assert on_disk["state"] == "STOPPED" and on_disk["finished"] == 123.0 and on_disk["name"] == "cut"
    # the progress readers now see it without the job
    assert progress(meta)["sweep_state"] == "STOPPED"


@pytest.mark.parametrize("job, sweep, expected", [
    ("FAILED", "RUNNING", "FAILED"),  # the driver died (OOM, lost head process)
    ("STOPPED", "INTERRUPTED", "STOPPED"),
    ("RUNNING", "RUNNING", "RUNNING"),  # a live job: nothing to settle
    ("STOPPED", "SUCCEEDED", "SUCCEEDED"),  # cancelled after the search ended (e.g. in post-sweep)
    ("SUCCEEDED", "SUCCEEDED", "SUCCEEDED"),
])
def test_settle_only_ends_sweeps_whose_job_ended(tmp_path, job, sweep, expected):
    meta = {SWEEP: "s", HOME: str(tmp_path)}
    directory = _sweep_json(tmp_path, "s", state=sweep)
    assert settle(meta, job, sweep, "sweep_dir", 1.0) == expected
    assert json.loads((directory / "sweep.json").read_text())["state"] == expected
    # without the sweep dir (MLflow or nothing), the answer is the same and nothing is written
    assert settle(meta, job, sweep, "mlflow", 1.0) == expected


def test_replace_keeps_the_lock_file_it_holds(tmp_path, monkeypatch):
    from service.sweep import _remove_sweep
    from service.sweepdir import SweepDir

    monkeypatch.setenv("RAYSEMBLE_HOME", str(tmp_path / "home"))
    directory = _sweep_json(tmp_path / "home", "again", state="SUCCEEDED")
    (directory / "trials").mkdir()
    (directory / "trials" / "t.json").write_text("{}")
    with hold(directory, "raysemble sweep --replace"):
        inode = (directory / sweeplock.LOCK_FILE).stat().st_ino
        _remove_sweep(SweepDir(directory), str(tmp_path / "home" / "tune" / "again"))
        assert [p.name for p in directory.iterdir()] == [sweeplock.LOCK_FILE]
        assert (directory / sweeplock.LOCK_FILE).stat().st_ino == inode


def test_prepare_with_replace_refuses_while_another_driver_holds_the_sweep(tmp_path, monkeypatch, holder):
    from service.spec import SweepSpec
    from service.sweep import prepare
    from tests.conftest import tiny_spec

    monkeypatch.setenv("RAYSEMBLE_HOME", str(tmp_path / "home"))
    directory = _sweep_json(tmp_path / "home", "busy", state="RUNNING")
    (directory / "spec.json").write_text("{}")
    proc = holder(directory)
    with pytest.raises(SweepBusy, match=f"'busy' is held by pid {proc.pid} "):
        prepare(SweepSpec.model_validate(tiny_spec("busy")), replace=True)
    assert sorted(p.name for p in directory.iterdir()) == ["driver.lock", "spec.json", "sweep.json"]
