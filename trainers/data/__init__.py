"""Datasets a spec's `data` section points at, loaded into memory. One module per source kind:
tabular (scikit-learn's bundled sets, a CSV / Parquet / NPZ file, a directory of Parquet shards),
idx (MNIST-format IDX files), images (root/<class>/*.png|jpg); dataset composes them into one Dataset,
data.test_source's rows appended as the predefined held-out split. config holds the spec section.
The limits are re-exported to read; each is used from its own module (patch it there in tests)."""
from trainers.data.common import MAX_IN_MEMORY_BYTES, DataError
from trainers.data.config import FILE_SUFFIXES, MAX_NAME_CHARS, MAX_PATH_CHARS, SKLEARN_SETS, DataConfig
from trainers.data.dataset import Dataset, holdout_split, load_dataset, split_indices
from trainers.data.idx import MAX_IDX_DIMS
from trainers.data.images import MAX_CLASSES, MAX_IMAGE_BYTES, MAX_IMAGE_FILES, MAX_IMAGE_PIXELS
from trainers.data.tabular import MAX_PARQUET_SHARDS

__all__ = ["DataConfig", "DataError", "Dataset", "load_dataset", "holdout_split", "split_indices",
           "SKLEARN_SETS", "FILE_SUFFIXES", "MAX_PATH_CHARS", "MAX_NAME_CHARS", "MAX_IN_MEMORY_BYTES",
           "MAX_IDX_DIMS", "MAX_CLASSES", "MAX_IMAGE_BYTES", "MAX_IMAGE_FILES", "MAX_IMAGE_PIXELS",
           "MAX_PARQUET_SHARDS"]
