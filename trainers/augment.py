"""Mixup, cutmix, random crop and horizontal flip as pure functions: sampled parameters, outputs as
copies, a seeded generator."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor, y_soft: torch.Tensor, alpha: float) -> None:
    if alpha <= 0:
        raise ValueError(f"alpha > 0 must hold, but got alpha={alpha}")
    if y_soft.ndim != 2 or y_soft.shape[0] != x.shape[0]:
        raise ValueError(f"targets of shape (batch={x.shape[0]}, classes) expected, but got {tuple(y_soft.shape)}")


def _beta(alpha: float, generator: torch.Generator) -> float:
    # torch.distributions cannot take a Generator; Beta(a, a) from two Gammas via the same generator
    g1 = torch._standard_gamma(torch.tensor([alpha]), generator=generator)
    g2 = torch._standard_gamma(torch.tensor([alpha]), generator=generator)
    return float(g1 / (g1 + g2))


def _images(x: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    c, h, w = image_shape
    if x.ndim != 2 or x.shape[1] != c * h * w:
        raise ValueError(f"rows of {c * h * w} features (image_shape={tuple(image_shape)}) expected, "
                         f"but got shape {tuple(x.shape)}")
    return x.reshape(-1, c, h, w)


def mixup(x: torch.Tensor, y_soft: torch.Tensor, alpha: float, generator: torch.Generator):
    """Blend each row with a shuffled partner: lam*x + (1-lam)*x[perm]; targets likewise."""
    _check(x, y_soft, alpha)
    lam = _beta(alpha, generator)
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y_soft + (1 - lam) * y_soft[perm]


def cutmix(x: torch.Tensor, y_soft: torch.Tensor, alpha: float, image_shape: tuple[int, int, int],
           generator: torch.Generator):
    """Paste a random box from a shuffled partner; targets mixed by the box's true area share.

    Rows arrive flat (batch, C*H*W) and leave flat.
    """
    _check(x, y_soft, alpha)
    imgs = _images(x, image_shape).clone()
    _, h, w = image_shape
    lam = _beta(alpha, generator)
    cut_h, cut_w = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
    cy = int(torch.randint(h, (1,), generator=generator))
    cx = int(torch.randint(w, (1,), generator=generator))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    imgs[:, :, y0:y1, x0:x1] = imgs[perm][:, :, y0:y1, x0:x1]
    kept = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return imgs.reshape(x.shape[0], -1), kept * y_soft + (1 - kept) * y_soft[perm]


def random_crop(x: torch.Tensor, image_shape: tuple[int, int, int], padding: int, generator: torch.Generator,
                mode: str = "zeros") -> torch.Tensor:
    """Pad each image by `padding` pixels (zeros, or a mirror of its border: mode="reflect"), then cut an
    H x W window at an offset drawn per row, so each row is shifted by up to `padding` pixels.

    Rows arrive flat (batch, C*H*W) and leave flat, as a copy.
    """
    if padding < 0:
        raise ValueError(f"padding >= 0 must hold, but got padding={padding}")
    if mode not in ("zeros", "reflect"):
        raise ValueError(f"mode one of ['zeros', 'reflect'] expected, but got {mode!r}")
    imgs = _images(x, image_shape)
    _, h, w = image_shape
    if mode == "reflect" and padding >= min(h, w):
        raise ValueError(f"padding < min(H, W) = {min(h, w)} must hold for reflect padding, but got padding={padding}")
    if padding == 0:
        return x.clone()
    n = x.shape[0]
    # offsets come from the CPU generator whatever the device, so a seed gives the same crops on CPU and CUDA
    offsets = torch.randint(2 * padding + 1, (n, 2), generator=generator).to(x.device)
    padded = F.pad(imgs, (padding,) * 4, mode="constant" if mode == "zeros" else "reflect")
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (n, h)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)  # (n, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indices around a slice put their dims first: (n, h, w, c)
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).reshape(n, -1)


def hflip(x: torch.Tensor, image_shape: tuple[int, int, int], p: float, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability p (drawn per row). Flat rows in, a flat copy out."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"0 <= p <= 1 must hold, but got p={p}")
    imgs = _images(x, image_shape)
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], imgs.flip(-1), imgs).reshape(x.shape[0], -1)
