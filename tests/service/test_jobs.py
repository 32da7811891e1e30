"""`raysemble submit/list/status/logs/cancel/deploy` against a real local two-node Ray cluster
(head + one worker, 1 CPU each, token authentication on), through the installed CLI."""
from __future__ import annotations

import json
import socket
import stat
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from service import cluster as jobs  # the Ray Jobs client (a fixture is named cluster)
from service.cluster.jobs import ID_PATTERN
from service.cluster.package import PACKAGES, SPEC_FILE, runtime_env
from tests.conftest import tiny_spec
from tests.service.jobhelpers import attempts_of, cli, last_json, started, wait_for, write_spec
from tests.service.raycluster import LocalCluster, free_port



@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with started(LocalCluster(num_cpus=1), tmp_path_factory.mktemp("jobs"), workers=1) as c:
        c.worker = c.workers[0]
        yield c


def job_ids(cluster) -> list[str]:
    return sorted(j.submission_id for j in jobs.connect(cluster.address, cluster.token).list_jobs())


def test_bad_input_exits_2_and_launches_nothing(cluster):
    before = job_ids(cluster)
    bad = write_spec(cluster, "bad", cv={"folds": 1})
    proc = cli(cluster, "submit", str(bad))
    assert proc.returncode == 2 and "cv.folds" in proc.stderr
    # every path form is covered in test_safety / test_api; here: the CLI applies the same checks
    spec = write_spec(cluster, "paths", data={"source": "../elsewhere/x.csv"})
    proc = cli(cluster, "submit", str(spec))
    assert proc.returncode == 2 and "data.source" in proc.stderr and ".." in proc.stderr
    for command in ("status", "cancel"):
        proc = cli(cluster, command, "no-such-sweep-123")
        assert proc.returncode == 2 and "ID: a sweep id" in proc.stderr, proc.stderr
    good = write_spec(cluster, "unreached")
    with socket.socket() as held:  # bound, never listening: refused, and no one else can take the port
        held.bind(("127.0.0.1", 0))
        proc = cli(cluster, "submit", str(good), "--address", f"http://127.0.0.1:{held.getsockname()[1]}")
    assert proc.returncode == 2 and "nothing answered" in proc.stderr
    proc = cli(cluster, "submit", str(good), RAY_AUTH_TOKEN="wrong-token")
    assert proc.returncode == 2 and "token" in proc.stderr.lower()
    assert job_ids(cluster) == before


@pytest.fixture(scope="module")
def pipeline(cluster):
    """The whole pipeline (raysemble run --no-serve) submitted with the CLI and followed to the end, on a
    raw table as users bring them (words, missing values, a word target), two families."""
    from serving.demo import people

    people().to_csv(cluster.tmp / "people.csv", index=False)
    spec = write_spec(cluster, "cli-run", data={"source": "people.csv", "target": "label"}, ensemble={"top_k": 2},
                      distill={"enabled": False},
                      search={"algorithm": "grid", "max_concurrent": 2, "space": {"family": {"grid": ["mlp", "hist_gb"]}},
                              "fixed": {"mlp.epochs": 3, "mlp.hidden": 16, "hist_gb.max_iter": 20}},
                      serve={"port": free_port(), "max_batch_size": 8, "max_ongoing_requests": 16})
    proc = cli(cluster, "submit", str(spec), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    submitted = last_json(proc)
    assert submitted["id"].startswith("cli-run-") and submitted["command"] == "run"
    follow = cli(cluster, "logs", submitted["id"], "--follow", timeout=600)
    return submitted, follow, yaml.safe_load(spec.read_text())


def test_cli_submit_follows_to_success_on_a_two_node_cluster(cluster, pipeline):
    submitted, follow, _ = pipeline
    assert follow.returncode == 0, (follow.stdout[-3000:], follow.stderr[-2000:])
    assert "SUCCEEDED" in follow.stderr
    status = last_json(cli(cluster, "status", submitted["id"], "--json"))
    assert status["state"] == "SUCCEEDED" and status["name"] == "cli-run"
    assert status["trials_done"] == status["trials_total"] == 2
    assert 0 < status["best"]["value"] <= 1 and status["best"]["metric"] == "accuracy"
    assert status["mlflow_run_id"] and status["mlflow_uri"].startswith("sqlite:///")
    if submitted["command"] == "run":
        assert "ensemble" in status["registered"]
    # which node takes a trial is Ray's choice (a trial that ends early frees its node, and Tune may
    # reuse its actor for the next), so: every training attempt ran on, and recorded, a node of this
    # cluster; test_a_worker_node_lost_mid_sweep_costs_only_its_trials covers a sweep that must use the other node
    train = [a for a in attempts_of(cluster, "cli-run") if a["kind"] == "train"]
    assert len({a["trial_id"] for a in train}) == 2
    assert {a["node_id"] for a in train} <= set(cluster.node_ids())
    listed = last_json(cli(cluster, "list", "--json"))
    assert submitted["id"] in [s["id"] for s in listed]
    text = cli(cluster, "status", submitted["id"])
    assert text.returncode == 0 and "2/2" in text.stdout and status["mlflow_run_id"] in text.stdout
    assert "trials 2/2 done" in cli(cluster, "logs", submitted["id"]).stdout
    # the same name again is refused before anything is launched
    before = job_ids(cluster)
    again = cli(cluster, "submit", str(cluster.tmp / "cli-run.yaml"))
    assert again.returncode == 2 and "choose another name" in again.stderr and submitted["id"] in again.stderr
    assert job_ids(cluster) == before


def test_cancel_stops_a_running_sweep(cluster):
    spec = write_spec(cluster, "to-cancel", search={"algorithm": "random", "num_trials": 4, "max_concurrent": 2,
                                                    "space": {"lr": {"loguniform": [0.002, 0.01]}},
                                                    "fixed": {"epochs": 200, "hidden": 16}})
    sweep_id = last_json(cli(cluster, "submit", str(spec), "--json", RAYSEMBLE_JOB_COMMAND="sweep"))["id"]
    wait_for(lambda: attempts_of(cluster, "to-cancel"), 180, "a trial to start")
    proc = cli(cluster, "cancel", sweep_id, "--json")
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc) == {"id": sweep_id, "job": sweep_id, "stopped": True, "state": "STOPPED"}
    status = last_json(cli(cluster, "status", sweep_id, "--json"))
    assert status["state"] == "STOPPED" and status["trials_done"] < 4
    # the sweep itself ends STOPPED too (its driver records it on SIGTERM; status settles it otherwise)
    assert status["sweep_state"] == "STOPPED"
    on_disk = json.loads((cluster.tmp / "home" / "sweeps" / "to-cancel" / "sweep.json").read_text())
    assert on_disk["state"] == "STOPPED" and on_disk["finished"]
    again = last_json(cli(cluster, "cancel", sweep_id, "--json"))
    assert again["stopped"] is False and again["state"] == "STOPPED"


