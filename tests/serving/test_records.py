"""A table model served (the routes in-process): records by column name in, the user's labels out;
Open Inference Protocol inputs one per column (BYTES and numbers, JSON or binary, as tritonclient sends
them); every malformed record a 400 naming its field. test_table_run.py serves one for real."""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.http._utils import _get_inference_request

from serving.config import ServeConfig
from serving.loader import parse_source
from serving.routes import build_api
from serving.runner import ModelRunner

RECORDS = [{"age": 51.0, "city": "paris", "member": True, "income": 40.5},
           {"age": None, "city": "atlantis", "member": False},  # a category never seen: "unknown", no error
           {}]  # every column missing
LABELS = {"browses", "buys", "leaves"}


@pytest.fixture(scope="module")
def runners(table_bundles):
    return [ModelRunner(name, parse_source(str(d)), 8, 0.0) for name, d in zip(("ensemble", "student"), table_bundles)]


@pytest.fixture(scope="module")
def client(runners):
    return TestClient(build_api(runners, ServeConfig(max_instances=16)))


@pytest.mark.parametrize("name", ["ensemble", "student"])
def test_records_in_labels_out(client, runners, name):
    r = client.post(f"/v1/models/{name}/predict", json={"instances": RECORDS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["predictions"]) <= LABELS and len(body["predictions"]) == 3
    predictor = runners[0 if name == "ensemble" else 1].predictor
    np.testing.assert_allclose(body["probabilities"], predictor.predict_proba(RECORDS), atol=1e-6)
    assert body["predictions"] == predictor.predict(RECORDS)
    info = next(m for m in client.get("/v1/models").json()["models"] if m["name"] == name)
    assert info["classes"] == ["browses", "buys", "leaves"]
    assert info["inputs"] == [{"name": "age", "kind": "numeric"}, {"name": "city", "kind": "categorical"},
                              {"name": "member", "kind": "categorical"}, {"name": "income", "kind": "numeric"}]


@pytest.mark.parametrize("instances, field, words", [
    ([{"age": "old"}], "instances[0].age", "a number or null expected, but got 'old'"),
    ([{"age": True}], "instances[0].age", "a number or null expected, but got True"),
    ([{"city": ["paris"]}], "instances[0].city", "a string, a number, a boolean or null expected"),
    ([{"city": {"x": 1}}], "instances[0].city", "a string, a number, a boolean or null expected"),
    ([{"city": "p" * 1001}], "instances[0].city", "a string of at most 1000 characters expected, but got 1001"),
    ([{}, {"zipcode": 75001}], "instances[1].'zipcode'", "one of the model's columns"),
    ([[51.0, "paris", True, 40.5]], "instances[0]", "a JSON object expected"),
    ([{}] * 17, "instances", "at most 16 rows (max_instances) expected, but got 17 rows"),
    ([], "instances", "at least 1 row"),
])
def test_a_bad_record_is_a_400_naming_its_field(client, instances, field, words):
    r = client.post("/v1/models/ensemble/predict", json={"instances": instances})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and words in r.json()["error"], r.json()


def test_a_string_at_the_limit_is_taken(client):
    r = client.post("/v1/models/ensemble/predict", json={"instances": [{"city": "p" * 1000}]})
    assert r.status_code == 200


def _triton(inputs: list, outputs=None, binary: bool = True):
    requested = [triton.InferRequestedOutput(n, binary_data=binary) for n in outputs] if outputs else None
    body, header = _get_inference_request(inputs, None, requested, 0, False, False, 0, None, None)
    return body, ({} if header is None else {"Inference-Header-Content-Length": str(header)})


def _columns(binary: bool):
    age = triton.InferInput("age", [3], "FP64")
    age.set_data_from_numpy(np.array([51.0, np.nan, 30.0]), binary_data=binary)  # NaN: missing
    city = triton.InferInput("city", [3, 1], "BYTES")
    city.set_data_from_numpy(np.array([[b"paris"], [b"atlantis"], [b""]], dtype=object), binary_data=binary)
    member = triton.InferInput("member", [3], "BYTES")
    member.set_data_from_numpy(np.array(["True", "False", "True"], dtype=object), binary_data=binary)
    return [age, city, member]  # income left out: missing in every row


@pytest.mark.parametrize("binary", [True, False])
def test_one_oip_input_per_column_as_tritonclient_sends_them(client, runners, binary):
    body, headers = _triton(_columns(binary), ["predictions", "probabilities"], binary)
    r = client.post("/v2/models/ensemble/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    result = triton.InferResult.from_response_body(r.content, header_length=int(r.headers.get(
        "Inference-Header-Content-Length", 0)) or None)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predictions").reshape(-1)]
    expected = runners[0].predictor.predict([{"age": 51.0, "city": "paris", "member": "True"},
                                             {"city": "atlantis", "member": "False"}, {"age": 30.0, "member": "True"}])
    assert labels == expected and result.as_numpy("probabilities").shape == (3, 3)
    meta = client.get("/v2/models/ensemble").json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [("age", "FP64"), ("city", "BYTES"),
                                                                     ("member", "BYTES"), ("income", "FP64")]
    assert next(o for o in meta["outputs"] if o["name"] == "predictions")["datatype"] == "BYTES"


def test_oip_inputs_that_do_not_fit_the_columns_are_400s(client):
    zip_ = triton.InferInput("zipcode", [1], "FP64")
    zip_.set_data_from_numpy(np.array([1.0]))
    city_as_number = triton.InferInput("city", [1], "FP64")
    city_as_number.set_data_from_numpy(np.array([1.0]))
    short = triton.InferInput("age", [2], "FP64")
    short.set_data_from_numpy(np.array([1.0, 2.0]))
    one = triton.InferInput("member", [1], "BYTES")
    one.set_data_from_numpy(np.array([b"True"], dtype=object))
    for inputs, words in [([zip_], "inputs[0].name: one of the model's columns"),
                          ([city_as_number], "inputs[0].datatype: BYTES for column 'city' expected"),
                          ([short, one], "inputs[1].shape: 2 rows like inputs[0] expected, but got 1")]:
        body, headers = _triton(inputs)
        r = client.post("/v2/models/ensemble/infer", content=body, headers=headers)
        assert r.status_code == 400 and r.json()["error"].startswith(words), r.text


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                                              st.integers(), max_size=1))
_KEYS = st.sampled_from(["age", "city", "member", "income", "zipcode", "", "AGE"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=5), min_size=1, max_size=4))
def test_any_record_is_an_answer_or_a_400_naming_a_field(client, instances):
    r = client.post("/v1/models/ensemble/predict", json={"instances": instances})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["field"].startswith("instances") and "expected, but got" in r.json()["error"]
    else:
        assert set(r.json()["predictions"]) <= LABELS
