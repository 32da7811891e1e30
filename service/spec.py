"""The sweep spec: one pydantic model composed of the sections each layer defines, and the one
validation path (parse_spec) that every spec takes, from a local file, `submit` or the REST API.

parse_spec raises SpecError and nothing else: before the schema, every value is checked to be a
plain JSON/YAML value within size limits (no tags, no bytes, no huge integers, finite numbers);
after it, each cross-section and data check runs guarded, so whatever it raises becomes a line
naming the field it was checking.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictStr, ValidationError, field_validator

from serving.config import ServeConfig
from serving.home import Locations, locations
from trainers.config import CVConfig, DistillConfig, EnsembleConfig, ResourcesConfig, SearchConfig
from trainers.data import MAX_PATH_CHARS, DataConfig, DataError, Dataset, load_dataset
from trainers.families import FAMILIES, get_family, known_family
from trainers.families.scope import FAMILY_KEY, key_problem, receivers, scope_of
from trainers.loop import split_params
from trainers.models import MAX_CHANNELS, MAX_DEPTH as MAX_MODEL_DEPTH, MAX_HIDDEN, Activation, ModelConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

# limits on every value of a spec, checked before the schema (which bounds each field further)
MAX_DEPTH = 32  # nesting of mappings and lists
MAX_STRING_CHARS = 4096
MAX_KEY_CHARS = 128
MAX_LIST_ITEMS = 1024
MAX_MAPPING_KEYS = 256
MAX_INT = 2**53  # |an integer|: JSON's exactly representable range
MAX_INT_DIGITS = 32  # longer integer literals are not even converted (int() of 4300+ digits raises)
MAX_PROBLEMS = 50  # lines of one SpecError


class SpecError(ValueError):
    """One or more problems with a spec, one line each, every line naming a field path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class ModelSection(BaseModel):
    """The model family plus its fixed shape; searched shape keys go in search.space, and a sweep
    over several families searches `family` there (search.space.family: {choice: [...]})."""

    model_config = ConfigDict(extra="forbid")

    family: StrictStr = Field("mlp", max_length=64)  # a name of trainers.families.FAMILIES
    # family torch: "package.module:function" building the user's nn.Module (code: CLI and submit only)
    factory: StrictStr | None = Field(None, max_length=256, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    hidden: int | None = Field(None, ge=1, le=MAX_HIDDEN)
    depth: int | None = Field(None, ge=1, le=MAX_MODEL_DEPTH)
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

    def base_model_config(self, in_features: int = 0, n_classes: int = 0) -> ModelConfig:
        fixed = {k: v for k, v in self.model.model_dump().items() if v is not None}
        return ModelConfig.model_validate({**fixed, "in_features": in_features, "n_classes": n_classes,
                                           "image_shape": self.data.image_shape})

    _code_dirs: list[str] = PrivateAttr(default_factory=list)  # where model.factory imports from

    def families(self) -> list[str]:
        """The families trials can train: the searched `family` dimension's values, else model.family."""
        dim = self.search.space.get(FAMILY_KEY)
        if dim is None:
            return [self.model.family]
        return list(dict.fromkeys(str(v) for v in dim.endpoints()))

    def locations(self) -> Locations:
        """Home, MLflow store and Tune storage of this sweep (serving.home resolves them)."""
        return locations(self.tracking.mlflow_uri, self.tracking.storage_path)

    def mlflow_uri(self) -> str:
        return self.locations().mlflow_uri

    def experiment(self) -> str:
        return self.tracking.experiment or self.name


def _format_pydantic(err: ValidationError) -> list[str]:
    lines, seen = [], set()
    for e in err.errors():
        # a tagged union repeats its tag in the path (space.lr.choice.choice); say it once
        parts = [str(p) for i, p in enumerate(e["loc"]) if i == 0 or p != e["loc"][i - 1]]
        # a scalar union (search.fixed.KEY, a choice's items) reports one line per member type: keep one
        if len(parts) > 2 and parts[-1] in _UNION_MEMBERS and (parts[-3] == "fixed" or parts[-2].isdigit()):
            parts = parts[:-1]
            if tuple(parts) in seen:
                continue
            seen.add(tuple(parts))
        loc = ".".join(parts)
        msg = e["msg"].removeprefix("Value error, ")
        quiet = e["type"] == "missing" or "but got" in msg or isinstance(e.get("input"), (BaseModel, dict, list))
        shown = "" if quiet else f" (got {_show(e.get('input'))})"
        lines.append(f"{loc or '<spec>'}: {msg}{shown}")
    return lines


_UNION_MEMBERS = {"bool", "int", "float", "str", "constrained-str"}


def _show(value: object) -> str:
    """A short, safe rendering of a user's value: never int->str of a huge int, never a long string."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str) and len(value) > 80:
        return repr(value[:80]) + f"... ({len(value)} characters)"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return repr(value)
    return f"a {type(value).__name__}"


class TooLongInteger:
    """An integer literal with more than MAX_INT_DIGITS digits, kept unconverted: the loaders return
    this instead of calling int() on it, and value_problems reports it with its field path."""

    def __init__(self, digits: int):
        self.digits = digits


class TaggedValue:
    """A YAML value of a type outside JSON's (!!binary, !!timestamp, !!set, !!omap, !!pairs): not
    constructed, so it can never be coerced into a field; value_problems reports it with its path."""

    def __init__(self, tag: str):
        self.tag = tag.replace("tag:yaml.org,2002:", "!!")


def value_problems(raw: object) -> list[str]:
    """Every value of a loaded spec that is not a plain, bounded JSON/YAML value, with its path."""
    problems: list[str] = []
    stack: list[tuple[object, tuple]] = [(raw, ())]
    while stack and len(problems) < MAX_PROBLEMS:
        value, path = stack.pop()
        where = ".".join(path) or "<spec>"
        if len(path) > MAX_DEPTH:
            problems.append(f"{where}: at most {MAX_DEPTH} levels of nesting expected, but got more")
        elif isinstance(value, TaggedValue):
            problems.append(f"{where}: a plain JSON/YAML value expected, but got a {value.tag}-tagged value")
        elif isinstance(value, TooLongInteger):
            problems.append(f"{where}: an integer of at most {MAX_INT_DIGITS} digits expected, but got one of "
                            f"{value.digits} digits")
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if abs(value) > MAX_INT:
                problems.append(f"{where}: an integer within +-2**53 expected, but got one of "
                                f"{value.bit_length()} bits")
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(f"{where}: a finite number expected, but got {value}")
        elif isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                problems.append(f"{where}: a string of at most {MAX_STRING_CHARS} characters expected, but got "
                                f"{len(value)}")
        elif isinstance(value, (list, tuple)):  # tuples: specs rebuilt from a model_dump()
            if len(value) > MAX_LIST_ITEMS:
                problems.append(f"{where}: a list of at most {MAX_LIST_ITEMS} items expected, but got {len(value)}")
            else:
                stack.extend((item, (*path, str(i))) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            if len(value) > MAX_MAPPING_KEYS:
                problems.append(f"{where}: a mapping of at most {MAX_MAPPING_KEYS} keys expected, but got "
                                f"{len(value)}")
                continue
            for key, item in reversed(list(value.items())):
                if not isinstance(key, str):
                    problems.append(f"{where}: string keys expected, but got a key of type {type(key).__name__}")
                elif len(key) > MAX_KEY_CHARS or not key.isprintable():
                    problems.append(f"{where}: keys of at most {MAX_KEY_CHARS} printable characters expected, "
                                    f"but got {_show(key)}")
                else:
                    stack.append((item, (*path, key)))
        else:
            what = "binary data" if isinstance(value, (bytes, bytearray)) else f"a {type(value).__name__}"
            problems.append(f"{where}: a string, number, boolean, null, list or mapping expected, but got {what}")
    return problems


class Checks:
    """Extra checks a caller adds to parse_spec (service.safety's Policy: data roots, tracking,
    budget). Each returns problem lines; anything they raise is turned into lines too."""

    def before_data(self, spec: "SweepSpec") -> list[str]:
        """After the schema, before any file is read; may rewrite spec.data.source (the path to use)."""
        return []

    def after_data(self, spec: "SweepSpec", dataset: Dataset) -> list[str]:
        return []


def _guarded(where: str, check, *args) -> list[str]:
    """check(*args)'s problem lines; whatever it raises becomes lines naming `where`, never a crash."""
    try:
        return list(check(*args))
    except SpecError as err:
        return err.problems
    except DataError as err:
        return [str(err)]
    except ValidationError as err:
        return [f"{where}.{line}" for line in _format_pydantic(err)]
    except Exception as err:  # noqa: BLE001 - the point: a bad spec is a field error, never a 5xx
        return [f"{where}: a value these checks can handle expected, but checking it failed "
                f"({type(err).__name__})"]


def _hyperparameter_problem(key: str, value, family: str, base: ModelConfig) -> str | None:
    """Why one value of a searched or fixed hyperparameter is out of its field's bounds for one of the
    families it reaches, or None."""
    try:
        split_params({FAMILY_KEY: family, key: value}, base)
    except ValidationError as err:
        detail = err.errors()[0]["msg"].removeprefix("Value error, ")
        return f"{detail} (got {_show(value)})"
    except ValueError as err:  # a family that refuses the value outright (no factory, unknown family)
        return str(err).removeprefix("model.factory: ")
    return None


def _family_problems(spec: SweepSpec) -> list[str]:
    problems = []
    dim = spec.search.space.get(FAMILY_KEY)
    if FAMILY_KEY in spec.search.fixed:
        problems.append(f"search.fixed.{FAMILY_KEY}: set model.family for one family, or search "
                        f"search.space.{FAMILY_KEY}: {{choice: [...]}}, but got a fixed family")
    if dim is not None:
        if not hasattr(dim, "choice") and not hasattr(dim, "grid"):
            problems.append(f"search.space.{FAMILY_KEY}: a choice or grid of family names expected, but got "
                            f"{type(dim).__name__.lower()}")
            return problems
        unknown = [v for v in dim.endpoints() if not isinstance(v, str) or v not in FAMILIES]
        if unknown:
            problems.append(f"search.space.{FAMILY_KEY}: names of {sorted(FAMILIES)} expected, but got "
                            f"{[_show(v) for v in unknown[:5]]}")
        elif spec.search.algorithm == "random" and any(hasattr(d, "grid") for d in spec.search.space.values()):
            problems.append("search.space: grid dimensions with a searched family need algorithm grid, but got "
                            "algorithm 'random'")
    return problems


def _semantic_problems(spec: SweepSpec) -> list[str]:
    """Checks that need more than one section: the space against the families, folds against the data."""
    problems = _family_problems(spec)
    if problems:
        return problems
    try:
        base = spec.base_model_config()
    except ValidationError as err:
        return [f"model.{line}" for line in _format_pydantic(err)]
    families = spec.families()
    for where, mapping in (("search.space", spec.search.space), ("search.fixed", spec.search.fixed)):
        for key in mapping:
            problem = None if key == FAMILY_KEY else key_problem(key, families)
            if problem:
                problems.append(f"{where}.{key}: {problem}")
    if problems:
        return problems
    if "torch" in families and not spec.model.factory:
        problems.append("model.factory: 'package.module:function' expected for family torch, but got none")
    for key, dim in spec.search.space.items():
        problems += _value_problems(f"search.space.{key}", key, dim.endpoints(), families, base)
    for key, value in spec.search.fixed.items():
        problems += _value_problems(f"search.fixed.{key}", key, [value], families, base)
    if problems:
        return problems
    not_torch = [f for f in families if not get_family(f).is_torch]
    if spec.data.stream is True:
        problems += _stream_problems(spec, not_torch)
    if spec.resources.parallelism == "ddp" and not_torch:
        problems.append(f"resources.parallelism: 'ddp' needs torch families only, but the sweep trains {not_torch}")
    return problems


def streams(spec: SweepSpec) -> bool:
    """Whether the sweep's trials read their rows through Ray Data (data.stream, or "auto" and a large
    Parquet source in a sweep that can stream)."""
    if spec.data.stream != "auto":
        return spec.data.stream
    from trainers.stream import STREAM_ABOVE_BYTES

    not_torch = [f for f in spec.families() if not get_family(f).is_torch]
    if not _is_parquet(spec.data.source) or _stream_problems(spec, not_torch):
        return False
    path = Path(spec.data.source)
    files = list(path.glob("*.parquet")) + list(path.glob("*.pq")) if path.is_dir() else [path]
    return sum(f.stat().st_size for f in files) > STREAM_ABOVE_BYTES


def _is_parquet(source: str) -> bool:
    return not source.startswith("sklearn:") and (source.lower().endswith((".parquet", ".pq")) or
                                                  Path(source).is_dir() and not any(Path(source).glob("*/")))


def _stream_problems(spec: SweepSpec, not_torch: list[str]) -> list[str]:
    problems = []
    source = spec.data.source
    if not _is_parquet(source):
        problems.append(f"data.stream: a Parquet source (a .parquet file or a directory of shards) expected, but "
                        f"got {_show(source)}")
    if not_torch:
        problems.append(f"data.stream: torch families only (rows arrive in batches), but the sweep trains {not_torch}")
    if spec.resources.executor == "in_trial" or spec.resources.workers_per_trial != 1:
        problems.append(f"data.stream: executor ray_train (or auto) with workers_per_trial 1 expected, but got "
                        f"executor={spec.resources.executor!r}, workers_per_trial={spec.resources.workers_per_trial}")
    return problems


def _value_problems(where: str, key: str, values: list, families: list[str], base: ModelConfig) -> list[str]:
    if key == FAMILY_KEY or "torch" in receivers(key, families) and not base.factory:
        return []
    for family in receivers(key, families):
        for value in values:
            problem = _hyperparameter_problem(key, value, family, base)
            if problem:
                return [f"{where}: {problem}"]
    return []


def trial_values(spec: SweepSpec, key: str) -> list:
    """The fixed value, or the space's endpoints, of a hyperparameter as a trial's config will hold
    it (coerced by its field: "3" epochs is 3), for every family it reaches; values a field rejects
    are left out, since the semantic checks report those."""
    found = []
    families = spec.families()
    for where, mapping in (("fixed", spec.search.fixed), ("space", spec.search.space)):
        for raw_key, entry in mapping.items():
            if raw_key == FAMILY_KEY or scope_of(raw_key)[1] != key:
                continue
            values = [entry] if where == "fixed" else entry.endpoints()
            for family in receivers(raw_key, families):
                for value in values:
                    try:
                        model_cfg, fit_cfg = split_params({FAMILY_KEY: family, raw_key: value},
                                                          ModelConfig(family=family))
                    except (ValidationError, ValueError):
                        continue
                    found.append(getattr(fit_cfg, key) if hasattr(fit_cfg, key) else getattr(model_cfg, key, value))
    return found


def _image_problems(spec: SweepSpec) -> list[str]:
    """Checks that need data.image_shape: run after the data, which may supply it (an idx3 header)."""
    problems = []
    shape = spec.data.image_shape
    for key, what in (("cutmix_alpha", "cutmix"), ("crop_padding", "random crop"), ("hflip", "horizontal flip")):
        if shape is None and any(v > 0 for v in trial_values(spec, key)):
            problems.append(f"search.{key}: {what} needs image-shaped data (data.image_shape), "
                            "but got flat data (image_shape=None)")
    padding = max(trial_values(spec, "crop_padding"), default=0)
    if shape is not None and padding >= min(shape[1:]):
        problems.append(f"search.crop_padding: < min(H, W) = {min(shape[1:])} expected, but got {padding}")
    image_families = [f for f in ("cnn", "resnet") if f in (*spec.families(), spec.distill.student.family)]
    if image_families and shape is None:
        problems.append(f"model.family: family {image_families[0]!r} needs data.image_shape, but got "
                        "image_shape=None")
    return problems


def _data_problems(spec: SweepSpec, base_dir: Path, found: list) -> list[str]:
    if spec.data.test_source is not None:
        # absolute like data.source (_absolute): resume, jobs and later steps may run from another directory
        spec.data.test_source = str((base_dir / spec.data.test_source).resolve())
    dataset = load_dataset(spec.data, base_dir)
    found.append(dataset)
    if spec.data.image_shape is None and dataset.image_shape is not None:
        # inferred from the source (an idx3 header); kept in the spec so every model sees the images' shape
        spec.data.image_shape = dataset.image_shape
    problems = []
    if dataset.n_predefined_test:
        # data.test_source is the held-out split as it is (test_fraction unused): folds split the rest
        smallest_train = int(np.bincount(dataset.y[:len(dataset.y) - dataset.n_predefined_test],
                                         minlength=dataset.n_classes).min())
    else:
        n_test = int(np.ceil(len(dataset.y) * spec.data.test_fraction))
        smallest = int(np.bincount(dataset.y).min())
        # the held-out split removes about test_fraction of each class before folding
        smallest_train = smallest - int(np.ceil(smallest * spec.data.test_fraction))
        if n_test < dataset.n_classes:
            problems.append(f"data.test_fraction: a test split of at least one row per class ({dataset.n_classes}) "
                            f"expected, but got {n_test} rows")
    if spec.cv.folds > smallest_train:
        problems.append(f"cv.folds: folds <= the smallest class's training rows ({smallest_train}) must hold, "
                        f"but got folds={spec.cv.folds}")
    return problems


def _schema(raw: object) -> SweepSpec:
    if not isinstance(raw, dict):
        raise SpecError([f"<spec>: a mapping at the top level expected, but got {_show(raw)}"])
    problems = value_problems(raw)
    if problems:
        raise SpecError(problems)
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(_format_pydantic(err)[:MAX_PROBLEMS]) from None
    except Exception as err:  # noqa: BLE001 - a validator that raised other than ValueError: still a 4xx
        raise SpecError([f"<spec>: a spec the schema can check expected, but checking it failed "
                         f"({type(err).__name__})"]) from None


def parse_spec(raw: object, base_dir: str | Path = ".", checks: Checks | None = None) -> SweepSpec:
    """The one validation path of a loaded spec: plain values, the schema, checks.before_data, the
    cross-section checks, the data itself, checks.after_data. Raises SpecError listing every problem
    found (one line each, naming its field), and no other exception."""
    checks = checks or Checks()
    spec = _schema(raw)
    problems = _guarded("<spec>", checks.before_data, spec)
    if problems:
        raise SpecError(problems)
    if not spec.data.source.startswith("sklearn:"):
        # absolute from here on: resume, jobs and later steps may run from another directory
        problems = _guarded("data.source", _absolute, spec, Path(base_dir))
        if problems:
            raise SpecError(problems)
    problems = _guarded("search", _semantic_problems, spec)
    found: list[Dataset] = []
    problems += _guarded("data.source", _data_problems, spec, Path(base_dir), found)
    if not problems:
        problems = _guarded("search", _image_problems, spec)
    if not problems and found:
        problems = _guarded("<spec>", checks.after_data, spec, found[0])
    if problems:
        raise SpecError(problems[:MAX_PROBLEMS])
    return spec


def _absolute(spec: SweepSpec, base_dir: Path) -> list[str]:
    spec.data.source = str((base_dir / spec.data.source).resolve())
    if spec.data.test_source is not None:
        spec.data.test_source = str((base_dir / spec.data.test_source).resolve())
    return []


def _int_literal(text: str):
    """int(text), or a TooLongInteger for a literal that int() should not be asked to convert."""
    digits = sum(c.isalnum() for c in text)
    return TooLongInteger(digits) if digits > MAX_INT_DIGITS else int(text)


class SpecLoader(yaml.SafeLoader):
    """YAML with core types only: str, int, float, bool, null, lists and mappings. A !!binary,
    !!timestamp, !!set, !!omap or !!pairs value becomes a TaggedValue (reported with its field by
    value_problems); custom and !!python tags stay parse errors (SafeLoader has no constructor for
    them); dates stay strings; a huge integer literal is not converted (a TooLongInteger)."""

    def construct_yaml_int(self, node):
        digits = sum(c.isalnum() for c in str(self.construct_scalar(node)))
        if digits > MAX_INT_DIGITS:
            return TooLongInteger(digits)
        return super().construct_yaml_int(node)

    def construct_tagged(self, node):
        return TaggedValue(node.tag)


SpecLoader.add_constructor("tag:yaml.org,2002:int", SpecLoader.construct_yaml_int)
for _tag in ("binary", "timestamp", "set", "omap", "pairs"):
    SpecLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", SpecLoader.construct_tagged)
SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def loads_json(text: str) -> object:
    """json.loads with huge integer literals left unconverted (TooLongInteger)."""
    return json.loads(text, parse_int=_int_literal)


def read_spec_text(text: str, source: str = "<spec>") -> object:
    try:
        return loads_json(text) if text.lstrip().startswith("{") else yaml.load(text, Loader=SpecLoader)  # noqa: S506
    except RecursionError:
        raise SpecError([f"{source}: at most {MAX_DEPTH} levels of nesting expected, but got more"]) from None
    except (yaml.YAMLError, ValueError) as err:  # JSONDecodeError is a ValueError
        first = re.sub(r"\s+", " ", str(err))[:300]
        raise SpecError([f"{source}: valid YAML or JSON expected, but parsing failed: {first}"]) from None


class LocalCode(Checks):
    """A spec from the user's own file may name their code (model.factory, family torch): it must
    import from the spec's directory or the current one and build a network that maps the data's
    rows to one logit per class. Those directories also go on PYTHONPATH, so the Ray this process
    starts (its trial processes inherit the environment) imports the same module."""

    def __init__(self, spec_dir: Path):
        self.dirs = [str(Path(spec_dir).resolve()), str(Path.cwd())]

    def after_data(self, spec: SweepSpec, dataset: Dataset) -> list[str]:
        if "torch" not in spec.families():
            return []
        import torch

        from trainers.families.factory import add_code_dirs

        add_code_dirs(self.dirs)
        spec._code_dirs = list(self.dirs)  # kept with the sweep: resume and ensemble import it again
        # one trial's values: fixed ones, else each dimension's first endpoint
        values = {k: v.endpoints()[0] for k, v in spec.search.space.items() if k != FAMILY_KEY}
        base = spec.base_model_config(dataset.x.shape[1], dataset.n_classes)
        try:
            model_cfg, _ = split_params({**values, **spec.search.fixed, FAMILY_KEY: "torch"}, base)
            with torch.no_grad():
                out = get_family("torch").build(model_cfg).eval()(torch.as_tensor(dataset.x[:2]))
        except ValueError as err:
            return [str(err) if str(err).startswith("model.factory") else f"model.factory: {err}"]
        except Exception as err:  # noqa: BLE001 - the user's code failing is a spec problem, not a crash
            return [f"model.factory: a factory that builds and runs expected, but {spec.model.factory} raised "
                    f"{type(err).__name__}: {str(err)[:200]}"]
        if tuple(out.shape) != (2, dataset.n_classes):
            return [f"model.factory: logits of shape (rows, {dataset.n_classes}) expected, but "
                    f"{spec.model.factory}'s network returned {tuple(out.shape)} for 2 rows"]
        return []


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError([f"{path}: a spec file expected, but it does not exist"])
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError([f"{path}: a readable UTF-8 spec file expected, but reading failed "
                         f"({type(err).__name__})"]) from None
    # relative data paths are relative to the current directory, as a user typing paths expects
    return parse_spec(read_spec_text(text, str(path)), Path.cwd(), LocalCode(path.parent))
