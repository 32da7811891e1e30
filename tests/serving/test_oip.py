"""Open Inference Protocol parsing and encoding, checked against tritonclient's own request builder
and response reader (no server)."""
import json

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_inference_request

from serving.oip import MAX_REQUEST_ID_CHARS, encode_response, infer_request_schema, model_metadata, parse_infer
from serving.validate import InputError, NonFiniteOutput

OUTPUTS = ("probabilities", "predictions", "votes")
DEFAULT = ("probabilities", "predictions")


def triton_body(x: np.ndarray, datatype: str, binary: bool, outputs=None):
    tensor = triton.InferInput("input", list(x.shape), datatype)
    tensor.set_data_from_numpy(x, binary_data=binary)
    requested = None if outputs is None else [triton.InferRequestedOutput(n, binary_data=b) for n, b in outputs]
    body, header = _get_inference_request([tensor], "req-1", requested, 0, False, False, 0, None, None)
    return body, None if header is None else str(header)


def parse(body, header, n_features=4, max_instances=8):
    return parse_infer(body, header, n_features, max_instances, OUTPUTS, DEFAULT)


@pytest.mark.parametrize("datatype, dtype", [("FP32", np.float32), ("FP64", np.float64)])
@pytest.mark.parametrize("binary", [True, False])
def test_parses_what_tritonclient_sends(datatype, dtype, binary):
    x = np.arange(12, dtype=dtype).reshape(3, 4) / 7
    body, header = triton_body(x, datatype, binary, outputs=[("probabilities", binary), ("votes", False)])
    parsed = parse(body, header)
    np.testing.assert_array_equal(parsed.x, x.astype(np.float32))
    assert parsed.x.dtype == np.float32 and parsed.datatype == datatype
    assert parsed.outputs == ["probabilities", "votes"] and parsed.binary == [binary, False]
    assert parsed.request_id == "req-1"


def test_no_outputs_named_means_the_defaults_as_binary():
    body, header = triton_body(np.ones((1, 4), np.float32), "FP32", True)
    parsed = parse(body, header)
    assert parsed.outputs == list(DEFAULT) and parsed.binary == [True, True]


def test_nested_json_data_is_accepted():
    body = json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                   "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]}).encode()
    assert parse(body, None).x.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_limits_at_the_limit_and_one_past():
    body, header = triton_body(np.ones((8, 4), np.float32), "FP32", True)
    assert parse(body, header).x.shape == (8, 4)
    body, header = triton_body(np.ones((9, 4), np.float32), "FP32", True)
    with pytest.raises(InputError, match=r"inputs\[0\].shape: at most 8 rows \(max_instances\) expected, but got 9"):
        parse(body, header)


@pytest.mark.parametrize("mutate, message", [
    (lambda b, h: (b[:-4], h), "binary_data_size: the size of the binary data after the JSON header (60 bytes)"),
    (lambda b, h: (b + b"\0", h), "the size of the binary data after the JSON header (65 bytes)"),
    (lambda b, h: (b, None), "body: JSON (or a JSON header of Inference-Header-Content-Length bytes followed by "
                             "binary tensors) expected, but got undecodable bytes"),
    (lambda b, h: (b, "x"), "Inference-Header-Content-Length: a non-negative integer (at most 20 digits 0-9, no sign) "
                            "expected, but got 'x'"),
])
def test_binary_framing_errors(mutate, message):
    body, header = triton_body(np.ones((4, 4), np.float32), "FP32", True)
    with pytest.raises(InputError) as info:
        parse(*mutate(body, header))
    assert message in str(info.value)


def test_binary_size_without_the_header_is_refused():
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 16}}]}).encode()
    with pytest.raises(InputError, match="Inference-Header-Content-Length: the header when binary_data_size is used"):
        parse(head, None)


@pytest.mark.parametrize("binary", [True, False])
def test_fp64_beyond_float32_range_is_refused(binary):
    x = np.ones((2, 4))
    x[1, 2] = 1e300
    body, header = triton_body(x, "FP64", binary)
    with pytest.raises(InputError, match=r"\[6\]: a number within float32 range \(\|x\| <= 3.4028234663852886e\+38\) "
                                         r"expected, but got 1e\+300"):
        parse(body, header)


def test_json_after_header_without_binary_inputs_is_refused():
    body, _ = triton_body(np.ones((1, 4), np.float32), "FP32", False)
    with pytest.raises(InputError, match="no bytes after the JSON header"):
        parse(body + b"xx", str(len(body)))


