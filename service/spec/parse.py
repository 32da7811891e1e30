"""The one path every spec takes, from a user's file (`validate`, `sweep`, `run`), `submit` or a
request body (the REST API): read the text, check every value is plain and bounded, the schema, the
caller's checks (before_data), the cross-section checks, the data itself, checks.after_data.

parse_spec raises SpecError and nothing else: each step runs guarded, so whatever it raises becomes
a line naming the field it was checking. The rows it loads travel on with the spec (prepare uses
them instead of loading them again)."""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from service.spec.checks import Checks, data_problems, image_problems, semantic_problems
from service.spec.errors import MAX_PROBLEMS, SpecError, format_pydantic, show
from service.spec.local import LocalCode
from service.spec.reading import read_spec, value_problems
from service.spec.schema import SweepSpec
from trainers.data import DataError, Dataset


def guarded(where: str, check, *args) -> list[str]:
    """check(*args)'s problem lines; whatever it raises becomes lines naming `where`, never a crash."""
    try:
        return list(check(*args))
    except SpecError as err:
        return err.problems
    except DataError as err:
        return [str(err)]
    except ValidationError as err:
        return [f"{where}.{line}" for line in format_pydantic(err)]
    except Exception as err:  # noqa: BLE001 - the point: a bad spec is a field error, never a 5xx
        return [f"{where}: a value these checks can handle expected, but checking it failed "
                f"({type(err).__name__})"]


def _schema(raw: object) -> SweepSpec:
    if not isinstance(raw, dict):
        raise SpecError([f"<spec>: a mapping at the top level expected, but got {show(raw)}"])
    problems = value_problems(raw)
    if problems:
        raise SpecError(problems)
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(format_pydantic(err)[:MAX_PROBLEMS]) from None
    except Exception as err:  # noqa: BLE001 - a validator that raised other than ValueError: still a 4xx
        raise SpecError([f"<spec>: a spec the schema can check expected, but checking it failed "
                         f"({type(err).__name__})"]) from None


def _absolute(spec: SweepSpec, base_dir: Path) -> list[str]:
    # absolute from here on: resume, jobs and later steps may run from another directory. Normalised as
    # written, links not followed: inside data roots, a link is for the open to refuse (trainers.data.files),
    # and resolving it here would read (and name) whatever it points at
    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(os.path.abspath(base_dir), path))

    if not spec.data.source.startswith("sklearn:"):
        spec.data.source = absolute(spec.data.source)
    if spec.data.test_source is not None:
        spec.data.test_source = absolute(spec.data.test_source)
    return []


def parse_spec(raw: object, base_dir: str | Path | None = None, checks: Checks | None = None) -> SweepSpec:
    """A loaded spec (plain values) -> a checked SweepSpec. base_dir: where relative data paths are
    (default: the checks' base_dir, the first data root for a Policy, else the current directory).
    Raises SpecError listing every problem found (one line each, naming its field)."""
    checks = checks or Checks()
    base = Path(base_dir) if base_dir is not None else checks.base_dir()
    spec = _schema(raw)
    problems = guarded("<spec>", checks.before_data, spec)
    if problems:
        raise SpecError(problems)
    problems = guarded("data.source", _absolute, spec, base)
    if problems:
        raise SpecError(problems)
    problems = guarded("search", semantic_problems, spec)
    found: list[Dataset] = []
    problems += guarded("data.source", data_problems, spec, base, found, checks.files())
    if not problems:
        problems = guarded("search", image_problems, spec)
    if not problems and found:
        problems = guarded("<spec>", checks.after_data, spec, found[0])
    if problems:
        raise SpecError(problems[:MAX_PROBLEMS])
    if not found[0].sampled:  # a sample only checks: the job loads the data itself
        spec._dataset = found[0]
    return spec


def read_file(path: str | Path) -> object:
    """A spec file's plain values; SpecError naming the file when it cannot be read or parsed."""
    path = Path(path)
    if not path.is_file():
        raise SpecError([f"{path}: a spec file expected, but it does not exist"])
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError([f"{path}: a readable UTF-8 spec file expected, but reading failed "
                         f"({type(err).__name__})"]) from None
    return read_spec(text, str(path))


def load_spec(path: str | Path, checks: Checks | None = None) -> SweepSpec:
    """A user's spec file, parsed: relative data paths are relative to the current directory (as a user
    typing paths expects); with no checks given, its user-code family is imported and tried (LocalCode)."""
    return parse_spec(read_file(path), Path.cwd() if checks is None else None, checks or LocalCode(Path(path).parent))
