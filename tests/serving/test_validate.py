import gzip
import zlib

import numpy as np
import pytest
from pydantic import ValidationError

from serving.schemas import PredictRequest
from serving.validate import (InputError, check_content_length, check_content_type, check_finite_outputs,
                              check_output_values, check_shape, decode_body, from_validation_error, header_integer,
                              parse_json, rows_matrix)


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


@pytest.mark.parametrize("value", ["+12", "-1", "1e3", "0x10", "１２", "²", "12abc", "", "9" * 21, "9" * 5000])
def test_header_integers_are_plain_ascii_digits(value):
    for field in ("Content-Length", "Inference-Header-Content-Length"):
        e = error_of(header_integer, value, field)
        assert e.status == 400 and str(e).startswith(
            f"{field}: a non-negative integer (at most 20 digits 0-9, no sign) expected, but got ")
    assert str(error_of(check_content_length, value, 100)).startswith("Content-Length: a non-negative integer")


def test_header_integer_at_the_digit_limit():
    assert header_integer("9" * 20, "h") == 10 ** 20 - 1 and header_integer(" 007 ", "h") == 7
    assert "at most 20 digits" in str(error_of(header_integer, "1" + "0" * 20, "h"))


def test_just_past_float32_max_is_refused_not_rounded_down():
    edge = np.finfo(np.float32).max
    assert rows_matrix([[float(edge), -float(edge)]], 2, 1)[0, 0] == edge
    past = np.nextafter(float(edge), np.inf)  # a float64 that float32 rounds back down to its max
    assert np.float32(past) == edge
    assert str(error_of(rows_matrix, [[1.0, past]], 2, 1)).startswith(
        "instances[0][1]: a number within float32 range (|x| <= 3.4028234663852886e+38) expected")


def test_non_finite_model_outputs_name_the_rows():
    check_finite_outputs([], "instances", 4)
    assert str(error_of(check_finite_outputs, [1, 3], "instances", 4)) == (
        "instances[1]: finite model outputs expected, but got NaN for 2 of 4 rows (rows 1, 3: "
        "features this large overflow the model)")
    e = error_of(check_finite_outputs, list(range(12)), "inputs[0]", 12, False)
    assert e.field == "inputs[0]" and "NaN for 12 of 12 rows (rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...:" in str(e)


def test_output_values_at_the_limit_and_one_past():
    per_row = {"probabilities": 10, "predictions": 1, "votes": 3}
    check_output_values(per_row, 14, "outputs")
    e = error_of(check_output_values, per_row, 13, "outputs")
    assert e.status == 400 and str(e) == ("outputs: at most 13 output values per row (max_output_values_per_row) "
                                          "expected, but got 14 (10 probabilities + 1 predictions + 3 votes)")