def test_encoded_response_reads_back_with_tritonclient():
    proba = np.array([[0.25, 0.75], [0.5, 0.5]])
    tensors = [("probabilities", "FP32", proba), ("predictions", "INT64", [1, 0]), ("votes", "BYTES", [["b", "a"]] * 2)]
    for binary in ([True, True, True], [False, False, False], [True, False, True]):
        body, header = encode_response("ensemble", "3", "id-9", tensors, binary)
        result = triton.InferResult.from_response_body(body, header_length=header)
        np.testing.assert_allclose(result.as_numpy("probabilities"), proba)
        assert result.as_numpy("probabilities").dtype == np.float32
        assert result.as_numpy("predictions").tolist() == [1, 0]
        assert [[v.decode() if isinstance(v, bytes) else v for v in row]
                for row in result.as_numpy("votes").tolist()] == [["b", "a"]] * 2
        assert result.get_response()["model_version"] == "3" and result.get_response()["id"] == "id-9"
        assert (header is None) == (not any(binary))


def test_metadata():
    meta = model_metadata("student", "2", 4, 3, ["x", "y", "z"], DEFAULT, 1)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
                               {"name": "predictions", "datatype": "BYTES", "shape": [-1]}]


def _json_body(outputs=None, **extra) -> bytes:
    req = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], **extra}
    if outputs is not None:
        req["outputs"] = [{"name": n} for n in outputs]
    return json.dumps(req).encode()


def test_an_output_named_twice_is_refused():
    assert parse(_json_body(["votes", "probabilities"]), None).outputs == ["votes", "probabilities"]
    with pytest.raises(InputError) as info:
        parse(_json_body(["probabilities", "votes", "probabilities"]), None)
    assert str(info.value) == ("outputs[2].name: each output named at most once expected, but got 'probabilities' "
                               "again (also outputs[0])")


@pytest.mark.parametrize("header", ["abc", "-1", "+10", "1.5", "²", "9" * 5000, "", "0x1f"])
def test_malformed_header_length_is_refused(header):
    body, _ = triton_body(np.ones((1, 4), np.float32), "FP32", True)
    with pytest.raises(InputError) as info:
        parse(body, header)
    assert str(info.value).startswith("Inference-Header-Content-Length: a non-negative integer (at most 20 digits "
                                      "0-9, no sign) expected, but got ")


def test_header_length_at_the_body_size_and_one_past():
    body = _json_body()
    assert parse(body, str(len(body))).x.shape == (1, 4)
    with pytest.raises(InputError, match=rf"Inference-Header-Content-Length: at most the body size \({len(body)} "
                                         rf"bytes\) expected, but got {len(body) + 1}$"):
        parse(body, str(len(body) + 1))
    with pytest.raises(InputError, match="at most the body size"):
        parse(body, "9" * 20)


def test_request_id_at_the_limit_and_one_past():
    assert parse(_json_body(id="x" * MAX_REQUEST_ID_CHARS), None).request_id == "x" * MAX_REQUEST_ID_CHARS
    with pytest.raises(InputError, match=rf"^id: at most {MAX_REQUEST_ID_CHARS} characters \(MAX_REQUEST_ID_CHARS\) "
                                         rf"expected, but got {MAX_REQUEST_ID_CHARS + 1} characters$"):
        parse(_json_body(id="x" * (MAX_REQUEST_ID_CHARS + 1)), None)


@pytest.mark.parametrize("binary", [True, False])
def test_non_finite_outputs_are_never_encoded(binary):
    proba = np.array([[0.5, np.nan]])
    with pytest.raises(NonFiniteOutput, match="finite values must hold"):
        encode_response("ensemble", "1", None, [("probabilities", "FP32", proba)], [binary])


def test_the_documented_request_schema_accepts_what_tritonclient_sends():
    import jsonschema

    schema = infer_request_schema(max_instances=8, width=4)
    body, _ = triton_body(np.ones((3, 4), np.float32) / 3, "FP32", False, outputs=[("votes", False)])
    jsonschema.validate(json.loads(body), schema)
    wrong = json.loads(triton_body(np.ones((3, 5), np.float64), "FP64", False)[0])
    with pytest.raises(jsonschema.ValidationError):  # 5 features: the document says 4
        jsonschema.validate(wrong, schema)
