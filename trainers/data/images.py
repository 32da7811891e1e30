"""Image directories: root/<class>/*.png|jpg|jpeg, one subfolder per class (classes sorted by name).

Each image is decoded with Pillow (PNG and JPEG decoders only), turned upright by its EXIF orientation,
converted to the declared channels (C=1: grayscale "L", C=3: "RGB"; alpha is dropped), resized so it
covers H x W (the shorter side fits) and center-cropped to H x W, and stored as a float32 row of C*H*W
values (channel-major, like NPZ images) in [0, 255], digits' raw pixel scale: the models standardise.
Names starting with "." (.DS_Store, .ipynb_checkpoints) are skipped; any other non-image entry is an
error naming it, so a stray file is never silently dropped nor decoded as data. Symlinks are followed
but must stay inside the directory (common.inside)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from trainers.data.common import DataError, Rows, fits_in_memory, inside, shown

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_IMAGE_FILES = 1_000_000  # images in one directory tree, all classes together
MAX_IMAGE_BYTES = 32 * 2**20  # one image file on disk
MAX_IMAGE_PIXELS = 40_000_000  # one image's width * height from its header, checked before decoding
MAX_CLASSES = 10_000  # class subfolders
MODES = {1: "L", 3: "RGB"}


def list_images(root: Path, field: str) -> list[tuple[str, Path]]:
    """(class name, file) for every image, classes and files in name order. Lists only: nothing decoded."""
    home = Path(os.path.realpath(root))
    classes = _visible(root, MAX_CLASSES, f"{field}: at most {MAX_CLASSES} class subfolders expected, but "
                                          f"{shown(root.name)} has more")
    for entry in classes:
        if not entry.is_dir():
            raise DataError(f"{field}: only class subfolders in an image directory expected, but got file "
                            f"{shown(entry.name)}")
        inside(entry, home, field)
    if not classes:
        raise DataError(f"{field}: class subfolders root/<class>/*.png|jpg (or *.parquet shards) expected, but "
                        f"directory {shown(root.name)} is empty")
    found: list[tuple[str, Path]] = []
    for folder in classes:
        entries = _visible(folder, MAX_IMAGE_FILES - len(found),
                           f"{field}: at most {MAX_IMAGE_FILES} images expected, but {shown(root.name)} has more")
        if not entries:
            raise DataError(f"{field}: at least one image per class folder expected, but "
                            f"{shown(folder.name)} has none")
        for entry in entries:
            if entry.is_dir() or entry.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{field}: only {'/'.join(IMAGE_SUFFIXES)} files in a class folder expected, but "
                                f"got {'folder' if entry.is_dir() else 'file'} {shown(folder.name + '/' + entry.name)}")
            inside(entry, home, field)
            found.append((folder.name, entry))
    return found


def load_image_dir(root: Path, image_shape: tuple[int, int, int] | None, field: str) -> Rows:
    if image_shape is None:
        raise DataError(f"data.image_shape: [C, H, W] (C 1 or 3) expected for image directory "
                        f"{shown(root.name)}, but got none")
    c, h, w = (int(d) for d in image_shape)
    if c not in MODES:
        raise DataError(f"data.image_shape: C of 1 (grayscale) or 3 (RGB) expected for an image directory, "
                        f"but got {c}")
    files = list_images(root, field)
    fits_in_memory(len(files), c * h * w, field)
    x = np.empty((len(files), c * h * w), dtype=np.float32)
    for i, (label, path) in enumerate(files):
        x[i] = decode(path, (c, h, w), f"{label}/{path.name}", field)
    labels = np.array([label for label, _ in files])
    return Rows(x, labels, [f"x{i}" for i in range(x.shape[1])], "images", (c, h, w))


def decode(path: Path, shape: tuple[int, int, int], where: str, field: str) -> np.ndarray:
    """One image as a float32 row of C*H*W; a DataError naming the file (never quoting it) otherwise."""
    from PIL import Image, ImageOps

    c, h, w = shape
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise DataError(f"{field}: image files of at most {MAX_IMAGE_BYTES} bytes expected, but "
                            f"{shown(where)} has {size}")
        with warnings.catch_warnings():
            # Pillow's own decompression-bomb guard, as an error rather than a warning
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=["PNG", "JPEG"]) as img:
                pixels = img.width * img.height
                if pixels > MAX_IMAGE_PIXELS:
                    raise DataError(f"{field}: images of at most {MAX_IMAGE_PIXELS} pixels expected, but "
                                    f"{shown(where)} is {img.width}x{img.height}")
                img.load()
                img = ImageOps.exif_transpose(img).convert(MODES[c])
                img = _cover_crop(img, h, w)
                array = np.asarray(img, dtype=np.float32)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file: its type only, no bytes
        raise DataError(f"{field}: a decodable PNG or JPEG image expected, but {shown(where)} failed "
                        f"({type(err).__name__})") from None
    return (array[None] if c == 1 else array.transpose(2, 0, 1)).reshape(-1)


def _cover_crop(img, h: int, w: int):
    """Scale so the image covers h x w (the shorter side, relative to the target, fits), then cut the middle."""
    from PIL import Image

    if img.size != (w, h):
        scale = max(w / img.width, h / img.height)
        size = (max(w, round(img.width * scale)), max(h, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def _visible(folder: Path, limit: int, too_many: str) -> list[Path]:
    """The folder's entries not starting with ".", by name; stops listing once past `limit`."""
    kept = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith("."):
                kept.append(Path(entry.path))
                if len(kept) > limit:
                    raise DataError(too_many)
    return sorted(kept, key=lambda p: p.name)
