"""The column schema (kinds, overrides, limits, errors that name columns, never values) and the
encodings a fit learns from its own rows (unknown and missing values, the kept-category limits)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainers.tables import Table, TableEncoding, TableError, infer
from trainers.tables import encoding as encoding_module
from trainers.tables import schema as schema_module


def _table(frame: pd.DataFrame, target: str = "y", **overrides) -> Table:
    schema = infer(frame, target, **overrides)
    return Table(schema.apply(frame), schema)


def test_kinds_follow_the_types_and_the_spec_overrides_them():
    frame = pd.DataFrame({"n": [1.5, 2.0, None], "i": [1, 2, 3], "s": ["a", None, "b"], "b": [True, False, True],
                          "c": pd.Categorical(["x", "y", "x"]), "y": [0, 1, 0]})
    kinds = {c.name: c.kind for c in infer(frame, "y").columns}
    assert kinds == {"n": "numeric", "i": "numeric", "s": "categorical", "b": "categorical", "c": "categorical"}
    kinds = {c.name: c.kind for c in infer(frame, "y", categorical_cols=["i"], drop=["c"]).columns}
    assert kinds == {"n": "numeric", "i": "categorical", "s": "categorical", "b": "categorical"}
    with pytest.raises(TableError, match=r"data.categorical and data.numeric: a column in one of them expected, "
                                         r"but \['i'\] are in both"):
        infer(frame, "y", categorical_cols=["i"], numeric_cols=["i"])
    with pytest.raises(TableError, match="data.drop: feature columns expected, but got the target 'y'"):
        infer(frame, "y", drop=["y"])


def test_a_value_that_is_no_number_is_named_by_its_column_never_shown():
    frame = pd.DataFrame({"price": ["12", "TOPSECRET", "13"], "y": [0, 1, 0]})
    with pytest.raises(TableError) as err:
        _table(frame, numeric_cols=["price"])
    assert "TOPSECRET" not in str(err.value) and str(err.value).startswith(
        "column 'price': numbers expected, but 1 values are not numbers")


def test_column_and_cell_limits_at_the_limit_and_one_past(monkeypatch):
    monkeypatch.setattr(schema_module, "MAX_COLUMNS", 3)
    assert len(infer(pd.DataFrame({"a": [1], "b": [2], "c": [3], "y": [0]}), "y").columns) == 3
    with pytest.raises(TableError, match="at most 3 feature columns expected, but got 4"):
        infer(pd.DataFrame({"a": [1], "b": [2], "c": [3], "d": [4], "y": [0]}), "y")
    monkeypatch.setattr(schema_module, "MAX_CELL_CHARS", 5)
    assert _table(pd.DataFrame({"s": ["12345"], "y": [0]})).frame["s"][0] == "12345"
    with pytest.raises(TableError, match=r"column 's': values of at most 5 characters expected, but 1 are longer"):
        _table(pd.DataFrame({"s": ["123456"], "y": [0]}))


def test_encodings_learn_from_their_rows_only_and_take_any_value_later():
    frame = pd.DataFrame({"n": [1.0, 3.0, None, 5.0], "s": ["a", "b", "a", None], "y": [0, 1, 0, 1]})
    table = _table(frame)
    onehot = TableEncoding.fit(table, "onehot")
    assert onehot.column_names() == ["n", "n=<missing>", "s=a", "s=b", "s=<other>", "s=<missing>"]
    assert onehot.numeric[0].fill == 3.0  # the median of these rows
    later = _table(pd.DataFrame({"n": [None, 7.0], "s": ["zzz", "b"], "y": [0, 0]}))
    later = Table(table.schema.apply(later.frame), table.schema)
    np.testing.assert_array_equal(onehot.transform(later), [[3, 1, 0, 0, 1, 0], [7, 0, 0, 1, 0, 0]])
    ordinal = TableEncoding.fit(table, "ordinal")
    out = ordinal.transform(later)
    assert ordinal.categorical_columns == [1] and np.isnan(out[0, 0]) and out.tolist()[1] == [7.0, 1.0]
    assert out[0, 1] == 2.0  # an unknown category: the "other" code, after the kept ones (a, b)


def _expected(encoding: TableEncoding, frame: pd.DataFrame) -> np.ndarray:
    """Each cell from the encoding's definition, row by row (the oracle the fast transform must match)."""
    out = []
    for _, row in frame.iterrows():
        cells = []
        for n in encoding.numeric:
            value = row[n.name]
            if encoding.style == "ordinal":
                cells.append(value)
            else:
                cells += [n.fill if pd.isna(value) else value] + ([float(pd.isna(value))] if n.indicator else [])
        for c in encoding.categorical:
            value = row[c.name]
            code = -1 if not isinstance(value, str) else (c.categories.index(value) if value in c.categories
                                                          else len(c.categories))
            if encoding.style == "ordinal":
                cells.append(np.nan if code < 0 else code)
            else:
                cells += [float(i == (len(c.categories) + 1 if code < 0 else code))
                          for i in range(len(c.categories) + 2)]
        out.append(cells)
    return np.array(out, dtype=np.float32).reshape(len(frame), encoding.width)


