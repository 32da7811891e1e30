"""How a tabular source's columns become features: a plain matrix when every feature column is a number
with no missing value (the fast path: arrays, as scikit-learn's sets), else a typed Table (string and
categorical columns, missing values, datetimes: trainers.tables). The decision takes data.source and
data.test_source together, so both end the same kind; data.categorical / numeric / na_values ask for a
table outright, data.drop leaves columns out either way. Rows whose target is missing are dropped
(a table with unlabelled rows is common: they cannot be trained or judged on) and counted."""
from __future__ import annotations

import dataclasses

import numpy as np

from trainers.data.common import DataError, Frame, Rows
from trainers.data.config import DataConfig
from trainers.tables import ColumnSchema, Table, TableError, infer


def frame_rows(train: Frame, test: Frame | None, cfg: DataConfig) -> tuple[Rows, Rows | None, int]:
    """(data.source's rows, data.test_source's rows, rows dropped for a missing target)."""
    import pandas as pd

    parts = [("data.source", train), *([("data.test_source", test)] if test is not None else [])]
    labelled, dropped = [], 0
    for field, source in parts:
        frame = source.frame
        if cfg.target not in frame.columns:
            raise DataError(f"data.target: a column of {source.name} expected, but got {cfg.target!r} "
                            f"(columns: {[str(c)[:40] for c in list(frame.columns)[:20]]})")
        missing = frame[cfg.target].isna().to_numpy()
        # a sample's frame holds the first rows only: the whole file's count of missing targets is counted
        dropped += source.missing_targets if source.counts is not None else int(missing.sum())
        labelled.append((field, source, frame.loc[~missing]))
    for field, source, frame in labelled:
        if frame.empty and not source.counts:
            raise DataError(f"{field}: rows with a target expected, but every row of {source.name} lacks one "
                            f"(column {cfg.target!r})")
    try:
        schema = infer(labelled[0][2], cfg.target, cfg.categorical, cfg.numeric, cfg.drop)
    except TableError as err:
        raise DataError(f"data.source: {err}") from None
    features = [c for c in labelled[0][2].columns if c != cfg.target and c not in cfg.drop]
    if not cfg.declares_columns() and all(_plain_numbers(frame, features) for _, _, frame in labelled
                                          if set(features) <= set(frame.columns)):
        rows = [_matrix(field, source, frame, features, cfg.target) for field, source, frame in labelled]
    else:
        rows = [_table(field, source, frame, schema, cfg.target) for field, source, frame in labelled]
    rows = [dataclasses.replace(r, counts=source.counts) for r, (_, source, _) in zip(rows, labelled)]
    return rows[0], rows[1] if len(rows) > 1 else None, dropped


def _plain_numbers(frame, features: list[str]) -> bool:
    import pandas as pd

    sub = frame[features]
    return all(pd.api.types.is_numeric_dtype(sub[c]) and not pd.api.types.is_bool_dtype(sub[c]) for c in features) \
        and bool(np.isfinite(sub.to_numpy(dtype=np.float64)).all())


def _matrix(field: str, source: Frame, frame, features: list[str], target: str) -> Rows:
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise DataError(f"{field}: the feature columns of data.source expected, but {source.name} lacks "
                        f"{[str(c)[:40] for c in missing[:5]]}")
    return Rows(frame[features].to_numpy(dtype=np.float64), frame[target].to_numpy(), [str(c) for c in features],
                "table")


def _table(field: str, source: Frame, frame, schema: ColumnSchema, target: str) -> Rows:
    missing = [c for c in schema.source_columns() if c not in frame.columns]
    if missing:
        raise DataError(f"{field}: the feature columns of data.source expected, but {source.name} lacks "
                        f"{[str(c)[:40] for c in missing[:5]]}")
    try:
        table = Table(schema.apply(frame), schema)
    except TableError as err:
        raise DataError(f"{field}: {err}") from None
    return Rows(table, frame[target].to_numpy(), schema.names(), "table")
