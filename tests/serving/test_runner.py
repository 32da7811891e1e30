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
    assert len(out["votes"]) == 5 and len(out["votes"][0]) == len(runner.predictor.models) == 5 and out["version"] == runner.version
    assert asyncio.run(runner.describe())["outputs"] == ["probabilities", "predictions", "votes"]


def test_health_check_fails_when_the_model_cannot_predict(bundles):
    runner = ModelRunner("student", parse_source(str(bundles[1])), 8, 0.0)
    runner.check()
    with torch.no_grad():
        for p in runner.predictor.models[0].parameters():
            p.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="one finite probability row summing to 1 expected"):
        runner.check()


@pytest.mark.parametrize("which", [0, 1])
def test_rows_whose_outputs_are_not_finite_are_reported(bundles, digits_x, which):
    runner = ModelRunner(("ensemble", "student")[which], parse_source(str(bundles[which])), 8, 0.0)
    x = np.stack([digits_x[0], np.full(64, 3e38), digits_x[1], np.full(64, -3e38)]).astype(np.float32)
    assert np.isfinite(x).all()  # every feature is a finite float32
    out = asyncio.run(runner.predict(x, votes=runner.members > 1))
    assert out["bad_rows"] == [1, 3]
    assert asyncio.run(runner.predict(x[[0, 2]]))["bad_rows"] == []


def test_describe_names_a_bundle_by_content_not_path(bundles):
    runner = ModelRunner("student", parse_source(str(bundles[1])), 8, 0.0)
    info = asyncio.run(runner.describe())
    assert info["source"] == f"bundle:{runner.version}" and runner.version.startswith("local-")
    assert str(bundles[1]) not in repr(info)


def test_hard_vote_hides_nan_members_behind_finite_shares_and_is_still_refused(bundles, digits_x):
    from trainers.ensemble.predictor import EnsemblePredictor

    predictor = EnsemblePredictor.load(bundles[0])
    predictor.method = "hard_vote"
    runner = ModelRunner("ensemble", parse_source(str(bundles[0])), 8, 0.0, predictor=predictor, version="1")
    x = np.stack([digits_x[0], np.full(64, 3e38)]).astype(np.float32)
    out = asyncio.run(runner.predict(x, votes=True))
    assert np.isfinite(out["probabilities"]).all()  # vote shares of NaN members' argmaxes: finite, and wrong
    assert out["bad_rows"] == [1]
