"""Image directories root/<class>/*.png|jpg: decoding, channels, resize/crop, bad inputs, limits."""
import os

import numpy as np
import pytest
from PIL import Image

import trainers.data.common as common
import trainers.data.images as images
from trainers.data import DataConfig, DataError, load_dataset

CLASSES = ["bird", "cat", "dog"]


def _save(path, mode, size, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def _tree(root):
    """3 classes x 6 images: mixed sizes, RGB and grayscale, a JPEG, a palette PNG; returns root."""
    for k, name in enumerate(CLASSES):
        for i in range(6):
            size = [(8, 8), (16, 12), (5, 9), (30, 30), (8, 20), (12, 8)][i]
            if i == 1:
                _save(root / name / f"img{i}.png", "L", size, 40 * k + i)
            elif i == 4:
                _save(root / name / f"img{i}.jpg", "RGB", size, (200, 100, 50))
            elif i == 5:
                Image.new("RGB", size, (1, 2, 3)).convert("P").save(root / name / f"img{i}.png")
            else:
                _save(root / name / f"img{i}.png", "RGB", size, (10 * k, 20, 30 + i))
    return root


def _load(root, shape=(3, 8, 8), **kw):
    return load_dataset(DataConfig(source=str(root), image_shape=shape, **kw))


def test_mixed_images_load_as_channel_major_rows_in_pixel_scale(tmp_path):
    ds = _load(_tree(tmp_path / "imgs"))
    assert ds.x.shape == (18, 192) and ds.x.dtype == np.float32
    assert ds.classes == CLASSES and ds.y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert ds.image_shape == (3, 8, 8) and ds.n_predefined_test == 0
    # a solid RGB image stays solid through resize and crop, channel by channel (C, H, W order)
    cat_img2 = ds.x[6 + 2].reshape(3, 8, 8)
    assert (cat_img2[0] == 10).all() and (cat_img2[1] == 20).all() and (cat_img2[2] == 32).all()
    # grayscale converted to RGB: the same value in every channel
    assert (ds.x[6 + 1] == 41).all()
    assert ds.x.min() >= 0 and ds.x.max() <= 255


def test_grayscale_shape_converts_rgb_with_luma(tmp_path):
    ds = _load(_tree(tmp_path / "imgs"), shape=(1, 8, 8))
    assert ds.x.shape == (18, 64)
    # L = 0.299 R + 0.587 G + 0.114 B, rounded by Pillow: (0, 20, 30) -> 15
    assert (ds.x[0] == round(0.587 * 20 + 0.114 * 30)).all()


def test_resize_covers_then_center_crops(tmp_path):
    img = np.zeros((16, 8), dtype=np.uint8)  # 8 wide, 16 tall: the width already fits, rows 4..11 kept
    img[8:] = 255
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "b").mkdir()
    Image.fromarray(img).save(tmp_path / "d" / "a" / "tall.png")
    _save(tmp_path / "d" / "b" / "big.png", "L", (32, 32), 7)  # downscaled 4x, stays solid
    ds = _load(tmp_path / "d", shape=(1, 8, 8))
    rows = ds.x[0].reshape(8, 8)
    assert (rows[:4] == 0).all() and (rows[4:] == 255).all()
    assert (ds.x[1] == 7).all()


def test_files_sorted_and_hidden_entries_skipped(tmp_path):
    root = tmp_path / "d"
    for name, value in [("b.png", 2), ("a.png", 1), ("c.png", 3)]:
        _save(root / "x" / name, "L", (4, 4), value)
    _save(root / "y" / "z.png", "L", (4, 4), 9)
    (root / "x" / ".DS_Store").write_bytes(b"\0junk")
    (root / ".cache").mkdir()
    ds = _load(root, shape=(1, 4, 4))
    assert ds.x[:, 0].tolist() == [1, 2, 3, 9] and ds.classes == ["x", "y"]


@pytest.mark.parametrize("build, message", [
    (lambda r: r.mkdir(), r"class subfolders root/<class>/\*.png\|jpg \(or \*.parquet shards\) expected, "
                          r"but directory 'd' is empty"),
    (lambda r: (r / "a").mkdir(parents=True), "at least one image per class folder expected, but 'a' has none"),
    (lambda r: (r.mkdir(), (r / "README.md").write_text("TOPSECRET")),
     "only class subfolders in an image directory expected, but got file 'README.md'"),
    (lambda r: (_save(r / "a" / "x.png", "L", (4, 4), 0), (r / "a" / "notes.txt").write_text("TOPSECRET")),
     r"only .png/.jpg/.jpeg files in a class folder expected, but got file 'a/notes.txt'"),
    (lambda r: (_save(r / "a" / "x.png", "L", (4, 4), 0), (r / "a" / "sub").mkdir()),
     r"only .png/.jpg/.jpeg files in a class folder expected, but got folder 'a/sub'"),
    (lambda r: (_save(r / "a" / "x.png", "L", (4, 4), 0), (r / "a" / "y.png").write_text("TOPSECRET")),
     r"a decodable PNG or JPEG image expected, but 'a/y.png' failed \(UnidentifiedImageError\)"),
])
def test_bad_directories_name_the_entry_never_its_contents(tmp_path, build, message):
    build(tmp_path / "d")
    with pytest.raises(DataError, match="^data.source: " + message) as err:
        _load(tmp_path / "d", shape=(1, 4, 4))
    assert "TOPSECRET" not in str(err.value)


