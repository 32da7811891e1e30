"""Checks that span sections of a parsed spec: the search space against the families it reaches, the
data against the folds and the held-out split, image-only knobs against the data's shape. Each
returns problem lines naming a field. `Checks` is what a caller adds to parse_spec (the submitting
side's Policy, the local user's code)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import ValidationError

from service.spec.errors import format_pydantic, show
from service.spec.schema import SweepSpec
from trainers.data import Dataset, load_dataset
from trainers.data.files import Files
from trainers.ensemble.combiners import COMBINERS, get_combiner
from trainers.families import FAMILIES, get_family, user_code_families
from trainers.families.config import ModelConfig
from trainers.families.scope import FAMILY_KEY, key_problem, receivers, scope_of
from trainers.train_config import split_params
from trainers.tables import is_table


class Checks:
    """Extra checks a caller adds to parse_spec (service.spec.policy's Policy: data roots, tracking,
    budget). Each returns problem lines; anything they raise is turned into lines too."""

    def base_dir(self) -> Path:
        """Where a relative data path is relative to."""
        return Path.cwd()

    def files(self) -> Files:
        """How the data files are opened (trainers.data.files): here, as the environment says (a job's
        data roots, RAYSEMBLE_DATA_ROOTS), else as the user's own."""
        return Files.from_env()

    def before_data(self, spec: SweepSpec) -> list[str]:
        """After the schema, before any file is read; may rewrite spec.data.source (the path to use)."""
        return []

    def after_data(self, spec: SweepSpec, dataset: Dataset) -> list[str]:
        return []


def _hyperparameter_problem(key: str, value, family: str, base: ModelConfig) -> str | None:
    """Why one value of a searched or fixed hyperparameter is out of its field's bounds for one of the
    families it reaches, or None."""
    try:
        split_params({FAMILY_KEY: family, key: value}, base)
    except ValidationError as err:
        detail = err.errors()[0]["msg"].removeprefix("Value error, ")
        return f"{detail} (got {show(value)})"
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
                            f"{[show(v) for v in unknown[:5]]}")
        else:
            problem = spec.search.searcher().family_problem(spec.search)
            if problem:
                problems.append(f"search.space: {problem}")
    return problems


def semantic_problems(spec: SweepSpec) -> list[str]:
    """Checks that need more than one section: the space against the families, folds against the data."""
    problems = _family_problems(spec)
    if problems:
        return problems
    try:
        base = spec.base_model_config()
    except ValidationError as err:
        return [f"model.{line}" for line in format_pydantic(err)]
    families = spec.families()
    for where, mapping in (("search.space", spec.search.space), ("search.fixed", spec.search.fixed)):
        for key in mapping:
            problem = None if key == FAMILY_KEY else key_problem(key, families)
            if problem:
                problems.append(f"{where}.{key}: {problem}")
    if problems:
        return problems
    for family in user_code_families(families):
        if not spec.model.factory:
            problems.append(f"model.factory: 'package.module:function' expected for family {family}, but got none")
    for key, dim in spec.search.space.items():
        problems += _value_problems(f"search.space.{key}", key, dim.endpoints(), families, base)
    for key, value in spec.search.fixed.items():
        problems += _value_problems(f"search.fixed.{key}", key, [value], families, base)
    if problems:
        return problems
    not_torch = [f for f in families if not get_family(f).is_torch]
    if spec.data.stream is True:
        problems += stream_problems(spec, not_torch)
    if spec.resources.parallelism == "ddp" and not_torch:
        problems.append(f"resources.parallelism: 'ddp' needs torch families only, but the sweep trains {not_torch}")
    return problems


def is_parquet(source: str) -> bool:
    return not source.startswith("sklearn:") and (source.lower().endswith((".parquet", ".pq")) or
                                                  Path(source).is_dir() and not any(Path(source).glob("*/")))


def stream_problems(spec: SweepSpec, not_torch: list[str]) -> list[str]:
    """Why this sweep's trials cannot read their rows through Ray Data (data.stream)."""
    problems = []
    source = spec.data.source
    if not is_parquet(source):
        problems.append(f"data.stream: a Parquet source (a .parquet file or a directory of shards) expected, but "
                        f"got {show(source)}")
    if not_torch:
        problems.append(f"data.stream: torch families only (rows arrive in batches), but the sweep trains {not_torch}")
    if spec.cv.repeats != 1:
        problems.append(f"data.stream: cv.repeats 1 expected (a streamed row belongs to one fold), but got "
                        f"repeats={spec.cv.repeats}")
    if spec.search.patience is not None:
        problems.append(f"data.stream: search.patience null expected (a streamed trial runs every epoch), but got "
                        f"patience={spec.search.patience}")
    if spec.resources.executor == "in_trial" or spec.resources.workers_per_trial != 1:
        problems.append(f"data.stream: executor ray_train (or auto) with workers_per_trial 1 expected, but got "
                        f"executor={spec.resources.executor!r}, workers_per_trial={spec.resources.workers_per_trial}")
    return problems


