"""One in-memory Dataset from a DataConfig: the source's rows, then data.test_source's rows if given."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainers.data import idx, images, tabular
from trainers.data.common import DataError, Frame, Rows, check_labels, check_targets, shown
from trainers.data.config import DEFAULT_TARGET, FILE_SUFFIXES, DataConfig
from trainers.data.files import Files
from trainers.data.frames import frame_rows
from trainers.families.config import MAX_CLASSES
from trainers.tables import ColumnSchema, Table, is_table
from trainers.task import detect, get_task


KINDS = {"table": "tabular", "idx": "IDX", "images": "image directory"}  # Rows.kind as errors name it


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray | Table  # float32 (n, features), or a Table of typed columns (trainers.tables)
    y: np.ndarray  # int64 class indices 0..k-1, or a regression target's float64 values
    classes: list  # original label of each class index (a regression target: none)
    feature_names: list[str]
    # the last n_predefined_test rows are data.test_source's: the held-out split itself (split_indices)
    n_predefined_test: int = 0
    # (C, H, W): data.image_shape, or what the source itself says (an idx3 header) when that is unset
    image_shape: tuple[int, int, int] | None = None
    schema: ColumnSchema | None = None  # a table's column schema (None: a plain matrix)
    dropped_rows: int = 0  # rows left out because their target was missing
    # a sample (Files.sample_rows: the REST API checking a spec): x and y are the first rows only, and
    # source_counts counts every labelled row of data.source per class. Never trained on.
    sampled: bool = False
    sampled_counts: np.ndarray | None = None
    task: str = "classification"  # trainers.task: data.task, or what auto decided

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_outputs(self) -> int:
        """A model's outputs: one per class, or the one value of a regression target."""
        return get_task(self.task).n_outputs(self.n_classes)

    @property
    def source_counts(self) -> np.ndarray:
        """Labelled rows of data.source per class (data.test_source's rows not included); a regression
        target's rows in one count."""
        if self.sampled_counts is not None:
            return self.sampled_counts
        n = len(self.y) - self.n_predefined_test
        if self.task == "regression":
            return np.array([n], dtype=np.int64)
        return np.bincount(self.y[:n], minlength=self.n_classes)


def load_dataset(cfg: DataConfig, base_dir: str | Path = ".", files: Files | None = None) -> Dataset:
    """files: how data files are opened (trainers.data.files: sandboxed by data roots, sampled for a
    check); default Files.from_env(), the roots a job inherits (RAYSEMBLE_DATA_ROOTS) or none."""
    files = files or Files.from_env()
    train = _rows(cfg.source, cfg, Path(base_dir), "data.source", files)
    test = (_rows(cfg.test_source, cfg, Path(base_dir), "data.test_source", files)
            if cfg.test_source is not None else None)
    dropped = 0
    kinds = [KINDS["table"] if isinstance(r, Frame) else KINDS[r.kind] for r in (train, test) if r is not None]
    if len(set(kinds)) > 1:
        raise DataError(f"data.test_source: a source of data.source's kind ({kinds[0]}) expected, but got {kinds[1]}")
    if isinstance(train, Frame) or isinstance(test, Frame):
        train, test, dropped = frame_rows(_as_frame(train, cfg), _as_frame(test, cfg), cfg)
    task = _task(cfg, train)
    sampled_counts = None
    if task == "regression":
        classes, y = [], check_targets(train.labels)
        if train.counts is not None:
            check_targets(np.array(list(train.counts), dtype=object))
            sampled_counts = np.array([train.counts.rows], dtype=np.int64)
    else:
        classes, y, sampled_counts = _classes(train)
    x, n_test = _float32(train.x), 0
    if test is not None:
        y_test = check_targets(_test_rows(train, test).labels, "data.test_source") if task == "regression" \
            else _test_labels(train, test, classes)
        x = Table.concat([x, test.x]) if is_table(x) else np.concatenate([x, _float32(test.x)])
        y = np.concatenate([y, y_test])
        n_test = len(y_test)
    image_shape = cfg.image_shape if cfg.image_shape is not None else train.image_shape
    if image_shape is not None and is_table(x):
        raise DataError("data.image_shape: image rows (numbers only, no missing values) expected, but "
                        "data.source is a table of typed columns")
    if image_shape is not None and int(np.prod(image_shape)) != x.shape[1]:
        raise DataError(f"data.image_shape: C*H*W must equal the feature count {x.shape[1]}, "
                        f"but got {list(image_shape)} = {int(np.prod(image_shape))}")
    return Dataset(x, y, [_plain(c) for c in classes], train.feature_names, n_test,
                   tuple(int(d) for d in image_shape) if image_shape is not None else None,
                   x.schema if is_table(x) else None, dropped, train.counts is not None, sampled_counts, task)