def test_truncated_png_and_non_png_jpeg_formats_are_refused(tmp_path):
    root = tmp_path / "d"
    good = _save(root / "a" / "x.png", "L", (16, 16), 3)
    (root / "a" / "cut.png").write_bytes(good.read_bytes()[:-30])  # truncated IDAT/IEND
    with pytest.raises(DataError, match=r"'a/cut.png' failed \((OSError|SyntaxError)\)"):
        _load(root, shape=(1, 4, 4))
    (root / "a" / "cut.png").unlink()
    Image.new("L", (4, 4)).save(root / "a" / "gif.png", format="GIF")  # a decoder outside PNG/JPEG
    with pytest.raises(DataError, match=r"'a/gif.png' failed \(UnidentifiedImageError\)"):
        _load(root, shape=(1, 4, 4))


def test_image_shape_required_with_one_or_three_channels_and_no_target(tmp_path):
    root = _tree(tmp_path / "d")
    with pytest.raises(DataError, match=r"^data.image_shape: \[C, H, W\] \(C 1 or 3\) expected for image "
                                        r"directory 'd', but got none"):
        load_dataset(DataConfig(source=str(root)))
    with pytest.raises(DataError, match="C of 1 .* or 3 .* expected for an image directory, but got 2"):
        _load(root, shape=(2, 8, 8))
    with pytest.raises(DataError, match=r"^data.target: unset for an image directory .* expected, but got 'y'"):
        _load(root, target="y")


@pytest.mark.parametrize("module, name, at_limit, message", [
    (images, "MAX_IMAGE_FILES", 18, "at most 17 images expected, but 'd' has more"),
    (images, "MAX_CLASSES", 3, "at most 2 class subfolders expected"),
    (images, "MAX_IMAGE_PIXELS", 900, "images of at most 899 pixels expected, but 'bird/img3.png' is 30x30"),
    (common, "MAX_IN_MEMORY_BYTES", 18 * 192 * 4, f"at most {18 * 192 * 4 - 1} bytes of float32 features"),
])
def test_limits_hold_at_the_limit_and_refuse_one_past(tmp_path, monkeypatch, module, name, at_limit, message):
    root = _tree(tmp_path / "d")
    monkeypatch.setattr(module, name, at_limit)
    assert _load(root).x.shape == (18, 192)
    monkeypatch.setattr(module, name, at_limit - 1)
    with pytest.raises(DataError, match="^data.source: " + message):
        _load(root)


def test_file_size_limit_names_the_file(tmp_path, monkeypatch):
    root = _tree(tmp_path / "d")
    largest = min(root.rglob("*.*"), key=lambda p: (-p.stat().st_size, str(p)))  # the first one loaded
    size = largest.stat().st_size
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", size)
    _load(root)
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", size - 1)
    with pytest.raises(DataError, match=f"image files of at most {size - 1} bytes expected, but "
                                        f"'{largest.parent.name}/{largest.name}' has {size}"):
        _load(root)


def test_pillows_decompression_bomb_guard_is_an_error(tmp_path, monkeypatch):
    root = tmp_path / "d"
    _save(root / "a" / "x.png", "L", (8, 8), 0)  # 64 pixels: over Pillow's limit, under twice it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)
    with pytest.raises(DataError, match=r"'a/x.png' failed \(DecompressionBombWarning\)"):
        _load(root, shape=(1, 4, 4))


def test_inside_the_data_roots_no_link_is_followed_and_every_refusal_reads_the_same(tmp_path):
    """Sandboxed (the REST API, a submitted job), a link is refused wherever it points (inside, outside,
    nowhere), a file as a folder's entry and a folder the same way: nothing about what lies outside is told."""
    from trainers.data.files import Files

    root = _tree(tmp_path / "d")
    outside = _save(tmp_path / "elsewhere" / "secret.png", "L", (8, 8), 1)
    sandbox = Files([tmp_path / "d"])
    assert len(load_dataset(DataConfig(source=str(root), image_shape=(1, 8, 8)), files=sandbox).y) == 18
    messages = []
    for name, target in (("inside.png", root / "dog" / "img0.png"), ("out.png", outside),
                         ("gone.png", root / "cat" / "never-there.png")):
        (root / "cat" / name).symlink_to(target)
        with pytest.raises(DataError) as err:
            load_dataset(DataConfig(source=str(root), image_shape=(1, 8, 8)), files=sandbox)
        messages.append(str(err.value).replace(name, "X"))
        (root / "cat" / name).unlink()
    (root / "owl").symlink_to(outside.parent)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(source=str(root), image_shape=(1, 8, 8)), files=sandbox)
    assert messages[0] == messages[1] == messages[2], messages
    assert "elsewhere" not in " ".join(messages) + str(err.value) and "secret" not in str(err.value)


def test_the_users_own_links_are_followed(tmp_path):
    root = _tree(tmp_path / "d")
    (root / "cat" / "z.png").symlink_to(root / "dog" / "img0.png")
    assert len(_load(root).y) == 19
    (root / "cat" / "gone.png").symlink_to(root / "cat" / "never-there.png")
    with pytest.raises(DataError, match=r"^data.source: only .png/.jpg/.jpeg files in a class folder expected, but "
                                        r"got entry 'cat/gone.png'$"):  # a link to nothing is no file
        _load(root)


def test_a_class_folder_whose_name_is_not_utf8_is_refused_where_the_data_loads(tmp_path):
    root = _tree(tmp_path / "imgs")
    os.rename(root / "dog", os.path.join(os.fsencode(root), b"d\xffg"))
    with pytest.raises(DataError, match="valid UTF-8"):
        _load(root)
