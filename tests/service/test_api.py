"""The REST control plane (`raysemble api`, a real uvicorn process) in front of a real local two-node
Ray cluster with token authentication; real HTTP requests with httpx."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from service import cluster as jobs  # the Ray Jobs client (a fixture is named cluster)
from tests.conftest import tiny_spec
from tests.service.raycluster import LocalCluster, free_port
from tests.service.roots import make_roots

RAYSEMBLE = str(Path(sys.executable).parent / "raysemble")
TOKEN = "api-test-token-0123456789"


class Api:
    def __init__(self, cluster: LocalCluster, tmp: Path):
        self.cluster, self.tmp = cluster, tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = self.cluster.client_env(RAYSEMBLE_API_TOKEN=TOKEN, RAYSEMBLE_JOB_COMMAND="sweep")
        log = open(self.tmp / "api.log", "ab")
        self.proc = subprocess.Popen(
            [RAYSEMBLE, "api", "--host", "127.0.0.1", "--port", str(self.port), "--address", self.cluster.address,
             "--data-root", str(self.tmp / "data"), "--home", str(self.tmp / "home"), "--max-body-bytes", "65536"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.tmp)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.tmp / "api.log").read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise TimeoutError("the API did not come up")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def request(self, method: str, path: str, token: str | None = TOKEN, **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, self.url + path, headers=headers, timeout=120, **kw)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    make_roots(tmp, rows=90)
    cluster = LocalCluster(num_cpus=1)
    server = Api(cluster, tmp)
    try:
        cluster.start_head()
        cluster.add_worker()
        server.start()
        yield server
    finally:
        server.stop()
        cluster.shutdown()
    assert cluster.leftovers() == []


def job_ids(api: Api) -> list[str]:
    return sorted(j.submission_id for j in jobs.connect(api.cluster.address, api.cluster.token).list_jobs())


def wait_state(api: Api, sweep_id: str, states: tuple[str, ...], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = api.request("GET", f"/sweeps/{sweep_id}").json()
        if body["state"] in states or time.monotonic() > deadline:
            return body
        time.sleep(1.0)


def test_health_needs_no_token_everything_else_does(api):
    assert api.request("GET", "/healthz", token=None).json() == {"ok": True}
    routes = [("GET", "/sweeps"), ("POST", "/sweeps"), ("GET", "/sweeps/x-1"), ("GET", "/sweeps/x-1/trials"),
              ("DELETE", "/sweeps/x-1"), ("POST", "/sweeps/x-1/deploy")]
    before = job_ids(api)
    for method, path in routes:
        for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
            kw = {"json": tiny_spec("sneaky")} if method == "POST" else {}
            r = api.request(method, path, token=token, **kw)
            assert r.status_code == 401, (method, path, token, r.text)
            assert r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["error"]
    for header in (f"Basic {TOKEN}", "Bearer", TOKEN, f"Bearer  {TOKEN}x"):
        r = httpx.get(f"{api.url}/sweeps", headers={"Authorization": header})
        assert r.status_code == 401, header
    assert job_ids(api) == before


def test_invalid_specs_are_422_with_field_paths_and_launch_nothing(api):
    before = job_ids(api)
    r = api.request("POST", "/sweeps", json=tiny_spec("bad", cv={"folds": 1}, model={"family": "mlp", "bogus": 1}))
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert any(p.startswith("cv.folds:") for p in problems) and any(p.startswith("model.bogus:") for p in problems)
    cases = {
        "runtime": tiny_spec("x", runtime_env={"pip": ["evil"]}),
        "family": tiny_spec("x", model={"family": "os.system"}),
        "mlflow": tiny_spec("x", tracking={"mlflow_uri": "sqlite:////tmp/elsewhere.db"}),
        "storage": tiny_spec("x", tracking={"storage_path": "/etc"}),
        "name": tiny_spec("../../etc"),
    }
    for what, spec in cases.items():
        r = api.request("POST", "/sweeps", json=spec)
        assert r.status_code == 422 and r.json()["problems"], (what, r.text)
    assert job_ids(api) == before


@pytest.mark.parametrize("source", [
    "../outside/set.npz", "{tmp}/outside/set.npz", "file://{tmp}/outside/set.npz", "%2e%2e/outside/set.npz",
    "..%2foutside%2fset.npz", "escape.npz", "outdir/set.npz", "https://example.com/set.npz", "~/set.npz",
])
def test_each_rejected_path_form_is_422(api, source):
    before = job_ids(api)
    spec = tiny_spec("paths", data={"source": source.format(tmp=api.tmp), "test_fraction": 0.2})
    r = api.request("POST", "/sweeps", json=spec)
    assert r.status_code == 422, r.text
    assert [p.split(":")[0] for p in r.json()["problems"]] == ["data.source"]
    assert job_ids(api) == before


def test_bad_bodies_are_4xx_never_5xx(api):
    before = job_ids(api)
    cases = [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"name: [unclosed", "headers": {"content-type": "application/yaml"}}, 400),
        ({"content": b"a: &a [1]\nb: *a\n", "headers": {"content-type": "text/yaml"}}, 400),
        ({"content": b"[" * 3000 + b"]" * 3000, "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"<spec/>", "headers": {"content-type": "application/xml"}}, 415),
        ({"content": b"x" * 70000, "headers": {"content-type": "application/json"}}, 413),
        ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 422),
        ({"content": b"null", "headers": {"content-type": "application/json"}}, 422),
    ]
    for kw, status in cases:
        r = api.request("POST", "/sweeps", **kw)
        assert r.status_code == status, (kw["content"][:40], r.status_code, r.text[:300])
        assert "error" in r.json()
    for path in ("/sweeps/no-such-sweep", "/sweeps/no-such-sweep/trials", "/sweeps/%2e%2e%2fetc"):
        r = api.request("GET", path)
        assert r.status_code == 404, (path, r.text)
    assert api.request("DELETE", "/sweeps/no-such-sweep").status_code == 404
    assert api.request("POST", "/sweeps/no-such-sweep/deploy").status_code == 404
    assert job_ids(api) == before


@pytest.fixture(scope="module")
def yaml_sweep(api):
    spec = tiny_spec("api-yaml", search={"algorithm": "random", "num_trials": 2, "max_concurrent": 2,
                                         "space": {"lr": {"loguniform": [0.002, 0.01]}},
                                         "fixed": {"epochs": 2, "hidden": 16}})
    r = api.request("POST", "/sweeps", content=yaml.safe_dump(spec).encode(),
                    headers={"content-type": "application/yaml"})
    assert r.status_code == 202, r.text
    sweep_id = r.json()["id"]
    assert r.headers["location"] == f"/sweeps/{sweep_id}" and sweep_id.startswith("api-yaml-")
    return sweep_id, wait_state(api, sweep_id, jobs.TERMINAL, 400)


def test_yaml_sweep_runs_to_success_on_a_two_node_cluster(api, yaml_sweep):
    sweep_id, status = yaml_sweep
    assert status["state"] == "SUCCEEDED", json.dumps(status)[:2000]
    assert status["trials_done"] == status["trials_total"] == 2 and status["best"]["value"] > 0
    assert status["mlflow_run_id"] and status["mlflow_uri"] == f"sqlite:///{api.tmp / 'home'}/mlflow.db"
    trials = api.request("GET", f"/sweeps/{sweep_id}/trials").json()
    assert trials["readable"] and len(trials["trials"]) == 2
    assert all(t["status"] == "TERMINATED" and len(t["folds"]) == 3 for t in trials["trials"])
    # placement is Ray's choice (Tune may reuse a finished trial's actor on the same node): each
    # trial recorded the cluster node it trained on
    assert all(t["node_ids"] and set(t["node_ids"]) <= set(api.cluster.node_ids()) for t in trials["trials"])
    # the server set where the sweep writes: its spec names the server's MLflow store
    stored = json.loads((api.tmp / "home" / "sweeps" / "api-yaml" / "spec.json").read_text())
    assert stored["tracking"]["mlflow_uri"] == status["mlflow_uri"]
    # a name in use is a conflict, nothing launched
    before = job_ids(api)
    r = api.request("POST", "/sweeps", json=tiny_spec("api-yaml"))
    assert r.status_code == 409 and sweep_id in r.json()["error"]
    # no registered models (the API ran `sweep` only here): deploy is refused, nothing launched
    r = api.request("POST", f"/sweeps/{sweep_id}/deploy")
    assert r.status_code == 409 and "registered" in r.json()["error"]
    assert job_ids(api) == before


def test_a_file_inside_the_data_root_is_accepted_and_delete_cancels(api):
    spec = tiny_spec("api-json", data={"source": "set.npz", "test_fraction": 0.2},
                     search={"algorithm": "random", "num_trials": 4, "max_concurrent": 2,
                             "space": {"lr": {"loguniform": [0.002, 0.01]}}, "fixed": {"epochs": 300, "hidden": 8}})
    r = api.request("POST", "/sweeps", json=spec)
    assert r.status_code == 202, r.text
    sweep_id = r.json()["id"]
    stored_path = api.tmp / "home" / "sweeps" / "api-json" / "spec.json"
    deadline = time.monotonic() + 120
    while not stored_path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert api.request("GET", f"/sweeps/{sweep_id}").json()["state"] == "RUNNING"
    r = api.request("DELETE", f"/sweeps/{sweep_id}")
    assert r.status_code == 202 and r.json()["stopped"] is True
    assert wait_state(api, sweep_id, jobs.TERMINAL, 120)["state"] == "STOPPED"
    stored = json.loads(stored_path.read_text())
    assert stored["data"]["source"] == str((api.tmp / "data" / "set.npz").resolve())


def test_resume_of_a_finished_or_unknown_sweep_is_4xx(api, yaml_sweep):
    sweep_id, _ = yaml_sweep
    r = api.request("POST", f"/sweeps/{sweep_id}/resume")
    assert r.status_code == 409 and "a stopped or failed sweep expected for resume" in r.text, r.text
    r = api.request("POST", "/sweeps/no-such-sweep-000000/resume")
    assert r.status_code == 404, r.text


def test_a_restarted_api_still_lists_every_sweep(api, yaml_sweep):
    listed = {s["id"]: s for s in api.request("GET", "/sweeps").json()["sweeps"]}
    assert len(listed) == 2
    api.stop()
    api.start()
    again = {s["id"]: s for s in api.request("GET", "/sweeps").json()["sweeps"]}
    assert again.keys() == listed.keys()
    assert {k: (v["state"], v["trials_done"]) for k, v in again.items()} == \
        {k: (v["state"], v["trials_done"]) for k, v in listed.items()}
    sweep_id, _ = yaml_sweep
    assert api.request("GET", f"/sweeps/{sweep_id}").json()["state"] == "SUCCEEDED"


# ---- the spec trust boundary (issue 9): strict types, bounded values, a budget, no echo ----

def _post_yaml(api: Api, text: str) -> httpx.Response:
    return api.request("POST", "/sweeps", content=text.encode(), headers={"content-type": "application/yaml"})


def test_a_binary_tagged_source_outside_the_roots_reveals_nothing(api):
    import base64

    secret = api.tmp / "outside" / "secret.csv"
    secret.write_text("a,target\nTOPSECRET,1\nTOPSECRET,0\nTOPSECRET,1\n")
    before = job_ids(api)
    bodies = []
    for path in (secret, api.tmp / "outside" / "no-such-file.csv"):
        text = yaml.safe_dump(tiny_spec("binary")).replace(
            "source: sklearn:digits", f"source: !!binary {base64.b64encode(str(path).encode()).decode()}")
        r = _post_yaml(api, text)
        assert r.status_code == 422, r.text
        assert r.json()["problems"] == ["data.source: a plain JSON/YAML value expected, but got a "
                                        "!!binary-tagged value"]
        assert "TOPSECRET" not in r.text and "exist" not in r.text
        bodies.append(r.json())
    assert bodies[0] == bodies[1]  # the same answer whether or not the file exists
    assert job_ids(api) == before


def test_a_bad_fixed_value_and_a_huge_integer_are_422_not_500(api):
    before = job_ids(api)
    spec = tiny_spec("fixed")
    spec["search"]["fixed"]["cutmix_alpha"] = "abc"
    r = api.request("POST", "/sweeps", json=spec)
    assert r.status_code == 422, r.text
    assert [p.split(":")[0] for p in r.json()["problems"]] == ["search.fixed.cutmix_alpha"]
    for field, text in [("cv.folds", yaml.safe_dump(tiny_spec("hex")).replace("folds: 3", "folds: 0x" + "f" * 5000)),
                        ("search.num_trials", yaml.safe_dump(tiny_spec("dec")).replace("num_trials: 2",
                                                                                       "num_trials: " + "9" * 5000))]:
        r = _post_yaml(api, text)
        assert r.status_code == 422, r.text[:300]
        assert r.json()["problems"][0].startswith(f"{field}: an integer of at most 32 digits expected")
    r = api.request("POST", "/sweeps", content=b'{"name": "j", "cv": {"seed": 1' + b"0" * 5000 + b"}}",
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["problems"][0].startswith("cv.seed: an integer of at most")
    assert job_ids(api) == before


def test_the_operator_budget_and_serve_fields(api):
    """`raysemble api` with default limits: over-budget specs and service-opening serve fields are 422."""
    before = job_ids(api)
    over = tiny_spec("over", search={**tiny_spec("x")["search"], "num_trials": 1001, "max_concurrent": 9})
    r = api.request("POST", "/sweeps", json=over)
    assert r.status_code == 422
    assert r.json()["problems"][:2] == [
        "search.num_trials: at most 1000 trials (budget max_trials) expected, but the spec asks for 1001",
        "search: trials x folds x epochs <= 100000 (budget max_fold_epochs) must hold, but got 1001 x 3 x 3 = 9009"
        ] or "budget max_trials" in r.json()["problems"][0]
    assert any("budget max_concurrent" in p for p in r.json()["problems"])
    r = api.request("POST", "/sweeps", json=tiny_spec("open", serve={"host": "0.0.0.0", "token": "x"}))
    assert r.status_code == 422 and [p.split(":")[0] for p in r.json()["problems"]] == ["serve.host", "serve.token"]
    assert job_ids(api) == before


def test_the_openapi_document_describes_the_spec_body(api):
    doc = httpx.get(f"{api.url}/openapi.json", timeout=30).json()
    post = doc["paths"]["/sweeps"]["post"]
    assert set(post["requestBody"]["content"]) >= {"application/json", "application/yaml", "text/yaml"}
    assert {"202", "400", "401", "409", "413", "415", "422", "503"} <= set(post["responses"])
    assert "404" in doc["paths"]["/sweeps/{sweep_id}"]["get"]["responses"]
    assert doc["components"]["schemas"]["SweepSpec"]["required"] == ["name", "data"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


# ---- Schemathesis over real HTTP: an in-thread API on the same two-node cluster, a tiny budget ----

TINY = {"max_trials": 1, "max_fold_epochs": 4, "max_concurrent": 1, "max_parameters": 20_000, "max_failures": 0}


class ThreadedApi:
    """create_app in uvicorn on a thread of this process (a Budget needs no CLI option here)."""

    def __init__(self, settings):
        import threading

        import uvicorn

        from service.api import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the in-thread API did not start"
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def fuzz_api(api):
    from service.api import Settings
    from service.spec import Budget

    old = os.environ.get("RAY_AUTH_TOKEN")
    os.environ["RAY_AUTH_TOKEN"] = api.cluster.token  # what the in-thread API's jobs client sends
    before = set(job_ids(api))
    settings = Settings.build(address=api.cluster.address, token=TOKEN, data_roots=[api.tmp / "data"],
                              home=str(api.tmp / "fuzz-home"), max_body_bytes=65536, job_command="sweep",
                              budget=Budget(**TINY))
    try:
        with ThreadedApi(settings) as server:
            yield server
    finally:
        # anything the fuzzer got accepted is cheap (the budget), and stopped here
        client = jobs.connect(api.cluster.address, api.cluster.token)
        for job_id in set(job_ids(api)) - before:
            client.stop_job(job_id)
        if old is None:
            os.environ.pop("RAY_AUTH_TOKEN", None)
        else:
            os.environ["RAY_AUTH_TOKEN"] = old


def test_control_plane_fuzz_no_5xx_and_schema_conforming(fuzz_api):
    """Every operation of the served OpenAPI document, with data that fits it and data that does not:
    no 5xx, and each response (status, content type, headers, body) as the document says."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(f"{fuzz_api.url}/openapi.json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{o.method.upper()} {o.path}" for o in operations} >= {"POST /sweeps", "GET /sweeps/{sweep_id}"}
    seen: list[int] = []
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            @given(operation.as_strategy(generation_mode=mode))
            @settings(max_examples=12, database=None, derandomize=True, deadline=None,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                # a spec can fit the schema and still fail what needs more than one field or the data
                # (folds vs rows, the budget, the sandbox): a 422 for it is right, not a failure
                response = case.call_and_validate(base_url=fuzz_api.url,
                                                  headers={"Authorization": f"Bearer {TOKEN}"},
                                                  excluded_checks=[positive_data_acceptance], timeout=60)
                assert response.status_code < 500, (case.method, case.path, response.status_code,
                                                    response.text[:500])
                seen.append(response.status_code)

            try:
                check()
            except Unsatisfiable:  # nothing of GET /sweeps or /healthz can break the document
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.path
    assert 422 in seen and 404 in seen and len(seen) > 50
