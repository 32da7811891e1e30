"""The README's first command as a newcomer runs it: what `make demo` runs (read from the Makefile),
through the installed console script, in a fresh working directory with no RAYSEMBLE_HOME or
MLflow variables; queried from another process; stopped with Ctrl-C; then
`raysemble serve models:/…` from a fresh process in the same directory."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from serving.cluster import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SERVING_AT = re.compile(r"serving at (http://\S+)")
STOP_WITHIN_S = 10.0


def demo_command() -> list[str]:
    """The recipe of the Makefile's demo target, with the venv's console script."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("demo:"))
    args = shlex.split(lines[start + 1].strip())
    return [a.replace("$(VENV)/bin/", f"{VENV_BIN}/") for a in args]


class Newcomer:
    """A fresh working directory with a copy of examples/, and a user's environment: no raysemble,
    MLflow or Ray settings; a HOME of its own (Ray writes ~/.ray/auth_token there) and a Ray temp
    dir of its own, by which every process this user starts can be found again."""

    def __init__(self, root: Path):
        self.work, self.logs = root / "work", root / "logs"
        self.logs.mkdir()
        shutil.copytree(ROOT / "examples", self.work / "examples")
        self.ray_tmp = tempfile.mkdtemp(prefix="rsn-", dir="/tmp")  # short: Ray puts unix sockets here
        drop = ("RAYSEMBLE_", "MLFLOW_", "RAY_ADDRESS", "RAY_AUTH", "TUNE_")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        self.env.update(HOME=str(root / "user-home"), RAY_TMPDIR=self.ray_tmp)

    def start(self, args: list[str], name: str) -> "Running":
        log = self.logs / f"{name}.log"
        # its own session: a terminal's Ctrl-C reaches the whole foreground group, as killpg does here
        proc = subprocess.Popen(args, cwd=self.work, env=self.env, stdout=open(log, "w"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        return Running(self, proc, log)

    def processes(self) -> list[psutil.Process]:
        """Every live process started with this user's Ray temp dir (Ray's, Serve's, HAProxy)."""
        found = []
        for p in psutil.process_iter():
            try:
                if p.environ().get("RAY_TMPDIR") == self.ray_tmp and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def cleanup(self) -> None:
        for p in self.processes():
            p.kill()
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


class Running:
    def __init__(self, user: Newcomer, proc: subprocess.Popen, log: Path):
        self.user, self.proc, self.log = user, proc, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def url(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = SERVING_AT.search(self.output())
            if found:
                return found.group(1)
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before serving:\n{self.output()[-4000:]}"
            time.sleep(1)
        raise AssertionError(f"no 'serving at' line within {timeout_s} s:\n{self.output()[-4000:]}")

    def interrupt(self) -> float:
        """Ctrl-C; returns the seconds until the command exited, after checking nothing is left behind."""
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        took = time.monotonic() - started
        assert code == 0, f"exit {code} after Ctrl-C:\n{self.output()[-3000:]}"
        # processes already told to exit may take a moment (more on a loaded 2-core machine)
        deadline = time.monotonic() + 15
        while self.user.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [(p.pid, p.name()) for p in self.user.processes()]
        assert left == [], f"processes left behind after Ctrl-C: {left}"
        return took


def ask(url: str, rows: np.ndarray, model: str = "ensemble") -> dict:
    """A prediction request from another process, as an application would send it."""
    client = ("import httpx, json, sys; r = httpx.post(sys.argv[1], json={'instances': json.loads(sys.argv[2])}, "
              "timeout=60); print(json.dumps({'status': r.status_code, 'body': r.json()}))")
    done = subprocess.run([sys.executable, "-c", client, f"{url}/v1/models/{model}/predict",
                           json.dumps(rows.tolist())], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    reply = json.loads(done.stdout)
    assert reply["status"] == 200, reply
    return reply["body"]


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    user = Newcomer(tmp_path_factory.mktemp("newcomer"))
    try:
        yield user
    finally:
        user.cleanup()


def held_out(user: Newcomer, name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    split = np.load(user.work / ".raysemble" / "sweeps" / name / "split.npz")
    x, y = load_digits(return_X_y=True)
    return x[split["test_idx"]].astype(np.float32), y[split["test_idx"]]


def check_answers(url: str, user: Newcomer, name: str, model: str = "ensemble") -> None:
    x, y = held_out(user, name)
    one = ask(url, x[:1], model)  # one real row, as the README's curl line sends it
    batch = ask(url, x, model)
    assert one["predictions"][0] == batch["predictions"][0]
    accuracy = float(np.mean(np.asarray(batch["predictions"]) == y))
    assert accuracy >= 0.95, accuracy


def test_make_demo_serves_then_serve_from_a_fresh_process(newcomer):
    command = demo_command()
    assert Path(command[0]).name == "raysemble" and command[1] == "run", command
    spec = yaml.safe_load((newcomer.work / command[2]).read_text())
    name = spec["name"]

    running = newcomer.start(command + ["--port", str(free_port())], "demo")
    url = running.url(timeout_s=900)
    check_answers(url, newcomer, name)
    assert running.interrupt() <= STOP_WITHIN_S
    # state lives under the default home only: no ./mlflow.db or ./mlruns beside it
    assert sorted(p.name for p in newcomer.work.iterdir()) == [".raysemble", "examples"]
    registered = json.loads((newcomer.work / ".raysemble" / "sweeps" / name / "postsweep" /
                             "state.json").read_text())["registered"]
    assert registered["ensemble"]["uri"] == f"models:/{name}-ensemble/1"
    # a second `make demo` in the same place runs again: test_a_second_run_with_replace_... (a tiny spec,
    # the same console script and --replace; the demo's own sweep would cost the suite 100 s more)

    # the README's Serving section: a registered version, from a new shell in the same directory
    serving = newcomer.start([str(VENV_BIN / "raysemble"), "serve", f"models:/{name}-ensemble/1",
                              "--student", f"models:/{name}-student/1", "--port", str(free_port())], "serve")
    url = serving.url(timeout_s=300)
    check_answers(url, newcomer, name)
    check_answers(url, newcomer, name, model="student")
    assert serving.interrupt() <= STOP_WITHIN_S
    assert sorted(p.name for p in newcomer.work.iterdir()) == [".raysemble", "examples"]


def test_a_missing_registered_model_names_the_store_and_the_stores_under_home(newcomer, tmp_path):
    """Looked up in the wrong store, the error says where it looked and which stores exist."""
    from mlflow import MlflowClient

    other, home = tmp_path / "elsewhere", tmp_path / "home"
    other.mkdir()
    home.mkdir()
    MlflowClient(f"sqlite:///{home}/mlflow.db").search_experiments()  # a real store under the home
    env = {**newcomer.env, "RAYSEMBLE_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{other}/mlflow.db"}
    done = subprocess.run([str(VENV_BIN / "raysemble"), "serve", "models:/digits-cnn-ensemble/1"], cwd=other,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"not found in the registry at sqlite:///{other}/mlflow.db" in done.stderr
    assert f"MLflow stores under RAYSEMBLE_HOME={home}: ['sqlite:///{home}/mlflow.db']" in done.stderr


def test_raysemble_home_keeps_everything_under_it_and_a_second_run_replaces_the_first(newcomer, tmp_path):
    """RAYSEMBLE_HOME=/x: the sweep, Tune, MLflow (store, artifacts, registry) all land under /x;
    the working directory stays empty, and a later `serve` from elsewhere finds the registered model
    through the same home. Run a second time with --replace (as `make demo` runs), the sweep runs again
    from scratch and registers the next version."""
    from tests.conftest import tiny_spec

    home, work, elsewhere = tmp_path / "x", tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "spec.yaml").write_text(yaml.safe_dump(tiny_spec("homed", distill={"enabled": False},
                                                             ensemble={"top_k": 2})))
    env = {**newcomer.env, "RAYSEMBLE_HOME": str(home)}
    spec_path = str(work / "spec.yaml")
    parents = []
    for attempt in (1, 2):
        done = subprocess.run([str(VENV_BIN / "raysemble"), "run", spec_path, "--replace", "--no-serve", "--json"],
                              cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert sorted(p.name for p in work.iterdir()) == ["spec.yaml"]
        assert {"sweeps", "tune", "mlflow.db", "mlartifacts"} <= {p.name for p in home.iterdir()}
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["registered"]["ensemble"]["uri"] == f"models:/homed-ensemble/{attempt}"
        meta = json.loads((home / "sweeps" / "homed" / "sweep.json").read_text())
        assert meta["mlflow_uri"] == f"sqlite:///{home}/mlflow.db" and meta["storage_path"] == str(home / "tune")
        trials = json.loads((home / "sweeps" / "homed" / "trials.json").read_text())
        assert len(trials) == 2 and all(t["status"] == "TERMINATED" for t in trials), trials
        parents.append(meta["mlflow_run_id"])
    assert parents[0] != parents[1]  # the second run is a new sweep, not the first one read back
    # the registry is the home's: a fresh process elsewhere finds the version through RAYSEMBLE_HOME alone
    probe = ("from serving.loader import parse_source; import sys; "
             "print(parse_source(sys.argv[1]).store.registry_uri)")
    found = subprocess.run([sys.executable, "-c", probe, "models:/homed-ensemble/2"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr[-2000:]
    assert found.stdout.strip() == f"sqlite:///{home}/mlflow.db"
    assert list(elsewhere.iterdir()) == []


TINY = {"mlp.epochs": 10, "mlp.hidden": 16, "hist_gb.max_iter": 40, "lightgbm.n_estimators": 40,
        "xgboost.n_estimators": 40}  # per family, where the sweep has it


def trimmed(spec: dict, families: tuple[str, ...] = ("hist_gb", "logreg", "mlp")) -> None:
    """An example's spec at the suite's size: 3 folds, one tiny trial per family, fold members, a short student."""
    spec["cv"]["folds"] = 3
    spec["search"].update(algorithm="grid", max_concurrent=2, space={"family": {"grid": list(families)}},
                          fixed={k: v for k, v in TINY.items() if k.split(".")[0] in families})
    spec["ensemble"].update(members="folds", top_k=3)
    spec["distill"].update(epochs=20)


@contextmanager
def served_example(root: Path, example: str, edit=trimmed):
    """`raysemble run` of examples/<example> as a newcomer types it, trimmed by edit(spec) for the suite's
    time, until it serves: yields (user, running, url, sweep name); stopped with Ctrl-C after."""
    user = Newcomer(root)
    try:
        spec = yaml.safe_load((user.work / "examples" / example).read_text())
        edit(spec)
        path = user.work / f"small-{example}"
        path.write_text(yaml.safe_dump(spec))
        running = user.start([str(VENV_BIN / "raysemble"), "run", str(path), "--port", str(free_port())], "run")
        url = running.url(timeout_s=900)
        yield user, running, url, spec["name"]
        assert running.interrupt() <= 15
    finally:
        user.cleanup()
