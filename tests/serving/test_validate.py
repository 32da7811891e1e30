import gzip
import zlib

import numpy as np
import pytest
from pydantic import ValidationError

from serving.schemas import PredictRequest
from serving.validate import (InputError, check_content_length, check_content_type, check_shape, decode_body,
                              from_validation_error, parse_json, rows_matrix)


def error_of(fn, *args) -> InputError:
    with pytest.raises(InputError) as info:
        fn(*args)
    return info.value


def test_content_type():
    check_content_type("application/json; charset=utf-8", ["application/json"])
    check_content_type(None, ["application/json"])  # curl -d without -H and tritonclient send none
    e = error_of(check_content_type, "text/csv", ["application/json"])
    assert e.status == 415 and str(e) == "Content-Type: application/json expected, but got 'text/csv'"
    assert error_of(check_content_type, None, ["application/json"], False).status == 415


def test_content_length_at_the_limit_and_one_past():
    assert check_content_length("100", 100) == 100
    e = error_of(check_content_length, "101", 100)
    assert e.status == 413 and str(e) == "body: at most 100 bytes (max_body_bytes) expected, but got 101 bytes"
    assert error_of(check_content_length, "-1", 100).status == 400


def test_decode_body_is_bounded():
    data = b'{"instances": [[1.0]]}'
    assert decode_body(gzip.compress(data), "gzip", 100) == data
    assert decode_body(zlib.compress(data), "deflate", 100) == data
    bomb = gzip.compress(b" " * 10_000)
    assert error_of(decode_body, bomb, "gzip", 1000).status == 413
    assert error_of(decode_body, data, "br", 1000).status == 415
    assert "gzip-compressed data expected" in str(error_of(decode_body, data, "gzip", 1000))


def test_parse_json():
    assert parse_json(b'{"a": 1}') == {"a": 1}
    assert str(error_of(parse_json, b"")) == "body: a JSON object expected, but got an empty body"
    assert str(error_of(parse_json, b'{"a": }')).startswith("body: valid JSON expected, but got a syntax error at line 1")
    assert "UTF-8 JSON text expected" in str(error_of(parse_json, b"\xff\xfe"))
    assert str(error_of(parse_json, b"[" * 100_000)) == \
        "body: JSON nested at most ~1000 levels deep expected, but got deeper nesting"
    assert "numbers of at most 4300 digits" in str(error_of(parse_json, b"[" + b"1" * 5000 + b"]"))


@pytest.mark.parametrize("instances, message", [
    ([[1.0, "x"]], "instances[0][1]: a number expected, but got 'x'"),
    ([[1.0, True]], "instances[0][1]: a number expected, but got True"),
    ([[float("nan")]], "instances[0][0]: a finite number expected, but got NaN"),
    ([[1.0], [float("-inf")]], "instances[1][0]: a finite number expected, but got -Infinity"),
    ("rows", "instances: a list expected, but got 'rows'"),
    ([[10 ** 400]], "instances[0][0]: a number within float range expected, but got 1000000000"),
])
def test_schema_errors_name_the_field(instances, message):
    with pytest.raises(ValidationError) as info:
        PredictRequest.model_validate({"instances": instances})
    assert str(from_validation_error(info.value)).startswith(message)


def test_schema_missing_and_unknown_fields():
    with pytest.raises(ValidationError) as info:
        PredictRequest.model_validate({"instances": [[1.0]], "rows": 1})
    assert str(from_validation_error(info.value)) == "rows: only the documented fields expected, but got an unknown field 'rows'"
    with pytest.raises(ValidationError) as info:
        PredictRequest.model_validate({})
    assert str(from_validation_error(info.value)) == "instances: a value for this required field expected, but got nothing"


def test_rows_matrix_limits():
    x = rows_matrix([[1, 2.5]] * 3, n_features=2, max_instances=3)
    assert x.dtype == np.float32 and x.shape == (3, 2)
    assert str(error_of(rows_matrix, [[1, 2]] * 4, 2, 3)) == \
        "instances: at most 3 rows (max_instances) expected, but got 4 rows"
    assert str(error_of(rows_matrix, [], 2, 3)) == "instances: at least 1 row expected, but got 0 rows (an empty batch)"
    assert str(error_of(rows_matrix, [[1, 2], [1]], 2, 3)) == "instances[1]: 2 features expected, but got 1"
    assert "float32 range" in str(error_of(rows_matrix, [[1, 1e39]], 2, 3))


def test_check_shape():
    assert check_shape([4, 8], 8, 4, "s") == (4, 8)
    assert str(error_of(check_shape, [5, 8], 8, 4, "inputs[0].shape")) == \
        "inputs[0].shape: at most 4 rows (max_instances) expected, but got 5 rows"
    assert "a 2-d shape [rows, 8] expected, but got [8]" in str(error_of(check_shape, [8], 8, 4, "s"))
