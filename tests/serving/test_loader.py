import shutil

import pytest

from serving.loader import ModelSourceError, parse_source, resolve


def test_bundle_dir_and_content_version(bundles, tmp_path):
    source = parse_source(str(bundles[0]))
    assert source.registered_name is None
    directory, version = resolve(source)
    assert directory == bundles[0] and version.startswith("local-")
    copy = shutil.copytree(bundles[0], tmp_path / "copy")
    assert resolve(parse_source(str(copy)))[1] == version  # same files, same version
    assert resolve(parse_source(str(bundles[1])))[1] != version


@pytest.mark.parametrize("text", ["models:/digits-ensemble/3", "models:/digits-ensemble@champion"])
def test_registry_uris_must_exist_before_any_replica_starts(text, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(ModelSourceError, match=f"but {text!r} was not found in the registry"):
        parse_source(text)


@pytest.mark.parametrize("text, message", [
    ("models:/only-a-name", "models:/NAME/VERSION or models:/NAME@ALIAS expected, but got 'models:/only-a-name'"),
    ("/no/such/dir", "a bundle directory with bundle.json or a models:/ URI expected, but got '/no/such/dir'"),
])
def test_bad_sources(text, message):
    with pytest.raises(ModelSourceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_source(text)


@pytest.fixture(scope="module")
def registered(bundles, tmp_path_factory):
    """(models:/ URI, store) of the ensemble bundle, registered in a fresh local MLflow store."""
    import mlflow
    import numpy as np

    from serving.home import locations
    from serving.mlflow_model import log_and_register

    store = locations(home=tmp_path_factory.mktemp("home")).prepare()
    with store.active():
        with mlflow.start_run(experiment_id=mlflow.create_experiment("loader", store.artifact_location)):
            name, version = log_and_register(bundles[0], "loader-ensemble", np.zeros((1, 64)))
    return f"models:/{name}/{version}", store


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """tempfile's directory for this test: what a download leaves behind shows up here."""
    import tempfile

    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_a_registered_model_is_loaded_and_its_download_removed(registered, bundles, temp_root):
    import numpy as np

    from serving.loader import load_predictor
    from trainers.ensemble.predictor import EnsemblePredictor

    uri, store = registered
    predictor, version = load_predictor(parse_source(uri, store))
    assert version == "1" and list(temp_root.iterdir()) == []
    x = np.eye(4, 64, dtype=np.float32)
    np.testing.assert_allclose(predictor.predict_proba(x), EnsemblePredictor.load(bundles[0]).predict_proba(x))


def test_a_failed_download_leaves_no_temp_dir(registered, temp_root):
    from serving.mlflow_model import bundle_dir_for

    with pytest.raises(Exception):
        bundle_dir_for("models:/loader-ensemble/99", store=registered[1])
    assert list(temp_root.iterdir()) == []


def test_a_download_without_dst_path_is_removed_when_the_process_exits(registered, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    uri, store = registered
    root = tmp_path / "tmp"
    root.mkdir()
    code = ("from serving.mlflow_model import bundle_dir_for; p = bundle_dir_for(%r); "
            "assert (p / 'bundle.json').is_file(); print(p)" % uri)
    env = {**os.environ, **store.env(), "TMPDIR": str(root)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    downloaded = Path(out.stdout.strip().splitlines()[-1])
    assert downloaded.is_relative_to(root)  # it was made there, and is gone with the process
    assert not downloaded.exists() and list(root.iterdir()) == []


def test_active_puts_the_users_mlflow_environment_back(tmp_path, monkeypatch):
    import mlflow
    """A block pointed at a sweep's store must not unset the user's MLFLOW_TRACKING_URI afterwards
    (MLflow's own restore does when its fluent URI was unset): later steps would use another store."""
    import os

    from serving.home import locations

    mine = f"sqlite:///{tmp_path}/mine.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mine)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    with locations(f"sqlite:///{tmp_path}/other.db").active() as store:
        assert mlflow.get_tracking_uri() == store.mlflow_uri != mine
    assert os.environ["MLFLOW_TRACKING_URI"] == mine and "MLFLOW_REGISTRY_URI" not in os.environ
    assert mlflow.get_tracking_uri() == mine