@pytest.mark.parametrize("style", ["onehot", "ordinal"])
def test_every_cell_is_what_the_encoding_says_at_batch_one_and_many(style):
    """Numeric columns with and without missing values (indicators between them), categories kept,
    unknown and missing, in a mixed order: the transform's positions agree with column_names()."""
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"a": rng.normal(size=n), "s": rng.choice(["x", "y", "z", None], n),
                          "b": np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n)),
                          "c": rng.integers(0, 5, n).astype(float), "t": rng.choice(["p", "q"], n),
                          "d": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)), "y": rng.integers(0, 2, n)})
    table = _table(frame)
    encoding = TableEncoding.fit(table[np.arange(40)], style)
    assert [n.indicator for n in encoding.numeric] == ([False, True, False, True] if style == "onehot" else [False] * 4)
    later = frame.iloc[40:].assign(s=["w", *frame["s"].iloc[41:]])  # "w": never seen
    rows = Table(table.schema.apply(later.drop(columns="y")), table.schema)
    np.testing.assert_array_equal(encoding.transform(rows), _expected(encoding, rows.frame))
    for i in (0, 3):
        np.testing.assert_array_equal(encoding.transform(rows[[i]]), _expected(encoding, rows.frame.iloc[[i]]))
    assert encoding.transform(rows[[]]).shape == (0, encoding.width)


def test_kept_categories_at_the_limit_and_one_past(monkeypatch):
    monkeypatch.setattr(encoding_module, "MAX_ONEHOT", 3)
    three = _table(pd.DataFrame({"s": list("aabbcc"), "y": [0, 1] * 3}))
    assert TableEncoding.fit(three, "onehot").categorical[0].categories == ["a", "b", "c"]
    four = _table(pd.DataFrame({"s": list("aaabbcd"), "y": [0, 1, 0, 1, 0, 1, 0]}))
    enc = TableEncoding.fit(four, "onehot")
    assert enc.categorical[0].categories == ["a", "b", "c"] and enc.width == 5  # d shares the "other" column
    assert enc.transform(four)[-1].tolist() == [0, 0, 0, 1, 0]


def test_datetimes_become_numeric_parts():
    frame = pd.DataFrame({"when": ["2024-03-01", "2024-12-24", None], "y": [0, 1, 0]})
    table = _table(frame)
    assert table.schema.datetimes == {"when": ["year", "month", "day", "day_of_week"]}
    assert table.frame["when.month"].tolist()[:2] == [3.0, 12.0] and np.isnan(table.frame["when.year"][2])
    codes = pd.DataFrame({"code": ["A1", "B2", "A1"], "y": [0, 1, 0]})  # text that is no date stays text
    assert _table(codes).schema.columns[0].kind == "categorical"


def test_an_object_column_of_served_values_gives_the_features_a_typed_one_gives():
    """Records arrive as object columns (Python ints, floats, None, strings, bools); read from a file the
    same rows are typed. Both must become the same feature frame, whichever path each column takes."""
    typed = pd.DataFrame({"n": [1.5, np.nan, 3.0, -2.0], "i": [1, 2, 3, 4], "s": ["a", None, "", "b"],
                          "f": [True, False, True, None], "when": ["2024-03-01", None, "2024-12-24", "2023-01-02"],
                          "y": [0, 1, 0, 1]})
    schema = infer(typed, "y", categorical_cols=["f"])
    served = pd.DataFrame({c: pd.Series(typed[c].tolist(), dtype="object") for c in typed.columns if c != "y"})
    served.loc[1, "n"] = None  # JSON null, not NaN
    expected, got = schema.apply(typed), schema.apply(served)
    pd.testing.assert_frame_equal(got, expected)
    assert list(got.dtypes.astype(str)) == ["float64", "float64", "object", "object"] + ["float64"] * 4
    assert got["s"].isna().tolist() == [False, True, True, False] and got["f"].tolist()[:3] == ["True", "False", "True"]
    # numbers written as text, numpy scalars and bools take pandas' parsing: the same floats
    mixed = served.assign(n=pd.Series(["1.5", None, np.float32(3.0), True], dtype="object"))
    np.testing.assert_array_equal(schema.apply(mixed)["n"].to_numpy(), [1.5, np.nan, 3.0, 1.0])
    with pytest.raises(TableError, match="column 'i': numbers expected, but 1 values are not numbers"):
        schema.apply(served.assign(i=pd.Series([1, "x", 3, None], dtype="object")))
    with pytest.raises(TableError, match="column 'n': finite numbers or missing values expected, but got 1 infinite"):
        schema.apply(served.assign(n=pd.Series([1.0, float("inf"), None, 2], dtype="object")))
    with pytest.raises(TableError, match=r"column 'n': numbers within float32 range"):
        schema.apply(served.assign(n=pd.Series([10 ** 400, None, None, 1], dtype="object")))
