"""Where a served model comes from: a local bundle directory or a registered MLflow model version."""
from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from serving.home import Locations, locations
from trainers.ensemble.predictor import EnsemblePredictor

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))$")


class ModelSourceError(ValueError):
    pass


@dataclass(frozen=True)
class Source:
    text: str  # as given: a directory or models:/NAME/VERSION, models:/NAME@ALIAS
    registered_name: str | None  # the MLflow registered model name, when from the registry
    store: Locations | None = None  # the MLflow store a registered model is read from


def parse_source(text: str, store: Locations | None = None) -> Source:
    """Check the form early (before any replica starts): a models:/ URI or an existing bundle dir.
    store: where models:/ URIs are looked up (default: serving.home.locations() of this process)."""
    text = str(text)
    if text.startswith("models:/"):
        m = _URI.match(text)
        if not m:
            raise ModelSourceError(f"model source models:/NAME/VERSION or models:/NAME@ALIAS expected, "
                                   f"but got {text!r}")
        source = Source(text, m["name"], store or locations())
        _registry_version(source)  # a missing model or version fails here, not inside a replica
        return source
    if not (Path(text) / "bundle.json").is_file():
        raise ModelSourceError(f"model source a bundle directory with bundle.json or a models:/ URI expected, "
                               f"but got {text!r} (no {Path(text) / 'bundle.json'})")
    return Source(str(Path(text).resolve()), None)


def _content_version(directory: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in directory.iterdir() if p.is_file()):
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    return "local-" + digest.hexdigest()[:10]


def _registry_version(source: Source) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    m, store = _URI.match(source.text), source.store
    client = MlflowClient(tracking_uri=store.mlflow_uri, registry_uri=store.registry_uri)
    try:
        if m["version"] and m["version"].isdigit():
            return str(client.get_model_version(m["name"], m["version"]).version)
        if m["alias"]:
            return str(client.get_model_version_by_alias(m["name"], m["alias"]).version)
        versions = client.search_model_versions(f"name='{m['name']}'")
    except MlflowException as e:
        raise ModelSourceError(f"model source a registered model version expected, but {source.text!r} was not "
                               f"found in the registry at {store.registry_uri} ({e.message.splitlines()[0]}); "
                               f"{_stores_hint(store)}") from None
    if not versions:
        raise ModelSourceError(f"at least one version of registered model {m['name']!r} expected, but got none in "
                               f"the registry at {store.registry_uri}; {_stores_hint(store)}")
    return str(max(int(v.version) for v in versions))


def _stores_hint(store: Locations) -> str:
    others = [uri for uri in store.known_stores() if uri != store.registry_uri]
    where = f"MLflow stores under RAYSEMBLE_HOME={store.home}: {others}" if others else \
        f"no other MLflow store under RAYSEMBLE_HOME={store.home}"
    return where + " (MLFLOW_TRACKING_URI or RAYSEMBLE_HOME pick the store)"


def resolve(source: Source, dst_path: str | Path | None = None) -> tuple[Path, str]:
    """(local bundle dir, version string). Registry URIs are downloaded via serving.mlflow_model, into
    dst_path (else a temporary directory removed when this process exits)."""
    if source.registered_name is None:
        directory = Path(source.text)
        return directory, _content_version(directory)
    try:
        from serving.mlflow_model import bundle_dir_for
    except ImportError as e:
        raise ModelSourceError(f"serving.mlflow_model (bundle_dir_for) to load {source.text!r} expected, "
                               f"but got an import error: {e}") from None
    return Path(bundle_dir_for(source.text, dst_path, store=source.store)), _registry_version(source)


def load_predictor(source: Source, num_gpus: float = 0.0) -> tuple[EnsemblePredictor, str]:
    device = "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"
    if source.registered_name is None:
        directory, version = resolve(source)
        return EnsemblePredictor.load(directory, device=device), version
    # a download is read into memory (torch.load) and removed before the replica serves: nothing stays
    # on disk for a stopped, killed or crashed replica to leave behind
    with tempfile.TemporaryDirectory(prefix="raysemble-model-") as tmp:
        directory, version = resolve(source, tmp)
        return EnsemblePredictor.load(directory, device=device), version
