"""The spec's `data` section: where the rows come from and how the held-out split is made."""
from __future__ import annotations

from typing import Literal

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from trainers.families.config import ImageShape, image_shape_problem

SKLEARN_SETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")  # diabetes: a numeric target
FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".npz")  # single-file tabular sources
MAX_PATH_CHARS = 4096  # data.source, data.test_source
MAX_NAME_CHARS = 256  # data.target, and each column named in data.categorical / numeric / drop
MAX_LISTED_COLUMNS = 2000  # columns named in each of data.categorical / numeric / drop
MAX_NA_VALUES = 64  # markers in data.na_values
DEFAULT_TARGET = "target"
ColumnName = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # What a source is, decided by what is on disk when it is loaded (a relative path is relative to the
    # spec file's directory):
    #   sklearn:<name>                          scikit-learn's bundled set (digits, iris, wine, breast_cancer,
    #                                           diabetes)
    #   data/set.csv | .parquet | .pq | .npz    one file; `target` is the label column (NPZ: the label
    #                                           array, features under "X")
    #   data/shards/                            a directory of *.parquet shards, read as one table with the
    #                                           rules of one Parquet file (same columns in every shard)
    #   data/train-images-idx3-ubyte[.gz]       IDX (MNIST format): the images file; its labels are the file
    #                                           beside it with "images-idx3" -> "labels-idx1" in the name;
    #                                           image_shape is inferred as (1, rows, cols), checked if given
    #   data/images/                            root/<class>/*.png|jpg|jpeg, class = subfolder name (sorted);
    #                                           image_shape [C, H, W] is required (C 1: grayscale, 3: RGB);
    #                                           each image is resized to cover H x W and center-cropped
    # IDX files and image directories carry their own labels: `target` stays unset for them.
    # strict: bytes are never decoded into a path
    source: StrictStr = Field(min_length=1, max_length=MAX_PATH_CHARS)
    # A predefined test set of the same kind as `source` (say t10k-images-idx3-ubyte.gz, or an image directory
    # with the same class subfolders): the held-out split IS these rows, never re-split, and test_fraction
    # and split_seed are ignored. Its features must match source's, and its labels must be among source's
    # classes (the union of classes is source's).
    test_source: StrictStr | None = Field(None, min_length=1, max_length=MAX_PATH_CHARS)
    # target column (CSV/Parquet) or array name (NPZ, features under "X")
    target: StrictStr = Field(DEFAULT_TARGET, min_length=1, max_length=MAX_NAME_CHARS)
    # what the target is: classes, or a number to predict (regression). auto: decided from the target's
    # values by trainers.task.detect (text and booleans are classes; a number is regression when some value
    # is not whole, or it has more than 20 distinct whole values); the decision is printed and recorded
    task: Literal["auto", "classification", "regression"] = "auto"
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # held out, never seen by search; unused with test_source
    image_shape: ImageShape | None = None  # (C, H, W) for rows that are images
    split_seed: int = Field(0, ge=0, le=2**32 - 1)  # seed of the held-out split
    # Parquet sources (a file or a shard directory): trials read the training rows in batches through
    # Ray Data (each trial's Ray Train worker streams its shard) instead of every trial holding a copy;
    # torch families, executor ray_train with one worker per trial. "auto": stream when the source's
    # files are larger than trainers.stream.STREAM_ABOVE_BYTES and the sweep can stream
    stream: bool | Literal["auto"] = "auto"
    # Tables (CSV / Parquet, and NPZ with missing values): each column is numeric or categorical by its
    # type (trainers.tables.schema); these override it. categorical: columns to treat as categories
    # (integer codes, say); numeric: columns to read as numbers; drop: columns to leave out (IDs, leaks).
    categorical: list[ColumnName] = Field(default_factory=list, max_length=MAX_LISTED_COLUMNS)
    numeric: list[ColumnName] = Field(default_factory=list, max_length=MAX_LISTED_COLUMNS)
    drop: list[ColumnName] = Field(default_factory=list, max_length=MAX_LISTED_COLUMNS)
    # cell values that mean "missing" besides empty cells and NaN (e.g. ["?", "NA", "-"]), in CSV and
    # Parquet sources alike
    na_values: list[Annotated[StrictStr, Field(max_length=MAX_NAME_CHARS)]] = Field(default_factory=list,
                                                                                    max_length=MAX_NA_VALUES)

    def declares_columns(self) -> bool:
        """Whether the spec shapes the table's columns (which makes any tabular source a typed table)."""
        return bool(self.categorical or self.numeric or self.na_values)

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
        # any other path: its kind (file suffix, IDX name, directory contents) is checked when it is loaded
        return v

    @field_validator("test_source")
    @classmethod
    def _local_test_source(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("sklearn:") or "://" in v):
            raise ValueError(f"a local file or directory path expected, but got {v!r}")
        return v