def _value_problems(where: str, key: str, values: list, families: list[str], base: ModelConfig) -> list[str]:
    if key == FAMILY_KEY:
        return []
    reached = receivers(key, families)
    if user_code_families(reached) and not base.factory:
        return []  # reported as a missing factory; the values go to code that does not exist yet
    for family in reached:
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


def image_problems(spec: SweepSpec) -> list[str]:
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
    imaging = [f for f in (*spec.families(), spec.distill.student.family) if get_family(f).needs_image_shape]
    if imaging and shape is None:
        problems.append(f"model.family: family {imaging[0]!r} needs data.image_shape, but got image_shape=None")
    return problems


def data_problems(spec: SweepSpec, base_dir: Path, found: list, files: Files) -> list[str]:
    """Load the data (appended to `found`) and check it against the folds and the held-out split."""
    dataset = load_dataset(spec.data, base_dir, files)
    found.append(dataset)
    if spec.data.image_shape is None and dataset.image_shape is not None:
        # inferred from the source (an idx3 header); kept in the spec so every model sees the images' shape
        spec.data.image_shape = dataset.image_shape
    # what auto decided, kept in the spec like the image shape: a job or a resume reads the same task
    spec.data.task = dataset.task
    problems = task_problems(spec, dataset.task)
    counts = dataset.source_counts  # every labelled row of data.source, sampled or not
    regression = dataset.task == "regression"
    what = "training rows" if regression else "smallest class's training rows"
    if dataset.n_predefined_test:
        # data.test_source is the held-out split as it is (test_fraction unused): folds split the rest
        smallest_train = int(counts.min())
    else:
        n_test = int(np.ceil(int(counts.sum()) * spec.data.test_fraction))
        smallest = int(counts.min())
        # the held-out split removes about test_fraction of each class before folding
        smallest_train = smallest - int(np.ceil(smallest * spec.data.test_fraction))
        need = 2 if regression else dataset.n_classes
        if n_test < need:
            problems.append(f"data.test_fraction: a test split of at least {need} rows "
                            f"{'' if regression else '(one per class) '}expected, but got {n_test} rows")
    if spec.cv.folds > smallest_train:
        problems.append(f"cv.folds: folds <= the {what} ({smallest_train}) must hold, "
                        f"but got folds={spec.cv.folds}")
    if is_table(dataset.x):
        if spec.data.stream is True:
            problems.append("data.stream: a Parquet source of numbers only expected (rows stream as numbers), but "
                            "data.source is a table of typed columns (categories or missing values)")
        if spec.distill.enabled and spec.distill.mixup_alpha > 0:
            problems.append(f"distill.mixup_alpha: 0 for a table's rows expected (mixed records exist only in the "
                            f"student's encoding, which the teacher cannot read), but got {spec.distill.mixup_alpha}")
    return problems


def task_problems(spec: SweepSpec, task: str) -> list[str]:
    """The spec against the data's task (trainers.task); sets search.metric to the task's default when the
    spec named none."""
    try:
        spec.search = spec.search.for_task(task)
    except ValueError as err:
        return [str(err)]
    if task != "regression":
        huber = [v for v in trial_values(spec, "regression_loss") if v != "mse"]
        return [f"search.regression_loss: 'mse' (unused) for a class target expected, but got {huber[0]!r}"] \
            if huber else []
    problems = []
    weighted = [v for v in trial_values(spec, "class_weight") if v is not None]
    if weighted:
        problems.append(f"search.class_weight: None for a regression target expected (there are no classes to "
                        f"weight), but got {weighted[0]!r}")
    method = spec.ensemble.method
    if task not in get_combiner(method).tasks:
        problems.append(f"ensemble.method: one of {[n for n, c in COMBINERS.items() if task in c.tasks]} for a "
                        f"regression target expected, but got {method!r} (votes and ranks are over classes)")
    if spec.ensemble.selection_metric == "log_loss":
        problems.append("ensemble.selection_metric: 'search' for a regression target expected, but got 'log_loss'")
    smoothing = max(trial_values(spec, "label_smoothing"), default=0)
    if smoothing > 0:
        problems.append(f"search.label_smoothing: 0 for a regression target expected (it smooths class labels), "
                        f"but got {smoothing}")
    if spec.data.stream is True:
        problems.append("data.stream: a class target expected for streamed rows, but the target is a number "
                        "(data.task: regression); leave data.stream unset")
    return problems
