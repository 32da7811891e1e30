"""A bundle as an MLflow pyfunc model: log, register, load, predict classes and probabilities."""
import mlflow
import numpy as np
import pytest
import torch

from serving.mlflow_model import bundle_dir_for, log_and_register
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families.config import ModelConfig
from trainers.families import build_model


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    tmp = tmp_path_factory.mktemp("mlflow")
    with _use_tracking_uri(f"sqlite:///{tmp}/mlflow.db"):  # restores "unset", not the default URI
        # runs name their experiment: set_experiment would leave a process-wide active id behind
        yield mlflow.create_experiment("pyfunc-test", tmp.as_uri())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ModelConfig(in_features=4, n_classes=3, hidden=8)
    predictor = EnsemblePredictor([build_model(cfg), build_model(cfg)], [cfg, cfg], classes=["setosa", "versicolor", "virginica"])
    return predictor, predictor.save(tmp_path_factory.mktemp("bundle") / "b")


def test_log_register_load_predict(tracking, bundle):
    predictor, directory = bundle
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    with mlflow.start_run(experiment_id=tracking) as run:
        name, version = log_and_register(directory, "iris-ensemble", x[:2], tags={"test_accuracy": 0.5})
    assert (name, version) == ("iris-ensemble", "1")
    mv = mlflow.MlflowClient().get_model_version(name, version)
    assert mv.tags["test_accuracy"] == "0.5" and mv.run_id == run.info.run_id
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    assert list(model.predict(x)) == predictor.predict(x)
    np.testing.assert_allclose(model.predict(x, params={"output": "proba"}), predictor.predict_proba(x), atol=1e-7)
    with pytest.raises(Exception, match="params.output one of"):
        model.predict(x, params={"output": "logits"})
    assert model.metadata.get_input_schema() is not None  # logged with a signature


def test_register_into_a_finished_run_and_download_the_bundle(tracking, bundle, tmp_path):
    predictor, directory = bundle
    with mlflow.start_run(experiment_id=tracking) as run:
        pass  # finished, like a sweep's parent run after the search
    name, version = log_and_register(directory, "iris-ensemble", np.zeros((1, 4)), run_id=run.info.run_id)
    assert version == "2"
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"
    local = bundle_dir_for(f"models:/{name}/{version}", tmp_path / "dl")
    x = np.ones((3, 4), dtype=np.float32)
    np.testing.assert_allclose(EnsemblePredictor.load(local).predict_proba(x), predictor.predict_proba(x))


def test_a_registered_model_is_code_and_weights_and_loading_it_unpickles_nothing(tracking, bundle, tmp_path,
                                                                                  monkeypatch):
    """Logged from code (MLflow's models-from-code): no pickle among its files, and pickle's loaders are
    never called while MLflow loads it and it predicts."""
    import pickle

    predictor, directory = bundle
    with mlflow.start_run(experiment_id=tracking):
        name, version = log_and_register(directory, "coded-ensemble", np.zeros((1, 4)))
    local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(tmp_path / "m"))
    files = [p.name for p in __import__("pathlib").Path(local).rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    assert "python_model.pkl" not in files and "pyfunc_code.py" in files

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was asked to load something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    x = np.ones((2, 4), dtype=np.float32)
    assert list(model.predict(x)) == predictor.predict(x)
