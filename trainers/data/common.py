"""What every source loader shares: the error type, the loaded-but-unencoded rows, small checks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the float32 feature matrix a source may decode into memory; larger data streams (issue 11, later)
MAX_IN_MEMORY_BYTES = 8 * 2**30


class DataError(ValueError):
    """A problem with the data a spec points at; the message names the field."""


@dataclass(frozen=True)
class Rows:
    """One source's rows before class encoding: what load_dataset combines."""

    x: np.ndarray  # (n, features), float32 or float64
    labels: np.ndarray  # (n,) original labels
    feature_names: list[str]
    # "table" (CSV / Parquet / NPZ files and Parquet shard directories), "idx" or "images":
    # data.test_source must be of the same kind as data.source
    kind: str
    image_shape: tuple[int, int, int] | None = None  # known from the source itself (IDX header, declared dir)


def no_missing(x: np.ndarray, names: list[str], field: str = "data.source") -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        cols = [names[i] for i in np.flatnonzero(bad.any(0))[:5]]
        raise DataError(f"{field}: finite feature values expected, but {int(bad.sum())} are missing "
                        f"or infinite (columns {cols})")


def fits_in_memory(rows: int, features: int, field: str) -> None:
    """Refuse before decoding: a header's (or a listing's) counts decide, never the bytes read."""
    need = rows * features * 4
    if need > MAX_IN_MEMORY_BYTES:
        raise DataError(f"{field}: at most {MAX_IN_MEMORY_BYTES} bytes of float32 features in memory expected, "
                        f"but {rows} rows x {features} features need {need}")


def inside(path: Path, home: Path, field: str) -> None:
    """A file a source reaches (a shard, an image, an IDX labels file) must resolve, symlinks followed, inside
    the source's own directory `home` (already resolved): the data sandbox (service/spec/policy.py) checks only
    the source path, so a link inside a checked directory must not lead out of it. Where it leads is not shown."""
    real = Path(os.path.realpath(path))
    if real != home and home not in real.parents:
        raise DataError(f"{field}: files inside {shown(home.name)} expected, but {shown(path.name)} links "
                        f"outside it")


def shown(name: str) -> str:
    """A file name as errors show it: quoted, and short (names are the user's, contents never shown)."""
    return repr(name[:80] + ("..." if len(name) > 80 else ""))