def test_a_cancelled_sweep_resumes_on_the_cluster_without_retraining_finished_trials(cluster):
    spec = write_spec(cluster, "to-resume", search={"algorithm": "random", "num_trials": 2, "max_concurrent": 1,
                                                    "checkpoint_every": 1, "space": {"lr": {"loguniform": [0.002, 0.01]}},
                                                    "fixed": {"epochs": 40, "hidden": 16}})
    sweep_id = last_json(cli(cluster, "submit", str(spec), "--json", RAYSEMBLE_JOB_COMMAND="sweep"))["id"]
    client = jobs.connect(cluster.address, cluster.token)
    wait_for(lambda: (jobs.status(client, sweep_id)["trials_done"] or 0) >= 1, 240, "a first trial to finish")
    assert last_json(cli(cluster, "cancel", sweep_id, "--json"))["state"] == "STOPPED"
    finished = {t["trial_id"] for t in jobs.sweep_trials(client, sweep_id)["trials"] if t["status"] == "TERMINATED"}
    assert finished

    proc = cli(cluster, "resume", "to-resume", "--address", cluster.address, "--json")  # by name
    assert proc.returncode == 0, proc.stderr
    resumed = last_json(proc)
    assert resumed == {"id": sweep_id, "job": f"{sweep_id}-resume1", "name": "to-resume", "command": "sweep"}
    assert jobs.wait(client, sweep_id, timeout_s=400, poll_s=1) == "SUCCEEDED", cli(cluster, "logs", sweep_id).stdout[-3000:]
    status = last_json(cli(cluster, "status", sweep_id, "--json"))
    assert status["trials_done"] == 2 and status["jobs"] == [sweep_id, f"{sweep_id}-resume1"], status
    trained = [a["trial_id"] for a in attempts_of(cluster, "to-resume") if a["kind"] == "train"]
    assert all(trained.count(t) == 1 for t in finished), trained  # finished before the cancel: never again
    again = cli(cluster, "resume", sweep_id, "--address", cluster.address)
    assert again.returncode == 2 and "a stopped or failed sweep expected for resume" in again.stderr


