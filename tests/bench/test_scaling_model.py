"""bench/scaling_model.py: the sizing model docs/scaling.md quotes."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("scaling_model", Path(__file__).resolve().parents[2] / "bench" / "scaling_model.py")
model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(model)


def test_waves_of_trials_plus_fixed_costs():
    # 10 trials on 3 lanes: 4 waves of (start 2 + 5 epochs x 1 s + book 1) = 32, plus node 7 and post 11
    assert model.sweep_seconds(10, 5, 1.0, nodes=3, per_node=1, max_concurrent=None, node_s=7, start_s=2,
                               book_s=1, post_s=11) == pytest.approx(7 + 4 * 8 + 11)
    # max_concurrent caps the lanes, whatever the node count
    assert model.sweep_seconds(10, 5, 1.0, 8, 1, 2, 0, 0, 0, 0) == pytest.approx(5 * 5)


def test_more_nodes_never_slower_and_cost_rises_once_waves_stop_shrinking():
    walls = [model.sweep_seconds(32, 30, 5.0, n, 1, None, 180, 0, 1.3, 433) for n in (1, 2, 4, 8, 16, 32, 64)]
    assert walls == sorted(walls, reverse=True) and walls[-1] == walls[-2]  # 64 nodes: still one wave
    costs = [model.cost(w, n, 433, 600, 1.0, 0.4) for w, n in zip(walls, (1, 2, 4, 8, 16, 32, 64))]
    assert costs[-1] > costs[-2] > costs[3]
