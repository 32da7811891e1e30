"""Image directories: root/<class>/*.png|jpg|jpeg, one subfolder per class (classes sorted by name).

Each image is decoded with Pillow (PNG and JPEG decoders only), turned upright by its EXIF orientation,
converted to the declared channels (C=1: grayscale "L", C=3: "RGB"; alpha is dropped), resized so it
covers H x W (the shorter side fits) and center-cropped to H x W, and stored as a float32 row of C*H*W
values (channel-major, like NPZ images) in [0, 255], digits' raw pixel scale: the models standardise.
Names starting with "." (.DS_Store, .ipynb_checkpoints) are skipped; any other non-image entry is an
error naming it, so a stray file is never silently dropped nor decoded as data. Every folder and file is
listed and opened through trainers.data.files (when sandboxed, no link is followed). Sizes are checked
before decoding (bytes on disk, pixels in the header) and before resizing (the covering size)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from trainers.data.common import DataError, LabelCounts, Rows, fits_in_memory, shown
from trainers.data.files import Files

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_IMAGE_FILES = 1_000_000  # images in one directory tree, all classes together
MAX_IMAGE_BYTES = 32 * 2**20  # one image file on disk
MAX_IMAGE_PIXELS = 40_000_000  # one image's width * height from its header, checked before decoding
MAX_CLASSES = 10_000  # class subfolders
MODES = {1: "L", 3: "RGB"}


def list_images(root: Path, field: str, files: Files) -> list[tuple[str, Path]]:
    """(class name, file) for every image, classes and files in name order. Lists only: nothing decoded."""
    classes = _visible(root, MAX_CLASSES, f"{field}: at most {MAX_CLASSES} class subfolders expected, but "
                                          f"{shown(root.name)} has more", field, files)
    for name, kind in classes:
        if kind != "dir":
            raise DataError(f"{field}: only class subfolders in an image directory expected, but got "
                            f"{'file' if kind == 'file' else 'entry'} {shown(name)}")
    if not classes:
        raise DataError(f"{field}: class subfolders root/<class>/*.png|jpg (or *.parquet shards) expected, but "
                        f"directory {shown(root.name)} is empty")
    found: list[tuple[str, Path]] = []
    for folder, _ in classes:
        entries = _visible(root / folder, MAX_IMAGE_FILES - len(found),
                           f"{field}: at most {MAX_IMAGE_FILES} images expected, but {shown(root.name)} has more",
                           field, files)
        if not entries:
            raise DataError(f"{field}: at least one image per class folder expected, but {shown(folder)} has none")
        for name, kind in entries:
            if kind != "file" or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                what = {"dir": "folder", "file": "file"}.get(kind, "entry")
                raise DataError(f"{field}: only {'/'.join(IMAGE_SUFFIXES)} files in a class folder expected, but "
                                f"got {what} {shown(folder + '/' + name)}")
            found.append((folder, root / folder / name))
    return found


def load_image_dir(root: Path, image_shape: tuple[int, int, int] | None, field: str, files: Files) -> Rows:
    """A sample (files.sample_rows) decodes that many images spread over the listing; every image's
    label is counted from its folder."""
    if image_shape is None:
        raise DataError(f"data.image_shape: [C, H, W] (C 1 or 3) expected for image directory "
                        f"{shown(root.name)}, but got none")
    c, h, w = (int(d) for d in image_shape)
    if c not in MODES:
        raise DataError(f"data.image_shape: C of 1 (grayscale) or 3 (RGB) expected for an image directory, "
                        f"but got {c}")
    if h * w > MAX_IMAGE_PIXELS:
        raise DataError(f"data.image_shape: H*W <= {MAX_IMAGE_PIXELS} (MAX_IMAGE_PIXELS) expected, but got "
                        f"{h}*{w} = {h * w}")
    listed = list_images(root, field, files)
    counts = None
    if files.sample_rows is not None and len(listed) > files.sample_rows:
        counts = LabelCounts()
        counts.add([label for label, _ in listed])
        listed = [listed[i] for i in np.linspace(0, len(listed) - 1, files.sample_rows).astype(int)]
    fits_in_memory(len(listed), c * h * w, field)
    x = np.empty((len(listed), c * h * w), dtype=np.float32)
    for i, (label, path) in enumerate(listed):
        x[i] = decode(path, (c, h, w), f"{label}/{path.name}", field, files)
    labels = np.array([label for label, _ in listed])
    return Rows(x, labels, [f"x{i}" for i in range(x.shape[1])], "images", (c, h, w), counts)


def decode(path: Path, shape: tuple[int, int, int], where: str, field: str, files: Files | None = None) -> np.ndarray:
    """One image as a float32 row of C*H*W; a DataError naming the file (never quoting it) otherwise."""
    from PIL import Image, ImageOps

    c, h, w = shape
    try:
        with (files or Files()).open(path, field) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_IMAGE_BYTES:
                raise DataError(f"{field}: image files of at most {MAX_IMAGE_BYTES} bytes expected, but "
                                f"{shown(where)} has {size}")
            with warnings.catch_warnings():
                # Pillow's own decompression-bomb guard, as an error rather than a warning
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(f, formats=["PNG", "JPEG"]) as img:
                    pixels = img.width * img.height
                    if pixels > MAX_IMAGE_PIXELS:
                        raise DataError(f"{field}: images of at most {MAX_IMAGE_PIXELS} pixels expected, but "
                                        f"{shown(where)} is {img.width}x{img.height}")
                    img.load()
                    img = ImageOps.exif_transpose(img).convert(MODES[c])
                    img = _cover_crop(img, h, w, where, field)
                    array = np.asarray(img, dtype=np.float32)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file: its type only, no bytes
        raise DataError(f"{field}: a decodable PNG or JPEG image expected, but {shown(where)} failed "
                        f"({type(err).__name__})") from None
    return (array[None] if c == 1 else array.transpose(2, 0, 1)).reshape(-1)


def _cover_crop(img, h: int, w: int, where: str = "", field: str = "data.source"):
    """Scale so the image covers h x w (the shorter side, relative to the target, fits), then cut the middle.
    The covering size is checked first: a thin image scaled to cover a large shape could be enormous."""
    from PIL import Image

    if img.size != (w, h):
        scale = max(w / img.width, h / img.height)
        size = (max(w, round(img.width * scale)), max(h, round(img.height * scale)))
        if size[0] * size[1] > MAX_IMAGE_PIXELS:
            raise DataError(f"{field}: images that cover {h}x{w} within {MAX_IMAGE_PIXELS} pixels expected, but "
                            f"{shown(where)} ({img.width}x{img.height}) would need {size[0]}x{size[1]}")
        img = img.resize(size, Image.Resampling.BILINEAR)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def _visible(folder: Path, limit: int, too_many: str, field: str, files: Files) -> list[tuple[str, str]]:
    """(name, kind) of the folder's entries not starting with ".", by name; refused past `limit`."""
    # the hidden ones count towards the listing's limit too: a folder of a million dotfiles is no cheaper
    kept = [(name, kind) for name, kind in files.listdir(folder, field, limit) if not name.startswith(".")]
    if len(kept) > limit:
        raise DataError(too_many)
    return kept
