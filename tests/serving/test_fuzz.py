"""Schemathesis against the served app's own OpenAPI document, over real HTTP (Ray Serve + HAProxy).

The ensemble is a registered MLflow model (models:/...), the student a bundle directory, both tiny
(2 features, 3 string classes): generated rows have the right width often enough to reach the models,
with features up to float32's range, which overflow them (the NaN class of bug). Bounded and
derandomized: the same cases every run, no example database.
"""
from __future__ import annotations

import glob
import os
from types import SimpleNamespace

import httpx
import mlflow
import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, settings
from ray import serve
from schemathesis.checks import (content_type_conformance, negative_data_rejection, not_a_server_error,
                                 response_schema_conformance, status_code_conformance)

from serving.app import make_app
from serving.config import ServeConfig
from serving.home import locations
from serving.mlflow_model import log_and_register
from serving.routes import build_api
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families.config import ModelConfig
from trainers.families import build_model

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
TEMP_GLOB = "raysemble-model-*"


def _worker_tempdir() -> str:
    """Where a Ray worker (and so a Serve replica) on this node makes its temporary directories."""
    import ray

    @ray.remote(num_cpus=0)
    def where() -> str:
        import tempfile

        return tempfile.gettempdir()

    return ray.get(where.remote())


def _model(cfg: ModelConfig) -> torch.nn.Module:
    """A random network with weights ten times the initial ones: large inputs overflow it often (most
    rows near float32's range give NaN), as they do a trained model, so generated cases reach that class."""
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10.0)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(registered ensemble URI, store, student dir): 3 random 2-feature members voting hard, 1 student."""
    torch.manual_seed(0)
    cfg = ModelConfig(in_features=2, n_classes=3, hidden=8)
    root = tmp_path_factory.mktemp("tiny")
    classes = ["a", "b", "c"]
    ensemble = EnsemblePredictor([_model(cfg) for _ in range(3)], [cfg] * 3, method="hard_vote",
                                 classes=classes).save(root / "ensemble")
    student = EnsemblePredictor([_model(cfg)], [cfg], classes=classes, kind="student").save(root / "student")
    store = locations(home=root / "home").prepare()
    with store.active():
        experiment = mlflow.create_experiment("fuzz", store.artifact_location)
        with mlflow.start_run(experiment_id=experiment):
            name, version = log_and_register(ensemble, "fuzz-ensemble", torch.zeros(1, 2).numpy())
    return f"models:/{name}/{version}", store, student


@pytest.fixture(scope="module")
def served(serve_port, tiny):
    """The app on Serve, and the raysemble-model-* directories that existed before it started."""
    uri, store, student = tiny
    temp = _worker_tempdir()
    before = set(glob.glob(os.path.join(temp, TEMP_GLOB)))
    cfg = ServeConfig(port=serve_port, **CONFIG)
    serve.run(make_app(uri, str(student), cfg, store=store), name="raysemble", route_prefix="/")
    yield f"http://127.0.0.1:{serve_port}", temp, before
    serve.delete("raysemble")


# The served document, built the same way before the app runs (pytest collects the operations before any
# fixture can start Serve; schemathesis' lazy from_fixture does not work on pytest 9).
# test_the_served_document_is_the_one_fuzzed checks that it is what /openapi.json serves.
CONFIG = dict(min_replicas=1, max_replicas=1, num_cpus=0.5, max_batch_size=8, max_ongoing_requests=32,
              max_instances=8, max_body_bytes=4096)
NAMES = (SimpleNamespace(name="ensemble", aliases=["fuzz-ensemble"], n_features=2),
         SimpleNamespace(name="student", aliases=[], n_features=2))
DOCUMENT = build_api(list(NAMES), ServeConfig(**CONFIG)).openapi()  # the document reads only these three
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(max_examples=25, database=None, derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_responses_match_the_schema(case, served):
    case.call_and_validate(base_url=served[0], checks=CHECKS, timeout=30)


def test_the_served_document_is_the_one_fuzzed(served):
    assert httpx.get(served[0] + "/openapi.json", timeout=30).json() == DOCUMENT


def test_metadata_shows_no_server_path(served, tiny):
    uri, _, student = tiny
    with httpx.Client(base_url=served[0], timeout=30) as http:
        text = http.get("/v1/models").text
        models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        meta = http.get("/v2/models/student").text
    assert models["ensemble"]["source"] == uri  # a models:/ URI is no server path
    assert models["student"]["source"] == f"bundle:{models['student']['version']}"
    for shown in (text, meta):
        assert str(student) not in shown and str(student.parent) not in shown


def test_a_registered_model_leaves_no_download_behind(serve_port, served, tiny):
    """The replica read the download into memory and removed it; stopping the app leaves nothing either."""
    url, temp, before = served
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/v1/models/ensemble/predict", json={"instances": [[0.5, -1.0]], "return_votes": True})
    assert r.status_code == 200 and len(r.json()["votes"][0]) == 3, r.text
    assert set(glob.glob(os.path.join(temp, TEMP_GLOB))) - before == set()
    # a second app from the same URI, started and stopped: still nothing left
    uri, store, student = tiny
    cfg = ServeConfig(port=serve_port, min_replicas=1, max_replicas=1, num_cpus=0.25, app_name="second")
    serve.run(make_app(uri, None, cfg, store=store), name="second", route_prefix="/second")
    serve.delete("second")
    assert set(glob.glob(os.path.join(temp, TEMP_GLOB))) - before == set()
