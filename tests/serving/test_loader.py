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
