"""The sweep spec: one pydantic model composed of the sections each layer defines (trainers/ for data,
cv, search, resources, ensemble and distillation; serving/ for serve) plus the sections only this
layer has (model, tracking)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictStr, field_validator, model_validator

from serving.config import ServeConfig
from serving.home import Locations, locations
from trainers.config import CVConfig, DistillConfig, EnsembleConfig, ResourcesConfig, SearchConfig
from trainers.data import MAX_PATH_CHARS, DataConfig, Dataset
from trainers.families import DEFAULT_FAMILY, known_family
from trainers.families.config import MAX_CHANNELS, MAX_DEPTH, MAX_HIDDEN, Activation, ModelConfig
from trainers.families.scope import FAMILY_KEY
from trainers import portfolio

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ModelSection(BaseModel):
    """The model family plus its fixed shape; searched shape keys go in search.space, and a sweep
    over several families searches `family` there (search.space.family: {choice: [...]})."""

    model_config = ConfigDict(extra="forbid")

    family: StrictStr = Field(DEFAULT_FAMILY, max_length=64)  # a name of trainers.families.FAMILIES
    # a family that runs user code: "package.module:function" building the user's nn.Module (CLI and submit only)
    factory: StrictStr | None = Field(None, max_length=256, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    hidden: int | None = Field(None, ge=1, le=MAX_HIDDEN)
    depth: int | None = Field(None, ge=1, le=MAX_DEPTH)
    channels: int | None = Field(None, ge=1, le=MAX_CHANNELS)
    dropout: float | None = Field(None, ge=0.0, lt=1.0, allow_inf_nan=False)
    activation: Activation | None = None

    _known_family = field_validator("family")(classmethod(lambda cls, v: known_family(v)))


class TrackingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # default: $MLFLOW_TRACKING_URI, else SQLite under $RAYSEMBLE_HOME
    mlflow_uri: StrictStr | None = Field(None, min_length=1, max_length=MAX_PATH_CHARS)
    # default: the sweep name
    experiment: StrictStr | None = Field(None, min_length=1, max_length=256)
    # Tune storage; default $RAYSEMBLE_HOME/tune (any path Ray accepts)
    storage_path: StrictStr | None = Field(None, min_length=1, max_length=MAX_PATH_CHARS)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(pattern=NAME_PATTERN)
    data: DataConfig
    cv: CVConfig = Field(default_factory=CVConfig)
    model: ModelSection = Field(default_factory=ModelSection)
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, raw: Any) -> Any:
        """search.preset (trainers.portfolio) filled in before the sections are checked, so what is stored
        is what runs: the expanded spec parses again as itself (its space is no longer empty)."""
        search = raw.get("search", {}) if isinstance(raw, dict) else None
        if not isinstance(search, dict) or search.get("space"):
            return raw
        preset = search.get("preset", "auto")
        if preset == "tabular" or (preset == "auto" and "model" not in raw and not search.get("fixed")):
            raw = {**raw, "search": {**portfolio.expand(search, "tabular"), "preset": "tabular"}}
            raw.setdefault("ensemble", portfolio.ensemble("tabular"))
            if isinstance(raw.get("distill", {}), dict):
                raw["distill"] = portfolio.distill(raw.get("distill", {}), "tabular")
        return raw

    # what parsing learnt beyond the fields (never written: a stored spec is its fields)
    _code_dirs: list[str] = PrivateAttr(default_factory=list)  # where a user-code family imports from
    _dataset: Any = PrivateAttr(None)  # the rows parse_spec loaded to check them, handed on to prepare

    def base_model_config(self, in_features: int = 0, n_classes: int = 0, task: str | None = None) -> ModelConfig:
        """n_classes: the model's outputs (Dataset.n_outputs); task: the data's (default data.task, with
        auto read as classification)."""
        fixed = {k: v for k, v in self.model.model_dump().items() if v is not None}
        task = task or (self.data.task if self.data.task != "auto" else "classification")
        return ModelConfig.model_validate({**fixed, "in_features": in_features, "n_classes": n_classes,
                                           "image_shape": self.data.image_shape, "task": task})

    def families(self) -> list[str]:
        """The families trials can train: the searched `family` dimension's values, else model.family."""
        dim = self.search.space.get(FAMILY_KEY)
        if dim is None:
            return [self.model.family]
        return list(dict.fromkeys(str(v) for v in dim.endpoints()))

    def code_dirs(self) -> list[str]:
        return list(self._code_dirs)

    def dataset(self) -> Dataset | None:
        """The rows parse_spec loaded (None for a spec that did not come through it): taken once."""
        found, self._dataset = self._dataset, None
        return found

    def locations(self) -> Locations:
        """Home, MLflow store and Tune storage of this sweep (serving.home resolves them)."""
        return locations(self.tracking.mlflow_uri, self.tracking.storage_path)

    def mlflow_uri(self) -> str:
        return self.locations().mlflow_uri

    def experiment(self) -> str:
        return self.tracking.experiment or self.name
