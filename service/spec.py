"""The sweep spec: one pydantic model composed of the sections each layer defines."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.config import ServeConfig
from serving.home import Locations, locations
from trainers.config import CVConfig, DistillConfig, EnsembleConfig, ResourcesConfig, SearchConfig
from trainers.data import DataConfig, DataError, load_dataset
from trainers.loop import MODEL_KEYS, TrainConfig, split_params
from trainers.models import ModelConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SpecError(ValueError):
    """One or more problems with a spec, one line each, every line naming a field path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class ModelSection(BaseModel):
    """The model family plus its fixed shape; searched shape keys go in search.space."""

    model_config = ConfigDict(extra="forbid")

    family: Literal["mlp", "cnn"] = "mlp"
    hidden: int | None = None
    depth: int | None = None
    channels: int | None = None
    dropout: float | None = None
    activation: str | None = None


class TrackingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mlflow_uri: str | None = None  # default: $MLFLOW_TRACKING_URI, else SQLite under $RAYSEMBLE_HOME
    experiment: str | None = None  # default: the sweep name
    storage_path: str | None = None  # Tune storage; default $RAYSEMBLE_HOME/tune (any path Ray accepts)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    data: DataConfig
    cv: CVConfig = Field(default_factory=CVConfig)
    model: ModelSection = Field(default_factory=ModelSection)
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    def base_model_config(self, in_features: int = 0, n_classes: int = 0) -> ModelConfig:
        fixed = {k: v for k, v in self.model.model_dump().items() if v is not None}
        return ModelConfig.model_validate({**fixed, "in_features": in_features, "n_classes": n_classes,
                                           "image_shape": self.data.image_shape})

    def locations(self) -> Locations:
        """Home, MLflow store and Tune storage of this sweep (serving.home resolves them)."""
        return locations(self.tracking.mlflow_uri, self.tracking.storage_path)

    def mlflow_uri(self) -> str:
        return self.locations().mlflow_uri

    def experiment(self) -> str:
        return self.tracking.experiment or self.name


def _format_pydantic(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        # a tagged union repeats its tag in the path (space.lr.choice.choice); say it once
        parts = [str(p) for i, p in enumerate(e["loc"]) if i == 0 or p != e["loc"][i - 1]]
        loc = ".".join(parts)
        msg = e["msg"].removeprefix("Value error, ")
        quiet = e["type"] == "missing" or "but got" in msg or isinstance(e.get("input"), BaseModel)
        shown = "" if quiet else f" (got {repr(e.get('input'))[:160]})"
        lines.append(f"{loc or '<spec>'}: {msg}{shown}")
    return lines


def _semantic_problems(spec: SweepSpec) -> list[str]:
    """Checks that need more than one section: the space against the model, folds against the data."""
    problems: list[str] = []
    base = spec.base_model_config()
    known = set(MODEL_KEYS) | set(TrainConfig.model_fields)
    for where, mapping in (("search.space", spec.search.space), ("search.fixed", spec.search.fixed)):
        for key in mapping:
            if key not in known:
                problems.append(f"{where}.{key}: a hyperparameter of {sorted(known)} expected, but got {key!r}")
    if problems:
        return problems
    for key, dim in spec.search.space.items():
        for value in dim.endpoints():
            try:
                split_params({**spec.search.fixed, key: value}, base)
            except ValidationError as err:
                detail = err.errors()[0]["msg"].removeprefix("Value error, ")
                problems.append(f"search.space.{key}: {detail} (got {value!r})")
                break
    try:
        split_params(dict(spec.search.fixed), base)
    except ValidationError as err:
        problems += [f"search.fixed.{line}" for line in _format_pydantic(err)]
    uses_cutmix = any(float(v) > 0 for v in _values(spec, "cutmix_alpha"))
    if uses_cutmix and spec.data.image_shape is None:
        problems.append("search.cutmix_alpha: cutmix needs image-shaped data (data.image_shape), "
                        "but got flat data (image_shape=None)")
    if "cnn" in (spec.model.family, spec.distill.student.family) and spec.data.image_shape is None:
        problems.append("model.family: family 'cnn' needs data.image_shape, but got image_shape=None")
    return problems


def _values(spec: SweepSpec, key: str) -> list:
    if key in spec.search.fixed:
        return [spec.search.fixed[key]]
    if key in spec.search.space:
        return [v for v in spec.search.space[key].endpoints() if not isinstance(v, str)]
    return []


def _data_problems(spec: SweepSpec, base_dir: Path) -> list[str]:
    try:
        dataset = load_dataset(spec.data, base_dir)
    except DataError as err:
        return [str(err)]
    n_test = int(np.ceil(len(dataset.y) * spec.data.test_fraction))
    smallest = int(np.bincount(dataset.y).min())
    # the held-out split removes about test_fraction of each class before folding
    smallest_train = smallest - int(np.ceil(smallest * spec.data.test_fraction))
    problems = []
    if n_test < dataset.n_classes:
        problems.append(f"data.test_fraction: a test split of at least one row per class ({dataset.n_classes}) "
                        f"expected, but got {n_test} rows")
    if spec.cv.folds > smallest_train:
        problems.append(f"cv.folds: folds <= the smallest class's training rows ({smallest_train}) must hold, "
                        f"but got folds={spec.cv.folds}")
    return problems


def parse_spec(raw: object, base_dir: str | Path = ".") -> SweepSpec:
    """Validate a loaded mapping; raises SpecError listing every problem found."""
    if not isinstance(raw, dict):
        raise SpecError([f"<spec>: a mapping at the top level expected, but got {type(raw).__name__}"])
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(_format_pydantic(err)) from None
    if not spec.data.source.startswith("sklearn:"):
        # absolute from here on: resume, jobs and later steps may run from another directory
        spec.data.source = str((Path(base_dir) / spec.data.source).resolve())
    problems = _semantic_problems(spec)
    problems += _data_problems(spec, Path(base_dir))
    if problems:
        raise SpecError(problems)
    return spec


def read_spec_text(text: str, source: str = "<spec>") -> object:
    try:
        return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        first = re.sub(r"\s+", " ", str(err))[:300]
        raise SpecError([f"{source}: valid YAML or JSON expected, but parsing failed: {first}"]) from None


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError([f"{path}: a spec file expected, but it does not exist"])
    # relative data paths are relative to the current directory, as a user typing paths expects
    return parse_spec(read_spec_text(path.read_text(), str(path)), Path.cwd())
