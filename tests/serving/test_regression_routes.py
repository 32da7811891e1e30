"""A regression model's routes in-process (no Ray): v1 and OIP answer numbers (FP64), no probabilities,
each member's value as its vote; asking for probabilities is a 400 naming the output."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from sklearn.datasets import load_diabetes
from tritonclient.http._utils import _get_inference_request

from serving.config import ServeConfig
from serving.loader import parse_source
from serving.routes import build_api
from serving.runner import ModelRunner
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families import get_family, start_fit
from trainers.families.config import ModelConfig

X, Y = (a.astype(np.float32) if i == 0 else a for i, a in enumerate(load_diabetes(return_X_y=True)))


def _fit(family: str, params: dict):
    base = ModelConfig(family=family, in_features=X.shape[1], n_classes=1, task="regression")
    model_cfg, fit_cfg = get_family(family).split(params, base)
    fit = start_fit(model_cfg, fit_cfg, X[:300], Y[:300], 0)
    while fit.done < fit.rounds:
        fit.advance()
    return fit.model, fit.model_cfg


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("regression-bundles")
    members = [_fit("mlp", {"epochs": 20, "hidden": 16}), _fit("hist_gb", {"max_iter": 30, "rounds": 1})]
    ensemble = EnsemblePredictor([m for m, _ in members], [c for _, c in members], method="weighted",
                                 weights=[0.5, 0.5]).save(root / "ensemble")
    student = EnsemblePredictor([members[0][0]], [members[0][1]], kind="student").save(root / "student")
    runners = [ModelRunner(n, parse_source(str(d)), 8, 0.0) for n, d in (("ensemble", ensemble), ("student", student))]
    return TestClient(build_api(runners, ServeConfig())), runners


def test_v1_answers_numbers_and_member_values(client):
    api, runners = client
    r = api.post("/v1/models/ensemble/predict", json={"instances": X[300:303].tolist(), "return_votes": True})
    body = r.json()
    assert r.status_code == 200 and "probabilities" not in body
    expected = runners[0].predictor.predict_proba(X[300:303])[:, 0]
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6)
    votes = np.asarray(body["votes"])
    assert votes.shape == (3, 2)
    np.testing.assert_allclose(votes.mean(1), expected, rtol=1e-6)  # equal weights: the mean of the members
    info = {m["name"]: m for m in api.get("/v1/models").json()["models"]}
    assert info["ensemble"]["task"] == "regression" and info["ensemble"]["classes"] == []
    r = api.post("/v1/models/student/predict", json={"instances": X[300:301].tolist(), "return_votes": True})
    assert r.status_code == 400 and r.json()["field"] == "return_votes"


def _triton(x: np.ndarray, binary: bool, outputs):
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    requested = None if outputs is None else [triton.InferRequestedOutput(n, binary_data=binary) for n in outputs]
    body, header = _get_inference_request([tensor], None, requested, 0, False, False, 0, None, None)
    return body, ({} if header is None else {"Inference-Header-Content-Length": str(header)})


@pytest.mark.parametrize("binary", [False, True])
def test_oip_answers_fp64_predictions_and_refuses_probabilities(client, binary):
    api, runners = client
    meta = api.get("/v2/models/ensemble").json()
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("predictions", "FP64", [-1]), ("votes", "FP64", [-1, 2])]
    body, headers = _triton(X[300:304], binary, None)
    r = api.post("/v2/models/ensemble/infer", content=body, headers={"Content-Type": "application/json", **headers})
    assert r.status_code == 200
    length = r.headers.get("Inference-Header-Content-Length")
    result = triton.InferResult.from_response_body(r.content, header_length=int(length) if length else None)
    values = result.as_numpy("predictions")
    assert values.dtype == np.float64 and values.shape == (4,)
    np.testing.assert_allclose(values, runners[0].predictor.predict_proba(X[300:304])[:, 0], rtol=1e-6)
    body, headers = _triton(X[300:301], binary, ["probabilities"])
    r = api.post("/v2/models/ensemble/infer", content=body, headers={"Content-Type": "application/json", **headers})
    assert r.status_code == 400 and "outputs[0].name" in json.loads(r.text)["error"]
    assert "'predictions', 'votes'" in json.loads(r.text)["error"]
