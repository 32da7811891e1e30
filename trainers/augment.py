"""Mixup and cutmix as pure functions: sampled parameters, outputs as copies, a seeded generator."""
from __future__ import annotations

import torch


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
    c, h, w = image_shape
    if x.ndim != 2 or x.shape[1] != c * h * w:
        raise ValueError(f"rows of {c * h * w} features (image_shape={tuple(image_shape)}) expected, "
                         f"but got shape {tuple(x.shape)}")
    lam = _beta(alpha, generator)
    cut_h, cut_w = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
    cy = int(torch.randint(h, (1,), generator=generator))
    cx = int(torch.randint(w, (1,), generator=generator))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    imgs = x.reshape(-1, c, h, w).clone()
    imgs[:, :, y0:y1, x0:x1] = imgs[perm][:, :, y0:y1, x0:x1]
    kept = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return imgs.reshape(x.shape[0], -1), kept * y_soft + (1 - kept) * y_soft[perm]
