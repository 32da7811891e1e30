"""The routes in-process (no Ray): open mode, compression, error shapes. test_app.py covers them served."""
import gzip
import json

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.http._utils import _get_inference_request

from serving.config import ServeConfig
from serving.loader import parse_source
from serving.routes import build_api
from serving.runner import ModelRunner


@pytest.fixture(scope="module")
def runners(bundles):
    return [ModelRunner(name, parse_source(str(d)), 8, 0.0) for name, d in zip(("ensemble", "student"), bundles)]


@pytest.fixture(scope="module")
def client(runners):
    return TestClient(build_api(runners, ServeConfig()))


def test_open_without_a_token(client, runners, digits_x):
    r = client.post("/v1/models/student/predict", json={"instances": digits_x[:2].tolist()})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["probabilities"], runners[1].predictor.predict_proba(digits_x[:2]), atol=1e-6)


def test_token_when_configured(runners, digits_x):
    client = TestClient(build_api(runners, ServeConfig(token="t0k")))
    body = {"instances": digits_x[:1].tolist()}
    r = client.post("/v1/models/ensemble/predict", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/v1/models/ensemble/predict", json=body, headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert client.post("/v1/models/ensemble/predict", json=body, headers={"Authorization": "Basic t0k"}).status_code == 401
    assert client.get("/v1/models").status_code == 200 and client.get("/v2/health/ready").status_code == 200


def test_gzip_request_body(client, digits_x):
    raw = json.dumps({"instances": digits_x[:3].tolist()}).encode()
    r = client.post("/v1/models/ensemble/predict", content=gzip.compress(raw),
                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3


def test_unknown_routes_and_versions_are_json_errors(client, runners):
    r = client.get("/v3/anything")
    assert r.status_code == 404 and r.json() == {"error": "GET /v3/anything: Not Found"}
    r = client.get("/v2/models/ensemble/versions/999")
    assert r.status_code == 404 and set(r.json()) == {"error"} and "the served version" in r.json()["error"]
    version = runners[0].version
    assert client.get(f"/v2/models/ensemble/versions/{version}/ready").json() == {"name": "ensemble", "ready": True}


def test_a_model_fault_is_a_json_500(bundles, digits_x):
    class Broken:
        name, aliases = "ensemble", []

        async def describe(self):
            return {"n_features": 64, "members": 1, "classes": [0, 1], "outputs": ["probabilities"], "version": "1"}

        async def predict(self, x, votes):
            raise RuntimeError("boom: cannot read /srv/secret/model.pt")

        async def ready(self):
            return False

    client = TestClient(build_api([Broken()], ServeConfig()), raise_server_exceptions=False)
    r = client.post("/v1/models/ensemble/predict", json={"instances": digits_x[:1].tolist()})
    # the exception's text may name server paths: the log has it, the client gets its type only
    assert r.status_code == 500 and r.json() == {"error": "internal error: RuntimeError (details in the server log)"}
    assert client.get("/v2/health/ready").status_code == 503


def strict_json(text: str):
    """JSON as RFC 8259 has it: a NaN or Infinity token fails."""
    def refuse(token):
        raise ValueError(f"non-JSON token {token}")
    return json.loads(text, parse_constant=refuse)


EXTREME = [[3e38] * 64, [-3e38] * 64]  # finite float32 features that overflow the networks
V2 = "/v2/models/{}/infer"


def _rows(digits_x):
    return [digits_x[0].tolist(), EXTREME[0], digits_x[1].tolist(), EXTREME[1]]


def _triton(x: np.ndarray, binary: bool, outputs=None):
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    requested = None if outputs is None else [triton.InferRequestedOutput(n, binary_data=binary) for n in outputs]
    body, header = _get_inference_request([tensor], None, requested, 0, False, False, 0, None, None)
    return body, ({} if header is None else {"Inference-Header-Content-Length": str(header)})


NAN_ROWS = ("finite model outputs expected, but got NaN for 2 of 4 rows (rows 1, 3: features this large overflow "
            "the model)")


@pytest.mark.parametrize("name, votes", [("ensemble", False), ("ensemble", True), ("student", False)])
def test_rows_that_overflow_the_model_are_a_400_naming_them_v1(client, digits_x, name, votes):
    r = client.post(f"/v1/models/{name}/predict", json={"instances": _rows(digits_x), "return_votes": votes})
    assert r.status_code == 400
    assert strict_json(r.text) == {"error": f"instances[1]: {NAN_ROWS}", "field": "instances[1]"}
    ok = client.post(f"/v1/models/{name}/predict", json={"instances": _rows(digits_x)[::2], "return_votes": votes})
    assert ok.status_code == 200 and len(strict_json(ok.text)["predictions"]) == 2


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("name, outputs", [("ensemble", None), ("ensemble", ["votes"]), ("student", None)])
def test_rows_that_overflow_the_model_are_a_400_naming_them_oip(client, digits_x, name, outputs, binary):
    body, headers = _triton(np.asarray(_rows(digits_x), np.float32), binary, outputs)
    r = client.post(V2.format(name), content=body, headers=headers)
    assert r.status_code == 400 and strict_json(r.text) == {"error": f"inputs[0]: {NAN_ROWS}"}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_a_non_finite_output_that_gets_past_the_checks_is_a_clear_500_not_invalid_json():
    class Leaky:  # a model that reports no bad rows but returns NaN: the encoder is the last line
        name, aliases = "ensemble", []

        async def describe(self):
            return {"n_features": 2, "members": 1, "classes": [0, 1], "outputs": ["probabilities", "predictions"],
                    "version": "1"}

        async def predict(self, x, votes):
            return {"probabilities": np.full((len(x), 2), np.nan), "labels": [0] * len(x), "votes": None,
                    "version": "1", "bad_rows": []}

        async def ready(self):
            return True

    client = TestClient(build_api([Leaky()], ServeConfig()), raise_server_exceptions=False)
    expected = {"error": "internal error: response: finite values must hold (JSON has no NaN or Infinity), but got one"}
    r = client.post("/v1/models/ensemble/predict", json={"instances": [[1.0, 2.0]]})
    assert r.status_code == 500 and strict_json(r.text) == expected
    for binary in (True, False):
        body, headers = _triton(np.ones((1, 2), np.float32), binary, ["probabilities"])
        r = client.post(V2.format("ensemble"), content=body, headers=headers)
        assert r.status_code == 500 and strict_json(r.text)["error"].startswith("internal error: ")
        assert "finite values must hold" in r.json()["error"]


def test_output_values_per_row_at_the_limit_and_one_past(runners, digits_x):
    """digits: 10 probabilities + 1 prediction + 5 votes (members) = 16 values per row."""
    x = digits_x[:2]
    v1 = {"instances": x.tolist(), "return_votes": True}
    body, headers = _triton(x.astype(np.float32), False, ["probabilities", "predictions", "votes"])
    at = TestClient(build_api(runners, ServeConfig(max_output_values_per_row=16)))
    assert at.post("/v1/models/ensemble/predict", json=v1).status_code == 200
    assert at.post(V2.format("ensemble"), content=body, headers=headers).status_code == 200
    past = TestClient(build_api(runners, ServeConfig(max_output_values_per_row=15)))
    r = past.post("/v1/models/ensemble/predict", json=v1)
    assert r.status_code == 400 and r.json() == {
        "error": "return_votes: at most 15 output values per row (max_output_values_per_row) expected, but got 16 "
                 "(10 probabilities + 1 predictions + 5 votes)", "field": "return_votes"}
    r = past.post(V2.format("ensemble"), content=body, headers=headers)
    assert r.status_code == 400 and r.json()["error"].startswith("outputs: at most 15 output values per row")
    assert past.post("/v1/models/ensemble/predict", json={"instances": x.tolist()}).status_code == 200  # 11


def test_an_output_named_twice_is_a_400(client, digits_x):
    body, headers = _triton(digits_x[:1].astype(np.float32), True, ["votes", "predictions", "votes"])
    r = client.post(V2.format("ensemble"), content=body, headers=headers)
    assert r.status_code == 400 and r.json() == {
        "error": "outputs[2].name: each output named at most once expected, but got 'votes' again (also outputs[0])"}


def test_metadata_and_documents_show_no_server_path(client, runners, bundles):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    for runner in runners:
        assert models[runner.name]["source"] == f"bundle:{runner.version}"
    for path in ("/v1/models", "/v2/models/ensemble", "/v2/models/student", "/openapi.json", "/v2"):
        text = client.get(path).text
        assert str(bundles[0].parent) not in text and "/tmp" not in text, path
