import pytest
import torch

import torch.nn.functional as F

from trainers.augment import cutmix, hflip, mixup, random_crop


def _batch(n=8, c=1, h=4, w=4, classes=3):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, c * h * w, generator=g)
    y = torch.nn.functional.one_hot(torch.arange(n) % classes, classes).float()
    return x, y


def test_mixup_is_a_seeded_pure_convex_blend():
    x, y = _batch()
    x0, y0 = x.clone(), y.clone()
    a = mixup(x, y, 0.4, torch.Generator().manual_seed(3))
    b = mixup(x, y, 0.4, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(x, x0) and torch.equal(y, y0)  # inputs untouched
    assert torch.allclose(a[1].sum(1), torch.ones(len(y)))
    assert a[0].min() >= x.min() - 1e-6 and a[0].max() <= x.max() + 1e-6


def test_cutmix_targets_follow_the_pasted_area():
    x, y = _batch(n=6, h=8, w=8)
    xm, ym = cutmix(x, y, 1.0, (1, 8, 8), torch.Generator().manual_seed(0))
    assert xm.shape == x.shape and xm.data_ptr() != x.data_ptr()
    changed = (xm != x).float().mean(1)  # share of pixels replaced per row (where partner differs)
    kept = ym.max(1).values
    # rows whose partner is another row have (1 - kept) equal to the pasted share
    assert torch.all(changed <= 1 - kept + 1e-6)
    assert torch.allclose(ym.sum(1), torch.ones(len(ym)))


@pytest.mark.parametrize("fn, args", [(mixup, ()), (cutmix, ((1, 4, 4),))])
def test_bad_alpha_and_shapes_raise_value_error(fn, args):
    x, y = _batch()
    with pytest.raises(ValueError, match="alpha > 0 must hold, but got alpha=0"):
        fn(x, y, 0.0, *args, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"targets of shape \(batch=8"):
        fn(x, y[:3], 1.0, *args, generator=torch.Generator())


def test_cutmix_rejects_rows_that_are_not_the_image_shape():
    x, y = _batch()
    with pytest.raises(ValueError, match=r"rows of 64 features \(image_shape=\(1, 8, 8\)\) expected"):
        cutmix(x, y, 1.0, (1, 8, 8), torch.Generator())


# ---- random crop and horizontal flip -------------------------------------------------------------

SHAPE = (3, 5, 7)  # several channels, H != W: a mix-up of axes or channels shows


def _images(n=40, shape=SHAPE, low=1.0):
    # strictly positive, distinct values: zero padding and misplaced pixels are visible
    return torch.rand(n, shape[0] * shape[1] * shape[2], generator=torch.Generator().manual_seed(5)) + low


def _windows(img: torch.Tensor, padding: int, mode: str) -> list[torch.Tensor]:
    """Every H x W window of one padded image (C, H, W)."""
    _, h, w = img.shape
    padded = F.pad(img[None], (padding,) * 4, mode="constant" if mode == "zeros" else "reflect")[0]
    return [padded[:, i:i + h, j:j + w] for i in range(2 * padding + 1) for j in range(2 * padding + 1)]


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_random_crop_is_a_window_of_the_padded_image_per_row(mode):
    x, p = _images(), 2
    x0 = x.clone()
    out = random_crop(x, SHAPE, p, torch.Generator().manual_seed(0), mode=mode)
    assert out.shape == x.shape and torch.equal(x, x0)  # input untouched
    offsets = set()
    for row, img in zip(out.reshape(-1, *SHAPE), x.reshape(-1, *SHAPE)):
        found = [k for k, win in enumerate(_windows(img, p, mode)) if torch.equal(win, row)]
        assert found, "a row is no window of its own padded image"
        offsets.add(found[0])
    # offsets are drawn per row (one offset for the batch would give a single value)
    assert len(offsets) > 5
    if mode == "reflect":
        assert (out > 0).all()  # mirrored borders, never zeros


def test_random_crop_is_seeded_and_zero_padding_off_is_a_copy():
    x = _images()
    a = random_crop(x, SHAPE, 1, torch.Generator().manual_seed(4))
    b = random_crop(x, SHAPE, 1, torch.Generator().manual_seed(4))
    c = random_crop(x, SHAPE, 1, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)
    same = random_crop(x, SHAPE, 0, torch.Generator())
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()


def test_hflip_mirrors_whole_rows_with_probability_p():
    x = _images(n=400)
    imgs = x.reshape(-1, *SHAPE)
    out = hflip(x, SHAPE, 0.3, torch.Generator().manual_seed(0)).reshape(-1, *SHAPE)
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, imgs)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, imgs)])
    assert bool((flipped ^ kept).all())  # every row is itself or its mirror (all channels, along W)
    assert 0.22 < flipped.float().mean() < 0.38
    assert torch.equal(hflip(x, SHAPE, 0.0, torch.Generator()), x)
    assert torch.equal(hflip(x, SHAPE, 1.0, torch.Generator()).reshape(-1, *SHAPE), imgs.flip(-1))
    again = hflip(x, SHAPE, 0.3, torch.Generator().manual_seed(0)).reshape(-1, *SHAPE)
    assert torch.equal(out, again)


@pytest.mark.parametrize("call, message", [
    (lambda x, g: random_crop(x, (1, 8, 8), 1, g), r"rows of 64 features \(image_shape=\(1, 8, 8\)\) expected, but got shape \(8, 16\)"),
    (lambda x, g: hflip(x, (1, 8, 8), 0.5, g), r"rows of 64 features \(image_shape=\(1, 8, 8\)\) expected"),
    (lambda x, g: random_crop(x, (1, 4, 4), -1, g), r"padding >= 0 must hold, but got padding=-1"),
    (lambda x, g: random_crop(x, (1, 4, 4), 4, g, mode="reflect"),
     r"padding < min\(H, W\) = 4 must hold for reflect padding, but got padding=4"),
    (lambda x, g: random_crop(x, (1, 4, 4), 1, g, mode="wrap"), r"mode one of \['zeros', 'reflect'\] expected, but got 'wrap'"),
    (lambda x, g: hflip(x, (1, 4, 4), 1.5, g), r"0 <= p <= 1 must hold, but got p=1.5"),
])
def test_crop_and_flip_refuse_bad_arguments(call, message):
    x, _ = _batch()
    with pytest.raises(ValueError, match=message):
        call(x, torch.Generator())
