"""The routes in-process (no Ray): open mode, compression, error shapes. test_app.py covers them served."""
import gzip
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

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
            raise RuntimeError("boom")

        async def ready(self):
            return False

    client = TestClient(build_api([Broken()], ServeConfig()), raise_server_exceptions=False)
    r = client.post("/v1/models/ensemble/predict", json={"instances": digits_x[:1].tolist()})
    assert r.status_code == 500 and r.json() == {"error": "internal error: RuntimeError: boom"}
    assert client.get("/v2/health/ready").status_code == 503
