"""Ensembles and students as MLflow pyfunc models, and the registry round trip.

A logged model holds the bundle directory (EnsemblePredictor.save) as its artifact "bundle", and is
logged from code (serving/pyfunc_code.py, MLflow's "models from code"): nothing is pickled, and
loading it unpickles nothing. The code that reads it is this installed package (raysemble is pip-installed where models
are loaded: the driver, `mlflow models serve --env-manager local`, the Ray Serve replicas).
Bundling the source with code_paths was left out on purpose: MLflow puts such copies first on
sys.path, so a serving process would hold two copies of trainers/ with two distinct classes.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from contextlib import nullcontext
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import Model, infer_signature

from serving.home import Locations, locations
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.tables import is_table

OUTPUTS = ("class", "proba")
ARTIFACT = "bundle"


def _rows(model_input, predictor: EnsemblePredictor):
    """What the predictor takes: a table model's DataFrame (or records) as it is (columns by name, a
    missing value where a cell is missing); for a matrix model, a DataFrame, list of rows or array ->
    float32 (rows, features)."""
    if predictor.schema is not None:
        return model_input.frame if is_table(model_input) else model_input
    if hasattr(model_input, "to_numpy"):
        model_input = model_input.to_numpy()
    x = np.asarray(model_input, dtype=np.float32)
    return x.reshape(1, -1) if x.ndim == 1 else x


def _signature(predictor: EnsemblePredictor, example):
    """A table model's inputs are its columns by name, each optional (a missing value is allowed), numbers
    as double and categories as string; a matrix model's are inferred from its example."""
    if predictor.schema is None:
        return infer_signature(example, np.asarray(predictor.predict(example)), params={"output": "class"})
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    kinds = {c.name: c.kind for c in predictor.schema.columns}
    inputs = Schema([ColSpec("double" if kinds.get(name) == "numeric" else "string", name, required=False)
                     for name in example.columns])
    outputs = infer_signature(example, np.asarray(predictor.predict(example))).outputs
    return ModelSignature(inputs, outputs, ParamSchema([ParamSpec("output", "string", "class")]))


class BundleModel(mlflow.pyfunc.PythonModel):
    """predict -> predicted classes (original labels), or a regression model's predicted values;
    params={"output": "proba"} -> (rows, classes) probabilities, columns in the bundle's class order
    (bundle.json "classes"); a regression model's (rows, 1) values."""

    # the signature is logged explicitly; without this MLflow wraps predict for type-hint
    # validation and, finding no hints, warns at import
    _skip_type_hint_validation = True

    def load_context(self, context):
        self.predictor = EnsemblePredictor.load(context.artifacts[ARTIFACT])

    def predict(self, context, model_input, params=None):
        output = (params or {}).get("output", "class")
        if output not in OUTPUTS:
            raise ValueError(f"params.output one of {list(OUTPUTS)} must hold, but got {output!r}")
        x = _rows(model_input, self.predictor)
        if output == "proba":
            return self.predictor.predict_proba(x)
        return np.asarray(self.predictor.predict(x))


def _requirements() -> list[str]:
    # stated, not inferred: inference loads the model in a subprocess, slow and not more exact
    return [f"{pkg}=={metadata.version(pkg)}" for pkg in ("mlflow", "torch", "numpy", "pydantic")]


def log_and_register(bundle_dir: str | Path, registered_name: str, input_example: np.ndarray,
                     tags: dict | None = None, run_id: str | None = None,
                     predictor: EnsemblePredictor | None = None) -> tuple[str, str]:
    """Log the bundle as a pyfunc model (signature, input example) under `run_id` (else the active
    run, else a model without a run) and register it; `tags` become version tags. -> (name, version).
    predictor: the bundle already loaded (else it is loaded here: only its signature is needed)."""
    predictor = predictor or EnsemblePredictor.load(bundle_dir)
    example = _rows(input_example, predictor)
    signature = _signature(predictor, example)
    # a finished parent run reopens for the logging and is finished again when it closes
    ctx = mlflow.start_run(run_id=run_id) if run_id and not _is_active(run_id) else nullcontext()
    with ctx:
        # models from code: the model is this package's serving/pyfunc_code.py, not a pickled object
        info = mlflow.pyfunc.log_model(name="model", python_model=str(Path(__file__).with_name("pyfunc_code.py")),
                                       artifacts={ARTIFACT: str(Path(bundle_dir).resolve())},
                                       signature=signature, input_example=example,
                                       pip_requirements=_requirements(), registered_model_name=registered_name)
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in (tags or {}).items():
        client.set_model_version_tag(registered_name, version, key, str(value))
    return registered_name, version


def _is_active(run_id: str) -> bool:
    active = mlflow.active_run()
    return active is not None and active.info.run_id == run_id


def bundle_dir_for(model_uri: str, dst_path: str | Path | None = None, store: Locations | None = None) -> Path:
    """Download a logged/registered model (models:/NAME/VERSION, models:/NAME@ALIAS, runs:/...) and
    return its local bundle directory (loadable with EnsemblePredictor.load). store: the MLflow
    store (default: serving.home.locations()). Downloads into dst_path, else a fresh temporary directory
    that is removed when this process exits (serving.loader removes its downloads right after loading)."""
    store = store or locations()
    if dst_path is not None:
        return _bundle_dir_in(model_uri, Path(dst_path), store)
    dst = Path(tempfile.mkdtemp(prefix="raysemble-model-"))
    # the caller may hold the directory for the life of the process (a model it loads lazily): removed
    # when the process exits, or at once when the download fails
    atexit.register(shutil.rmtree, dst, ignore_errors=True)
    try:
        return _bundle_dir_in(model_uri, dst, store)
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise


def _bundle_dir_in(model_uri: str, dst: Path, store: Locations) -> Path:
    # MLflow resolves models:/ through the process-wide registry URI whatever registry_uri says:
    # store.active() points it at this store for the download only
    with store.active():
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst),
                                                         tracking_uri=store.mlflow_uri,
                                                         registry_uri=store.registry_uri))
    flavor = Model.load(str(local / "MLmodel")).flavors.get("python_function", {})
    rel = flavor.get("artifacts", {}).get(ARTIFACT, {}).get("path")
    if rel is None or not (local / rel / "bundle.json").is_file():
        raise ValueError(f"a raysemble bundle model (artifact {ARTIFACT!r} with bundle.json) must hold, but "
                         f"{model_uri!r} has artifacts {sorted(flavor.get('artifacts', {}))}")
    return local / rel
