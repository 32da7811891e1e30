"""IDX files (the MNIST format): an images file and its labels file, optionally gzipped.

The spec names the images file; its labels file is found by MNIST's naming rule, in the same directory:
"images-idx<d>" in the name becomes "labels-idx1" (train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte -> t10k-labels-idx1-ubyte), the same compression tried first, then the other;
both are opened once through trainers.data.files (regular files; inside the data roots when sandboxed).
Format: 2 zero bytes, a dtype code, the number of dimensions d, d big-endian uint32 sizes, then the
values big-endian, row-major. Parsed with numpy; every size is checked against the header before any
value is read, so a truncated, padded or mismatched file is a DataError naming the file, never its bytes."""
from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from trainers.data.common import DataError, LabelCounts, Rows, fits_in_memory, no_missing, shown
from trainers.data.files import Files

NAME = re.compile(r"-?idx\d+-ubyte(\.gz)?$", re.IGNORECASE)  # what marks a path as IDX
IMAGES = re.compile(r"images-idx\d+", re.IGNORECASE)
MAX_IDX_DIMS = 4  # rows plus up to 3 per-row dimensions
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def is_idx(path: Path) -> bool:
    return bool(NAME.search(path.name))


def labels_path(images: Path, field: str, files: Files) -> Path:
    match = IMAGES.search(images.name)
    if match is None:
        raise DataError(f"{field}: an IDX images file named like '<prefix>-images-idx3-ubyte[.gz]' expected "
                        f"(its labels are '<prefix>-labels-idx1-ubyte[.gz]'), but got {shown(images.name)}")
    name = images.name[:match.start()] + "labels-idx1" + images.name[match.end():]
    plain = name[:-3] if name.lower().endswith(".gz") else name
    candidates = [images.with_name(name), images.with_name(plain if name != plain else plain + ".gz")]
    for candidate in candidates:
        if files.kind(candidate, field) == "file":
            return candidate
    raise DataError(f"{field}: the labels file {shown(candidates[0].name)} or {shown(candidates[1].name)} "
                    f"beside {shown(images.name)} expected, but neither exists")


def load_idx(images: Path, image_shape: tuple[int, int, int] | None, field: str, files: Files) -> Rows:
    """Images (n, d1, ...) flattened to float32 rows; labels (n,) integers. image_shape: the declared
    (C, H, W), checked against the header; inferred as (1, rows, cols) for idx3 when not declared.
    A sample (files.sample_rows) reads the first images only, and every label."""
    labels_file = labels_path(images, field, files)
    x = read_idx(images, field, files, files.sample_rows)
    if x.ndim < 2:
        raise DataError(f"{field}: an images file of at least 2 dimensions (rows, ...) expected, but "
                        f"{shown(images.name)} has shape {x.shape}")
    labels = read_idx(labels_file, field, files)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{field}: a labels file of 1 integer dimension expected, but {shown(labels_file.name)} "
                        f"has shape {labels.shape} and dtype {labels.dtype}")
    counts = None
    if files.sample_rows is not None:
        counts = LabelCounts()
        counts.add(labels.astype(np.int64).tolist())
        labels = labels[:len(x)]
    if len(labels) != len(x):
        raise DataError(f"{field}: one label per image expected, but {shown(images.name)} has {len(x)} images "
                        f"and {shown(labels_file.name)} {len(labels)} labels")
    per_row = tuple(int(d) for d in x.shape[1:])
    if image_shape is not None:
        declared = tuple(int(d) for d in image_shape)
        # an idx3 file is (rows, H, W): one channel; other layouts only need the product to match
        expected = (1, *per_row) if len(per_row) == 2 else None
        if (expected is not None and declared != expected) or np.prod(declared) != np.prod(per_row):
            raise DataError(f"data.image_shape: {list(expected) if expected else per_row} (from "
                            f"{shown(images.name)}'s header) expected, but got {list(declared)}")
    elif len(per_row) == 2:
        image_shape = (1, *per_row)
    flat = x.reshape(len(x), -1).astype(np.float32, copy=False)
    names = [f"x{i}" for i in range(flat.shape[1])]
    if not np.issubdtype(x.dtype, np.integer):
        no_missing(flat, names, field)
    return Rows(flat, labels.astype(np.int64), names, "idx",
                tuple(int(d) for d in image_shape) if image_shape is not None else None, counts)


def read_idx(path: Path, field: str, files: Files, max_rows: int | None = None) -> np.ndarray:
    try:
        with files.open(path, field) as raw:
            with (gzip.GzipFile(fileobj=raw, mode="rb") if path.name.lower().endswith(".gz") else raw) as f:
                return _parse(f, path.name, field, max_rows)
    except (OSError, EOFError, zlib.error) as err:  # bad gzip stream or unreadable file: its type only
        raise DataError(f"{field}: a readable IDX file expected, but reading {shown(path.name)} failed "
                        f"({type(err).__name__})") from None


def _parse(f, name: str, field: str, max_rows: int | None = None) -> np.ndarray:
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in DTYPES or not 1 <= head[3] <= MAX_IDX_DIMS:
        raise DataError(f"{field}: an IDX header (0, 0, dtype code in {[hex(c) for c in DTYPES]}, 1..{MAX_IDX_DIMS} "
                        f"dimensions) expected, but {shown(name)} does not start with one")
    dtype, ndim = np.dtype(DTYPES[head[2]]), head[3]
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{field}: {ndim} dimension sizes expected, but {shown(name)} ends inside its header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4"))
    count = int(np.prod(shape, dtype=object))
    # decoded, a value is held up to three times: the bytes read, the native-order copy, the float32 row
    fits_in_memory(shape[0], count // shape[0] if shape[0] else 0, field, itemsize=2 * dtype.itemsize + 4)
    if max_rows is not None and shape[0] > max_rows:  # a sample: the first rows only
        shape = (max_rows, *shape[1:])
        count = int(np.prod(shape, dtype=object))
        data = f.read(count * dtype.itemsize)
        if len(data) < count * dtype.itemsize:
            raise DataError(f"{field}: values for shape {shape} expected, but {shown(name)} is truncated")
        return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)
    need = count * dtype.itemsize
    data = f.read(need)
    if len(data) < need:
        raise DataError(f"{field}: {need} bytes of values for shape {shape} expected, but {shown(name)} is "
                        f"truncated ({len(data)} bytes)")
    if f.read(1):
        raise DataError(f"{field}: exactly {need} bytes of values for shape {shape} expected, but {shown(name)} "
                        f"has more (a mismatched header?)")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)
