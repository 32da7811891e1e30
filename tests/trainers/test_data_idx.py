"""IDX (MNIST format) files written by the tests: parsing, the labels-file rule, gzip, bad files."""
import gzip
import struct

import numpy as np
import pytest

from trainers.data import DataConfig, DataError, load_dataset

CODES = {np.dtype("uint8"): 0x08, np.dtype("int16"): 0x0B, np.dtype("float32"): 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def mnist_like(folder, prefix="train", n=12, rows=4, cols=5, gz=False, seed=0):
    """images (n, rows, cols) uint8 and labels 0..2; returns (images path, images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    labels = (np.arange(n) % 3).astype(np.uint8)
    suffix = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    path = write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return path, images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_pixels_labels_and_inferred_shape(tmp_path, gz):
    path, images, labels = mnist_like(tmp_path, gz=gz)
    ds = load_dataset(DataConfig(source=str(path)))
    assert ds.x.dtype == np.float32 and np.array_equal(ds.x, images.reshape(12, 20).astype(np.float32))
    assert ds.classes == [0, 1, 2] and np.array_equal(ds.y, labels)
    assert ds.image_shape == (1, 4, 5)
    assert load_dataset(DataConfig(source=str(path), image_shape=(1, 4, 5))).image_shape == (1, 4, 5)


def test_multibyte_values_are_big_endian_and_plain_labels_found_beside_gz_images(tmp_path):
    values = np.arange(-6, 6, dtype=np.int16).reshape(3, 2, 2) * 1000
    write_idx(tmp_path / "a-images-idx3-ubyte.gz", values)
    write_idx(tmp_path / "a-labels-idx1-ubyte", np.array([0, 1, 1], dtype=np.uint8))
    ds = load_dataset(DataConfig(source=str(tmp_path / "a-images-idx3-ubyte.gz")))
    assert ds.x.reshape(-1).tolist() == list(range(-6000, 6000, 1000))


def test_declared_shape_is_checked_against_the_header(tmp_path):
    path, _, _ = mnist_like(tmp_path)
    with pytest.raises(DataError, match=r"^data.image_shape: \[1, 4, 5\] \(from 'train-images-idx3-ubyte''s "
                                        r"header\) expected, but got \[1, 5, 4\]"):
        load_dataset(DataConfig(source=str(path), image_shape=(1, 5, 4)))


def _cut(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize("damage, message", [
    (lambda d: _cut(d / "train-images-idx3-ubyte", 100),
     r"240 bytes of values for shape \(12, 4, 5\) expected, but 'train-images-idx3-ubyte' is truncated \(84 bytes\)"),
    (lambda d: _cut(d / "train-images-idx3-ubyte", 10), "3 dimension sizes expected, but 'train-images-idx3-ubyte' "
                                                        "ends inside its header"),
    (lambda d: (d / "train-images-idx3-ubyte").write_bytes(b"TOPSECRET" * 40),
     "an IDX header .* expected, but 'train-images-idx3-ubyte' does not start with one"),
    (lambda d: write_idx(d / "train-labels-idx1-ubyte", np.zeros(11, np.uint8)),
     "one label per image expected, but 'train-images-idx3-ubyte' has 12 images and 'train-labels-idx1-ubyte' 11"),
    (lambda d: write_idx(d / "train-labels-idx1-ubyte", np.zeros((12, 1), np.uint8)),
     r"a labels file of 1 integer dimension expected, but 'train-labels-idx1-ubyte' has shape \(12, 1\)"),
    (lambda d: (d / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(12, np.uint8)) + b"TOPSECRET"),
     r"exactly 12 bytes of values for shape \(12,\) expected, but 'train-labels-idx1-ubyte' has more"),
    (lambda d: (d / "train-labels-idx1-ubyte").unlink(),
     "the labels file 'train-labels-idx1-ubyte' or 'train-labels-idx1-ubyte.gz' beside "
     "'train-images-idx3-ubyte' expected, but neither exists"),
])
def test_bad_idx_files_are_clear_errors_without_contents(tmp_path, damage, message):
    path, _, _ = mnist_like(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError, match="^data.source: " + message) as err:
        load_dataset(DataConfig(source=str(path)))
    assert "TOPSECRET" not in str(err.value)


def test_bad_gzip_streams_name_the_file(tmp_path):
    path, _, _ = mnist_like(tmp_path, gz=True)
    _cut(path, len(path.read_bytes()) // 2)  # the gzip stream ends early
    with pytest.raises(DataError, match=r"'train-images-idx3-ubyte.gz' (failed \(EOFError\)|is truncated)"):
        load_dataset(DataConfig(source=str(path)))
    path.write_bytes(b"TOPSECRET not gzip")
    with pytest.raises(DataError, match=r"reading 'train-images-idx3-ubyte.gz' failed \(BadGzipFile\)") as err:
        load_dataset(DataConfig(source=str(path)))
    assert "TOPSECRET" not in str(err.value)


def test_header_sizes_are_refused_before_reading(tmp_path, monkeypatch):
    import trainers.data.common as common

    path, _, _ = mnist_like(tmp_path)
    # a uint8 value is held as its byte, its native-order copy and a float32: 1 + 1 + 4 bytes
    monkeypatch.setattr(common, "MAX_IN_MEMORY_BYTES", 12 * 20 * 6)
    load_dataset(DataConfig(source=str(path)))
    monkeypatch.setattr(common, "MAX_IN_MEMORY_BYTES", 12 * 20 * 6 - 1)
    with pytest.raises(DataError, match="12 rows x 20 features need 1440"):
        load_dataset(DataConfig(source=str(path)))
    # a header claiming 2**32-1 rows of 2**32-1 values: refused from the header, no read attempted
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**16, 2**16)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header)
    with pytest.raises(DataError, match="4294967295 rows x 4294967296 features"):
        load_dataset(DataConfig(source=str(path)))


def test_idx_naming_rule_target_and_unknown_kinds(tmp_path):
    mnist_like(tmp_path)
    with pytest.raises(DataError, match=r"^data.source: an IDX images file named like '<prefix>-images-idx3-ubyte"):
        load_dataset(DataConfig(source=str(tmp_path / "train-labels-idx1-ubyte")))
    with pytest.raises(DataError, match=r"^data.target: unset for IDX files .* expected, but got 'label'"):
        load_dataset(DataConfig(source=str(tmp_path / "train-images-idx3-ubyte"), target="label"))
    (tmp_path / "notes.txt").write_text("TOPSECRET")
    with pytest.raises(DataError, match=r"^data.source: a .csv/.parquet/.pq/.npz file, an IDX images file .* "
                                        r"expected, but got file 'notes.txt'$"):
        load_dataset(DataConfig(source=str(tmp_path / "notes.txt")))


def test_a_linked_labels_file_is_refused_inside_the_data_roots(tmp_path):
    from trainers.data.files import Files

    path, _, _ = mnist_like(tmp_path / "a")
    mnist_like(tmp_path / "b")
    (tmp_path / "a" / "train-labels-idx1-ubyte").unlink()
    (tmp_path / "a" / "train-labels-idx1-ubyte").symlink_to(tmp_path / "b" / "train-labels-idx1-ubyte")
    assert len(load_dataset(DataConfig(source=str(path))).y) == 12  # the user's own files: links followed
    with pytest.raises(DataError, match=r"^data.source: the labels file 'train-labels-idx1-ubyte' or "):
        load_dataset(DataConfig(source=str(path)), files=Files([tmp_path / "a"]))
