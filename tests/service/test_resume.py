"""SIGKILL the sweep driver mid-sweep; `raysemble resume` finishes it without rerunning finished trials."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from tests.conftest import tiny_spec
from tests.service.test_store import HOLD

EXE = str(Path(sys.executable).with_name("raysemble"))


def _env(tmp: Path) -> dict:
    return {**os.environ, "RAYSEMBLE_HOME": str(tmp / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
            "RAY_AUTH_MODE": "disabled"}


def _finished(trials_file: Path) -> list[str]:
    try:
        return [t["trial_id"] for t in json.loads(trials_file.read_text()) if t["status"] == "TERMINATED"]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def _start_driver(tmp_path: Path, name: str, search: dict) -> tuple[Path, dict, subprocess.Popen]:
    """`raysemble sweep` of a tiny spec in its own session (the driver and the local Ray it starts
    form one group a test can signal by its id); -> (spec path, env, driver)."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(name, search=search)))
    env = _env(tmp_path)
    driver = subprocess.Popen([EXE, "sweep", str(path)], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "driver.log", "w"), start_new_session=True)
    return path, env, driver


def test_killed_driver_is_resumed_without_rerunning_finished_trials(tmp_path):
    path, env, driver = _start_driver(tmp_path, "resumable", {
        "algorithm": "bayesian", "num_trials": 4, "max_concurrent": 1,
        "space": {"lr": {"loguniform": [0.002, 0.02]}}, "fixed": {"epochs": 25, "hidden": 32}})
    trials_file = tmp_path / "home" / "sweeps" / "resumable" / "trials.json"
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(_finished(trials_file)) < 1 and driver.poll() is None:
            time.sleep(0.3)
        finished_before = _finished(trials_file)
        assert finished_before and driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    time.sleep(2)
    with subprocess.Popen([EXE, "resume", "resumable", "--json"], env=env, stdout=subprocess.PIPE,
                          stderr=open(tmp_path / "resume.log", "w"), text=True, start_new_session=True) as proc:
        try:
            out, _ = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, (tmp_path / "resume.log").read_text()[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    # the progress line, as a non-terminal sees it: one line per change, the last one complete
    assert "trials 4/4 done · " in (tmp_path / "resume.log").read_text()
    assert result["state"] == "SUCCEEDED"
    assert len(result["trials"]) == 4 and all(t["status"] == "TERMINATED" for t in result["trials"])
    lines = (tmp_path / "home" / "sweeps" / "resumable" / "attempts.jsonl").read_text().splitlines()
    attempts = Counter(json.loads(line)["trial_id"] for line in lines if json.loads(line)["kind"] == "train")
    for trial_id in finished_before:
        assert attempts[trial_id] == 1, attempts


def test_sigterm_stops_the_sweep_and_resume_finishes_the_cut_trial_in_full(tmp_path):
    """SIGTERM (how Ray stops a cancelled job) ends the sweep STOPPED with exit 143; the trial it cut
    short is not recorded as finished, so `resume` trains it to its full epochs."""
    path, env, driver = _start_driver(tmp_path, "sigterm", {
        "algorithm": "random", "num_trials": 1, "max_concurrent": 1,
        "space": {"lr": {"loguniform": [0.002, 0.02]}}, "fixed": {"epochs": 60, "hidden": 16}})
    directory = tmp_path / "home" / "sweeps" / "sigterm"
    try:
        deadline = time.time() + 300
        experiment = tmp_path / "home" / "tune" / "sigterm"
        # the trial has trained a few of its 60 epochs once Tune holds a checkpoint of it
        while time.time() < deadline and driver.poll() is None and not list(experiment.glob("*/checkpoint_*")):
            time.sleep(0.3)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=120) == 143, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert json.loads((directory / "sweep.json").read_text())["state"] == "STOPPED"
    assert _finished(directory / "trials.json") == []  # cut short: not finished
    assert "stopped: 0 trials recorded; continue with `raysemble resume sigterm`" in \
        (tmp_path / "driver.log").read_text()
    proc = subprocess.run([EXE, "resume", "sigterm", "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["state"] == "SUCCEEDED" and [t["epochs"] for t in result["trials"]] == [60]


def _prepared(tmp_path: Path, monkeypatch, spec: dict) -> tuple[Path, dict]:
    """A sweep directory without running trials under tmp_path's home: prepare only (validate + split +
    MLflow parent), in this process; -> (spec path, the env a CLI call gets)."""
    from service.spec import load_spec
    from service.sweep import prepare

    env = _env(tmp_path)
    for key in ("RAYSEMBLE_HOME", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(key, env[key])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    prepare(load_spec(path))
    return path, env


def test_resume_refuses_a_changed_spec_and_unknown_names(tmp_path, monkeypatch):
    spec = tiny_spec("fixed-spec")
    path, env = _prepared(tmp_path, monkeypatch, spec)
    spec["search"]["space"]["lr"] = {"loguniform": [0.001, 0.5]}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(spec))
    proc = subprocess.run([EXE, "resume", "fixed-spec", "--spec", str(changed)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "stored spec must be unchanged" in proc.stderr and "search.space.lr.loguniform" in proc.stderr
    # a name with no sweep is refused before anything a sweep needs is imported (torch, Ray, MLflow)
    probe = ("import sys; from service.cli import main; sys.argv = ['raysemble', 'resume', 'no-such-sweep']\n"
             "try:\n    main()\nexcept SystemExit as e:\n"
             "    print(e.code, sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split("\n")[0] == "2 []", (proc.stdout, proc.stderr[-2000:])
    assert "NAME: a sweep under" in proc.stderr and "but got 'no-such-sweep' (known: ['fixed-spec'])" in proc.stderr
    proc = subprocess.run([EXE, "sweep", str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    directory = tmp_path / "home" / "sweeps" / "fixed-spec"
    assert stat.S_IMODE((directory / "spec.json").stat().st_mode) == 0o600  # it may hold serve.token


def test_resume_and_replace_refuse_while_another_driver_holds_the_sweep(tmp_path, monkeypatch):
    path, env = _prepared(tmp_path, monkeypatch, tiny_spec("held"))
    directory = tmp_path / "home" / "sweeps" / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        who = f"is held by pid {holder.pid} on host {socket.gethostname()} since "
        for args in (["resume", "held"], ["sweep", str(path), "--replace"], ["run", str(path), "--replace"]):
            proc = subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 2 and who in proc.stderr and "(raysemble sweep)" in proc.stderr, \
                (args, proc.stderr[-2000:])
        assert (directory / "spec.json").is_file()  # --replace removed nothing
    finally:
        holder.kill()
        holder.wait(timeout=30)
