import asyncio

import numpy as np
import pytest
import torch

from serving.loader import parse_source
from serving.runner import ModelRunner


def test_predict_outside_a_replica_and_votes(bundles, digits_x):
    runner = ModelRunner("ensemble", parse_source(str(bundles[0])), 8, 0.0)
    out = asyncio.run(runner.predict(digits_x[:5].astype(np.float32), votes=True))
    np.testing.assert_allclose(out["probabilities"], runner.predictor.predict_proba(digits_x[:5]))
    assert len(out["votes"]) == 5 and len(out["votes"][0]) == 3 and out["version"] == runner.version
    assert asyncio.run(runner.describe())["outputs"] == ["probabilities", "predictions", "votes"]


def test_health_check_fails_when_the_model_cannot_predict(bundles):
    runner = ModelRunner("student", parse_source(str(bundles[1])), 8, 0.0)
    runner.check()
    with torch.no_grad():
        for p in runner.predictor.models[0].parameters():
            p.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="one finite probability row summing to 1 expected"):
        runner.check()