def test_simultaneous_submissions_of_one_name_make_exactly_one_job(cluster):
    """Four callers submit one name at once: Ray's job table takes one, the others get Conflict (409)."""
    from service.spec import SweepSpec

    spec = SweepSpec.model_validate(tiny_spec("raced", search={"algorithm": "random", "num_trials": 1,
                                                               "space": {"lr": {"loguniform": [0.002, 0.01]}},
                                                               "fixed": {"epochs": 1, "hidden": 8}}))
    before = job_ids(cluster)
    start, won, lost, other = threading.Barrier(4), [], [], []

    def submit():
        client = jobs.connect(cluster.address, cluster.token)
        start.wait()  # all four past connect: list, package and submit at the same moment
        try:
            won.append(jobs.submit(client, spec, home=str(cluster.tmp / "home"),
                                   mlflow_uri=f"sqlite:///{cluster.tmp}/mlflow.db", command="sweep"))
        except jobs.Conflict as e:
            lost.append(str(e))
        except Exception as e:  # anything else is a failure of this test, reported below
            other.append(repr(e))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert other == [] and len(won) == 1 and len(lost) == 3, (won, lost, other)
    sweep_id = won[0]["id"]
    assert sweep_id.startswith("raced-") and ID_PATTERN.match(sweep_id)
    assert all(sweep_id in message and "choose another name" in message for message in lost), lost
    assert sorted(set(job_ids(cluster)) - set(before)) == [sweep_id]
    client = jobs.connect(cluster.address, cluster.token)
    jobs.cancel(client, sweep_id)  # free the CPUs for the tests after this one
    assert jobs.wait(client, sweep_id, timeout_s=120) in jobs.TERMINAL


def test_a_worker_node_lost_mid_sweep_costs_only_its_trials(cluster):
    """Kill the worker node while a trial trains there: Tune retries that trial on the head from its
    last checkpoint and the sweep still succeeds."""
    head_id, worker_id = cluster.node_ids()
    spec = write_spec(cluster, "node-loss", search={"algorithm": "random", "num_trials": 2, "max_concurrent": 2,
                                                    "max_failures": 2,
                                                    "space": {"lr": {"loguniform": [0.002, 0.01]}},
                                                    "fixed": {"epochs": 30, "hidden": 16, "batch_size": 16}})
    sweep_id = last_json(cli(cluster, "submit", str(spec), "--json", RAYSEMBLE_JOB_COMMAND="sweep"))["id"]
    on_worker = wait_for(lambda: [a for a in attempts_of(cluster, "node-loss") if a["node_id"] == worker_id],
                          180, "a trial to start on the worker node")
    cluster.kill(cluster.worker)
    client = jobs.connect(cluster.address, cluster.token)
    assert jobs.wait(client, sweep_id, timeout_s=400, poll_s=2) == "SUCCEEDED", cli(cluster, "logs", sweep_id).stdout[-3000:]
    status = jobs.status(client, sweep_id)
    assert status["trials_done"] == 2 and status["trials_failed"] == 0
    lost = on_worker[0]["trial_id"]
    tries = [a for a in attempts_of(cluster, "node-loss") if a["trial_id"] == lost]
    assert len(tries) >= 2 and tries[0]["node_id"] == worker_id and tries[-1]["node_id"] == head_id


def test_sweep_ids_are_one_per_name_and_the_shipped_spec_is_owner_only(tmp_path):
    from service.spec import SweepSpec

    assert jobs.new_id("a") == jobs.new_id("a") != jobs.new_id("b")
    assert jobs.new_id("a").startswith("a-") and ID_PATTERN.match(jobs.new_id("x" * 64))
    spec = SweepSpec.model_validate(tiny_spec("shipped"))
    with runtime_env(None, None, spec) as env:
        shipped = Path(env["working_dir"]) / SPEC_FILE
        assert stat.S_IMODE(shipped.stat().st_mode) == 0o600  # it may hold serve.token
        assert SweepSpec.model_validate_json(shipped.read_text()) == spec
        assert sorted(p.name for p in Path(env["working_dir"]).iterdir()) == sorted([*PACKAGES, SPEC_FILE])


def test_no_address_anywhere_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(jobs.Unreachable, match="--address"):
        jobs.connect(None)
    with pytest.raises(jobs.UnknownSweep, match="ID: a sweep id"):
        jobs.check_id("../../etc")


def test_deploy_serves_the_registered_models(cluster, pipeline):
    # last: the Serve replica it leaves holds half a CPU, which the sweeps above need whole
    submitted, _, spec = pipeline
    if submitted["command"] != "run":
        proc = cli(cluster, "deploy", submitted["id"])
        assert proc.returncode == 2 and "registered" in proc.stderr
        pytest.skip("this checkout's CLI has no `run`: nothing registered to deploy")
    proc = cli(cluster, "deploy", submitted["id"], "--json", timeout=400)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    result = last_json(proc)
    assert result["state"] == "SUCCEEDED" and result["url"].endswith(str(spec["serve"]["port"]))
    records = [{"age": 51.0, "city": "paris", "member": True}, {"city": "atlantis"}, {}]
    r = httpx.post(f"{result['url']}/v1/models/ensemble/predict", json={"instances": records}, timeout=60)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 3 and set(r.json()["predictions"]) <= {"browses", "buys", "leaves"}
    status = last_json(cli(cluster, "status", submitted["id"], "--json"))
    assert [d["id"] for d in status["deployments"]] == [result["id"]]
