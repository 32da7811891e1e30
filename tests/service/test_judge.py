"""Judgement rows: metrics from scikit-learn, latency per sample, the printed tables."""
import io

import numpy as np
import torch
from rich.console import Console

from service.judge import judge, latency_per_sample, markdown_table, print_rows
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.models import ModelConfig, build_model


def _predictor(n, seed):
    torch.manual_seed(seed)
    cfg = ModelConfig(in_features=4, n_classes=3, hidden=8)
    return EnsemblePredictor([build_model(cfg) for _ in range(n)], [cfg] * n)


def test_rows_match_sklearn_and_have_latency():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.integers(0, 3, 30)
    preds = {"single": _predictor(1, 0), "ensemble": _predictor(4, 1)}
    rows = judge(preds, x, y, repeats=3)
    assert [r.model for r in rows] == ["single", "ensemble"]
    for row, p in zip(rows, preds.values()):
        proba = p.predict_proba(x)
        assert row.accuracy == np.mean(proba.argmax(1) == y)
        assert np.asarray(row.confusion).sum() == 30 and row.n_test == 30
        assert row.latency_ms_b1 > 0 and row.latency_ms_b256 > 0
        assert "confusion" not in row.metrics() and "accuracy" in row.metrics()
    assert rows[1].n_members == 4
    text = markdown_table(rows)
    assert text.count("\n") == 3 and "| ensemble |" in text
    out = io.StringIO()
    print_rows(rows, Console(file=out, width=200))
    assert "ensemble" in out.getvalue()


def test_latency_tiles_rows_up_to_the_batch():
    seen = []
    result = latency_per_sample({"a": lambda rows: seen.append(rows.shape)}, np.zeros((3, 4)), 256, repeats=2)
    assert set(seen) == {(256, 4)} and len(seen) == 5 + 2 and result["a"] >= 0
