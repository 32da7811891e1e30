"""A data root and a directory outside it, for the path-safety tests (service.spec.policy, the API)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def make_roots(tmp: Path, rows: int = 60) -> tuple[Path, Path]:
    """tmp/data (the root) and tmp/outside, each with set.npz (3 classes); in the root, links that
    lead out (escape.npz, outdir/) and one that stays inside (inside.npz)."""
    root, outside = tmp / "data", tmp / "outside"
    rng = np.random.default_rng(0)
    for d in (root, outside):
        d.mkdir()
        np.savez(d / "set.npz", X=rng.normal(size=(rows, 4)), target=np.arange(rows) % 3)
    (root / "sub").mkdir()
    os.symlink(outside / "set.npz", root / "escape.npz")
    os.symlink(outside, root / "outdir")
    os.symlink(root / "set.npz", root / "inside.npz")
    return root, outside
