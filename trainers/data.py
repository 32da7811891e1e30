"""Datasets: scikit-learn's bundled sets by name, or the user's CSV / Parquet / NPZ file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator
from sklearn.model_selection import train_test_split

from trainers.models import ImageShape, image_shape_problem

SKLEARN_SETS = ("digits", "iris", "wine", "breast_cancer")
FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".npz")
MAX_PATH_CHARS = 4096  # data.source
MAX_NAME_CHARS = 256  # data.target


class DataError(ValueError):
    """A problem with the data a spec points at; the message names the field."""


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # "sklearn:<name>" or a path to .csv / .parquet / .npz; strict: bytes are never decoded into a path
    source: StrictStr = Field(min_length=1, max_length=MAX_PATH_CHARS)
    # target column (CSV/Parquet) or array name (NPZ, features under "X")
    target: StrictStr = Field("target", min_length=1, max_length=MAX_NAME_CHARS)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # held out, never seen by search
    image_shape: ImageShape | None = None  # (C, H, W) for rows that are images
    split_seed: int = Field(0, ge=0, le=2**32 - 1)  # seed of the held-out split

    @field_validator("image_shape")
    @classmethod
    def _bounded_image(cls, v):
        problem = image_shape_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v.startswith("sklearn:"):
            if v.split(":", 1)[1] not in SKLEARN_SETS:
                raise ValueError(f"one of {['sklearn:' + s for s in SKLEARN_SETS]} expected, but got {v!r}")
        elif "://" in v:
            raise ValueError(f"a local file path or 'sklearn:<name>' expected, but got URL {v!r}")
        elif not v.lower().endswith(FILE_SUFFIXES):
            raise ValueError(f"a file ending in one of {FILE_SUFFIXES} expected, but got {v!r}")
        return v


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # float32 (n, features)
    y: np.ndarray  # int64 class indices 0..k-1
    classes: list  # original label of each class index
    feature_names: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def load_dataset(cfg: DataConfig, base_dir: str | Path = ".") -> Dataset:
    if cfg.source.startswith("sklearn:"):
        x, labels, names = _load_sklearn(cfg.source.split(":", 1)[1])
    else:
        path = Path(cfg.source)
        path = path if path.is_absolute() else Path(base_dir) / path
        if not path.is_file():
            raise DataError(f"data.source: an existing file expected, but {str(path)!r} does not exist")
        x, labels, names = _load_file(path, cfg.target)
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"data.target: at least 2 classes expected, but got {len(classes)}")
    if cfg.image_shape is not None and int(np.prod(cfg.image_shape)) != x.shape[1]:
        raise DataError(f"data.image_shape: C*H*W must equal the feature count {x.shape[1]}, "
                        f"but got {list(cfg.image_shape)} = {int(np.prod(cfg.image_shape))}")
    return Dataset(x.astype(np.float32), y.astype(np.int64), [_plain(c) for c in classes], names)


def holdout_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train_idx, test_idx), both sorted."""
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    return np.sort(train_idx), np.sort(test_idx)


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def _load_sklearn(name: str):
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = [str(n) for n in getattr(bunch, "feature_names", [f"x{i}" for i in range(bunch.data.shape[1])])]
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target), names


def _load_file(path: Path, target: str):
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            for key in ("X", target):
                if key not in arrays:
                    raise DataError(f"data.target: NPZ arrays 'X' and {target!r} expected, "
                                    f"but {path.name} has {sorted(arrays.files)}")
            x, labels = arrays["X"], arrays[target]
        if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
            raise DataError(f"data.source: numeric array 'X' of shape (rows, ...) expected, "
                            f"but got dtype {x.dtype} shape {x.shape}")
        x = x.reshape(len(x), -1).astype(np.float64)
        if labels.ndim != 1 or len(labels) != len(x):
            raise DataError(f"data.target: {len(x)} labels expected (one per row of X), but got shape "
                            f"{labels.shape}")
        _no_missing(x, [f"x{i}" for i in range(x.shape[1])])
        return x, labels, [f"x{i}" for i in range(x.shape[1])]

    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad file, never a crash
        # only the parser's own wording (line and field counts) is shown: other readers' messages
        # (decoders, Arrow) can quote the file's bytes
        why = str(err).splitlines()[0][:200] if isinstance(err, pd.errors.ParserError) else type(err).__name__
        raise DataError(f"data.source: a readable {path.suffix} file expected, but reading "
                        f"{path.name} failed ({why})") from None
    if target not in frame.columns:
        raise DataError(f"data.target: a column of {path.name} expected, but got {target!r} "
                        f"(columns: {[str(c)[:40] for c in list(frame.columns)[:20]]})")
    labels = frame[target]
    if labels.isna().any():
        raise DataError(f"data.target: no missing labels expected, but column {target!r} has "
                        f"{int(labels.isna().sum())} missing")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"data.source: at least one feature column expected, but {path.name} has only {target!r}")
    for col in features.columns:
        if not pd.api.types.is_numeric_dtype(features[col]) or pd.api.types.is_bool_dtype(features[col]):
            # the column and its dtype only: a value from the file is never echoed
            raise DataError(f"data.source: numeric feature columns expected, but column {str(col)[:80]!r} has "
                            f"dtype {features[col].dtype}")
    x = features.to_numpy(dtype=np.float64)
    _no_missing(x, [str(c) for c in features.columns])
    return x, labels.to_numpy(), [str(c) for c in features.columns]


def _no_missing(x: np.ndarray, names: list[str]) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        cols = [names[i] for i in np.flatnonzero(bad.any(0))[:5]]
        raise DataError(f"data.source: finite feature values expected, but {int(bad.sum())} are missing "
                        f"or infinite (columns {cols})")