def _task(cfg: DataConfig, train: Rows) -> str:
    """data.task, or under auto what the target's values say (trainers.task.detect): every row's label
    where a sample counted them (as many as were kept), else the loaded ones."""
    if cfg.task != "auto":
        if cfg.task == "regression" and train.kind != "table":
            raise DataError(f"data.task: classification for {KINDS[train.kind]} data (its labels are classes) "
                            f"expected, but got 'regression'")
        return cfg.task
    if train.kind != "table":
        return "classification"
    # a sample's counted labels as numpy infers them (numbers stay numbers; object arrays read as text)
    seen = np.array(list(train.counts)) if train.counts is not None else np.asarray(train.labels)
    try:
        values = check_labels(seen)
    except DataError:
        return "classification"  # the class checks name the problem
    if values.dtype == object and len(values) and all(isinstance(v, str) for v in values.tolist()):
        return "classification"
    return detect(values, bool(train.counts is not None and train.counts.many))


def _classes(train: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(classes, each row's class index, a sample's per-class counts of every row or None)."""
    labels = check_labels(train.labels)
    sampled_counts = None
    if train.counts is not None:  # a sample: every row's label counted, the first rows' kept
        if train.counts.many:
            raise DataError(f"data.target: at most {MAX_CLASSES} classes expected, but got more")
        everyone = check_labels(np.array(list(train.counts), dtype=object if labels.dtype == object else None))
        classes = _unique(everyone)
        y = _codes(classes, labels)
        sampled_counts = np.array([train.counts[_original(train.counts, c)] for c in classes], dtype=np.int64)
    else:
        classes = _unique(labels)
        y = _codes(classes, labels)
    if len(classes) < 2:
        raise DataError(f"data.target: at least 2 classes expected, but got {len(classes)}")
    if len(classes) > MAX_CLASSES:
        raise DataError(f"data.target: at most {MAX_CLASSES} classes expected, but got {len(classes)} (a number "
                        f"to predict is data.task: regression)")
    return classes, y.astype(np.int64), sampled_counts


def _unique(labels: np.ndarray) -> np.ndarray:
    try:
        return np.unique(labels)
    except TypeError:  # labels of kinds that do not order (check_labels makes them one kind): as text
        return np.unique(labels.astype(str))


def _codes(classes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.Index(classes).get_indexer(labels).astype(np.int64)


def _original(counts: dict, label):
    """The key of counts a checked label came from (check_labels may have turned it into text)."""
    return label if label in counts else next(k for k in counts if str(k) == str(label))


def _float32(x):
    return x if is_table(x) else x.astype(np.float32, copy=False)


def _as_frame(rows: Rows | Frame | None, cfg: DataConfig) -> Frame | None:
    """A matrix source beside a table one (an NPZ beside a CSV): its columns as a frame too."""
    if rows is None or isinstance(rows, Frame):
        return rows
    import pandas as pd

    return Frame(pd.DataFrame(rows.x, columns=rows.feature_names).assign(**{cfg.target: rows.labels}), "the NPZ file")


def holdout_split(y: np.ndarray, test_fraction: float, seed: int,
                  task: str = "classification") -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train_idx, test_idx), both sorted: on the classes, or a regression target's quantile
    bins (trainers.task.Regression.strata)."""
    from sklearn.model_selection import train_test_split

    idx_ = np.arange(len(y))
    groups = max(2, int(round(1 / min(test_fraction, 1 - test_fraction))))
    strata = get_task(task).strata(y, groups)
    train_idx, test_idx = train_test_split(idx_, test_size=test_fraction, stratify=strata, random_state=seed)
    return np.sort(train_idx), np.sort(test_idx)


def split_indices(dataset: Dataset, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """The held-out split (train_idx, test_idx), both sorted: data.test_source's rows when there are
    some (never re-split), else a stratified test_fraction of the rows drawn with split_seed."""
    if dataset.n_predefined_test:
        n_train = len(dataset.y) - dataset.n_predefined_test
        return np.arange(n_train), np.arange(n_train, len(dataset.y))
    return holdout_split(dataset.y, cfg.test_fraction, cfg.split_seed, dataset.task)


def _rows(source: str, cfg: DataConfig, base_dir: Path, field: str, files: Files) -> Rows | Frame:
    if source.startswith("sklearn:"):
        return tabular.load_sklearn(source.split(":", 1)[1])
    path = Path(source)
    path = path if path.is_absolute() else base_dir / path
    kind = files.kind(path, field)
    if kind == "missing":
        if files.sandboxed:  # the same words whatever is there: nothing about the path is told
            raise files.refused(path, field, "file or directory")
        raise DataError(f"{field}: an existing file or directory expected, but {str(path)!r} does not exist")
    if kind == "dir":
        entries = files.listdir(path, field)
        if any(name.lower().endswith(tabular.PARQUET_SUFFIXES) and not name.startswith((".", "_")) and k == "file"
               for name, k in entries):
            return tabular.load_parquet_dir(path, cfg.target, field, files, cfg.na_values)
        _no_target(cfg, "an image directory (classes are its subfolders)")
        return images.load_image_dir(path, cfg.image_shape, field, files)
    if path.name.lower().endswith(FILE_SUFFIXES):
        return tabular.load_file(path, cfg.target, field, files, cfg.na_values)
    if idx.is_idx(path):
        _no_target(cfg, "IDX files (labels are the matching labels-idx1 file)")
        return idx.load_idx(path, cfg.image_shape, field, files)
    raise DataError(f"{field}: a {'/'.join(FILE_SUFFIXES)} file, an IDX images file (*-images-idx3-ubyte[.gz]), "
                    f"a directory of *.parquet shards or an image directory root/<class>/*.png expected, "
                    f"but got file {shown(path.name)}")


def _no_target(cfg: DataConfig, kind: str) -> None:
    if cfg.target != DEFAULT_TARGET:
        raise DataError(f"data.target: unset for {kind} expected, but got {cfg.target!r}")


def _test_rows(train: Rows, test: Rows) -> Rows:
    """test, once its features match train's; a DataError naming data.test_source otherwise."""
    if test.kind != train.kind:
        raise DataError(f"data.test_source: a source of data.source's kind ({KINDS[train.kind]}) expected, but "
                        f"got {KINDS[test.kind]}")
    if test.x.shape[1] != train.x.shape[1]:
        raise DataError(f"data.test_source: {train.x.shape[1]} features like data.source expected, but got "
                        f"{test.x.shape[1]}")
    if test.feature_names != train.feature_names:
        diff = [n[:40] for n in test.feature_names if n not in set(train.feature_names)][:5]
        raise DataError(f"data.test_source: data.source's feature columns in the same order expected, but got "
                        f"different ones{f' (not in data.source: {diff})' if diff else ' (reordered)'}")
    if train.image_shape is not None and test.image_shape is not None and test.image_shape != train.image_shape:
        raise DataError(f"data.test_source: image shape {list(train.image_shape)} like data.source expected, "
                        f"but got {list(test.image_shape)}")
    if len(test.labels) == 0:
        raise DataError("data.test_source: at least one row expected, but got 0")
    return test


def _test_labels(train: Rows, test: Rows, classes: np.ndarray) -> np.ndarray:
    """test's labels as indices into train's classes; a DataError naming data.test_source otherwise."""
    import pandas as pd

    test = _test_rows(train, test)
    test_labels = check_labels(test.labels, "data.test_source")
    try:
        codes = pd.Index(classes).get_indexer(test_labels)
        # a sample's labels: the first rows' are test_labels, every row's are the counts' keys
        every = check_labels(np.array(list(test.counts)), "data.test_source") if test.counts else test_labels
        unknown = pd.Index(classes).get_indexer(every) < 0
    except (TypeError, ValueError):  # labels pandas cannot compare with the classes: no match
        codes, every = np.full(len(test.labels), -1), test_labels
        unknown = np.ones(len(every), dtype=bool)
    if unknown.any():
        # class folder names are paths, shown; labels read from inside a file are not
        names = (f" (classes {[str(v)[:40] for v in np.unique(every[unknown])[:5]]})"
                 if test.kind == "images" else "")
        rows = (sum(test.counts[k] for k, bad in zip(test.counts, unknown) if bad) if test.counts
                else int(unknown.sum()))
        raise DataError(f"data.test_source: labels among data.source's {len(classes)} classes expected, but "
                        f"{rows} rows have a label data.source lacks{names}")
    return codes.astype(np.int64)


def _plain(v):
    return v.item() if hasattr(v, "item") else v
