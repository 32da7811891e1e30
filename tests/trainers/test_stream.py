"""k-fold on a stream: Parquet shards read through Ray Data by the trials' Ray Train workers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from service.progress import Silent
from service.spec import parse_spec
from service.sweep import run_sweep
from tests.conftest import tiny_spec
from trainers.data import DataConfig, load_dataset
from trainers.kfold import make_folds
from trainers.stream import plan_for

pytestmark = pytest.mark.usefixtures("ray_session")


def _digits_frame() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    frame = pd.DataFrame(x, columns=[f"p{i}" for i in range(x.shape[1])])
    frame["label"] = [f"d{v}" for v in y]
    return frame


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """digits as 3 Parquet shards of uneven sizes, labels as strings (mapped like the in-memory path)."""
    frame = _digits_frame()
    root = tmp_path_factory.mktemp("shards")
    for i, (start, stop) in enumerate([(0, 500), (500, 1300), (1300, len(frame))]):
        frame.iloc[start:stop].to_parquet(root / f"part-{i}.parquet")
    return root


@pytest.fixture(scope="module")
def split_shards(tmp_path_factory):
    """digits as 2 training shards and a predefined test file outside their directory."""
    frame = _digits_frame()
    root = tmp_path_factory.mktemp("split")
    (root / "train").mkdir()
    frame.iloc[:700].to_parquet(root / "train" / "a.parquet")
    frame.iloc[700:1400].to_parquet(root / "train" / "b.parquet")
    frame.iloc[1400:].to_parquet(root / "test.parquet")
    return root


def _spec(name: str, root, stream, **data) -> dict:
    return tiny_spec(name, data={"source": str(root), "target": "label", "test_fraction": 0.2, "stream": stream,
                                 **data},
                     search={"algorithm": "random", "num_trials": 1, "max_concurrent": 1,
                             "fixed": {"epochs": 4, "hidden": 32, "lr": 0.005}},
                     resources={"cpus_per_worker": 1})


def test_fold_membership_equals_the_in_memory_folds(shards):
    data = load_dataset(DataConfig(source=str(shards), target="label"))
    train_idx = np.arange(0, len(data.y), 2)  # any training subset: every other row
    folds = make_folds(data.y[train_idx], 4, True, 7)
    plan = plan_for([str(p) for p in sorted(shards.glob("*.parquet"))], "label", data.classes, train_idx, folds,
                    len(data.y))
    assert (plan.pos[1::2] == -1).all() and (plan.fold[1::2] == -1).all()  # held-out rows never train
    for k, val in enumerate(folds):
        assert sorted(plan.pos[plan.fold == k].tolist()) == sorted(val.tolist())
        per_class = np.bincount(data.y[train_idx][val], minlength=10)
        assert (np.bincount(data.y[plan.fold == k], minlength=10) == per_class).all()


def test_a_streamed_sweep_trains_the_same_folds_as_the_in_memory_one(split_shards, home):
    test = {"test_source": str(split_shards / "test.parquet")}  # never streamed, never a training row
    streamed = run_sweep(parse_spec(_spec("streamed", split_shards / "train", True, **test)), Silent())
    in_memory = run_sweep(parse_spec(_spec("in-memory", split_shards / "train", False, **test)), Silent())
    (s,), (m,) = streamed.trials, in_memory.trials
    assert s.status == m.status == "TERMINATED", (s.error, m.error)
    assert np.array_equal(streamed.train_idx, in_memory.train_idx) and len(streamed.train_idx) == 1400
    for k in range(3):  # the same rows in each fold, whichever way they reached the trial
        assert sorted(np.load(s.checkpoint_dir / f"val_idx_{k}.npy").tolist()) == \
            sorted(np.load(m.checkpoint_dir / f"val_idx_{k}.npy").tolist())
    oof = s.oof()
    assert oof.shape == (len(streamed.train_idx), 10) and np.allclose(oof.sum(1), 1, atol=1e-5)
    # the same model and folds trained in another batch order: close, not bitwise equal
    assert s.mean_score > 0.85 and abs(s.mean_score - m.mean_score) < 0.05, (s.mean_score, m.mean_score)


def test_stream_refuses_what_it_cannot_stream(shards):
    from service.spec import SpecError

    bad = _spec("bad", shards, True)
    bad["resources"] = {"executor": "in_trial"}
    bad["model"] = {"family": "logreg"}
    bad["search"]["fixed"] = {}
    bad["search"]["patience"] = 3
    bad["cv"] = {**bad.get("cv", {}), "repeats": 2}
    with pytest.raises(SpecError) as e:
        parse_spec(bad)
    assert any("data.stream: torch families only" in p for p in e.value.problems), e.value.problems
    assert "data.stream: cv.repeats 1 expected (a streamed row belongs to one fold), but got repeats=2" in \
        e.value.problems
    assert "data.stream: search.patience null expected (a streamed trial runs every epoch), but got patience=3" in \
        e.value.problems
    assert any("data.stream: executor ray_train (or auto)" in p for p in e.value.problems)
    with pytest.raises(SpecError) as e:
        parse_spec(tiny_spec("sk", data={"source": "sklearn:digits", "stream": True}))
    assert any(p.startswith("data.stream: a Parquet source") for p in e.value.problems), e.value.problems


def test_auto_streams_large_parquet_sources_of_sweeps_that_can(shards, monkeypatch):
    import trainers.stream
    from service.trials import streams

    auto = parse_spec(_spec("auto", shards, "auto"))
    assert not streams(auto)  # a few hundred kB: the in-memory path
    monkeypatch.setattr(trainers.stream, "STREAM_ABOVE_BYTES", 1000)
    assert streams(auto)
    mixed = _spec("mixed", shards, "auto")
    mixed["search"] = {"algorithm": "random", "num_trials": 2, "space": {"family": {"choice": ["mlp", "logreg"]}}}
    assert not streams(parse_spec(mixed))  # a family that cannot take batches: in memory, no error
    assert not streams(parse_spec(tiny_spec("sk", data={"source": "sklearn:digits"})))
    assert not streams(parse_spec(_spec("off", shards, False)))
