import pytest
import torch

from trainers.augment import cutmix, mixup


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
