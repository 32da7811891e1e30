"""Search-space dimensions as typed spec objects, and their translation to Ray Tune."""
from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictStr, Tag, model_validator

MAX_CHOICES = 256  # values of one choice / grid dimension
MAX_SCALAR_CHARS = 64  # a string hyperparameter value (activation, optimizer, schedule names)

Scalar = Union[bool, int, float, Annotated[StrictStr, Field(max_length=MAX_SCALAR_CHARS)]]


class _Dim(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def endpoints(self) -> list:
        """Values that bound what this dimension can yield, for checking against the field's limits."""
        raise NotImplementedError

    def to_tune(self):
        raise NotImplementedError

    def contains(self, value) -> bool:
        """Whether the dimension can yield this value (a search's given start point must lie inside)."""
        ends = self.endpoints()
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and min(ends) <= value <= max(ends))

    def suggest(self, trial, name: str):
        """This dimension asked of an Optuna trial (define-by-run searches of several families)."""
        raise NotImplementedError

    def size(self) -> int | None:
        """How many distinct values this dimension can yield; None: unbounded (a continuous range)."""
        return None


class Choice(_Dim):
    choice: list[Scalar] = Field(min_length=1, max_length=MAX_CHOICES)

    def endpoints(self):
        return list(self.choice)

    def contains(self, value) -> bool:
        return _among(value, self.choice)

    def to_tune(self):
        from ray import tune
        return tune.choice(self.choice)

    def suggest(self, trial, name):
        return trial.suggest_categorical(name, self.choice)

    def size(self):
        return len(_distinct(self.choice))


class Grid(_Dim):
    grid: list[Scalar] = Field(min_length=1, max_length=MAX_CHOICES)

    def endpoints(self):
        return list(self.grid)

    def contains(self, value) -> bool:
        return _among(value, self.grid)

    def to_tune(self):
        from ray import tune
        return tune.grid_search(self.grid)

    def suggest(self, trial, name):
        return trial.suggest_categorical(name, self.grid)

    def size(self):
        return len(_distinct(self.grid))


def _among(value, options: list) -> bool:
    # 1 and 1.0 are one value, True and 1 are not
    return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in options)


def _distinct(options: list) -> list:
    out: list = []
    for value in options:
        if not _among(value, out):
            out.append(value)
    return out


def _ordered(low, high):
    if low > high:
        raise ValueError(f"`low <= high` must hold, but got (low={low}, high={high})")


class Uniform(_Dim):
    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _check(self):
        _ordered(*self.uniform)
        return self

    def endpoints(self):
        return list(self.uniform)

    def to_tune(self):
        from ray import tune
        return tune.uniform(*self.uniform)

    def suggest(self, trial, name):
        return trial.suggest_float(name, *self.uniform)


class LogUniform(_Dim):
    loguniform: tuple[float, float]

    @model_validator(mode="after")
    def _check(self):
        low, high = self.loguniform
        if low <= 0:
            raise ValueError(f"`0 < low` must hold for a log scale, but got (low={low}, high={high})")
        _ordered(low, high)
        return self

    def endpoints(self):
        return list(self.loguniform)

    def to_tune(self):
        from ray import tune
        return tune.loguniform(*self.loguniform)

    def suggest(self, trial, name):
        return trial.suggest_float(name, *self.loguniform, log=True)


class RandInt(_Dim):
    randint: tuple[int, int]  # [low, high] inclusive

    @model_validator(mode="after")
    def _check(self):
        _ordered(*self.randint)
        return self

    def endpoints(self):
        return list(self.randint)

    def to_tune(self):
        from ray import tune
        low, high = self.randint
        return tune.randint(low, high + 1)  # tune's upper bound is exclusive

    def suggest(self, trial, name):
        return trial.suggest_int(name, *self.randint)

    def size(self):
        low, high = self.randint
        return high - low + 1


class QUniform(_Dim):
    quniform: tuple[float, float, float]  # [low, high, q]

    @model_validator(mode="after")
    def _check(self):
        low, high, q = self.quniform
        if q <= 0:
            raise ValueError(f"`q > 0` must hold, but got q={q}")
        _ordered(low, high)
        return self

    def endpoints(self):
        return list(self.quniform[:2])

    def to_tune(self):
        from ray import tune
        low, high, q = self.quniform
        if all(float(v).is_integer() for v in self.quniform):
            return tune.qrandint(int(low), int(high), int(q))
        return tune.quniform(low, high, q)

    def suggest(self, trial, name):
        low, high, q = self.quniform
        if all(float(v).is_integer() for v in self.quniform):
            return trial.suggest_int(name, int(low), int(high), step=int(q))
        return trial.suggest_float(name, low, high, step=q)

    def size(self):
        low, high, q = self.quniform
        return int(round((high - low) / q, 9)) + 1  # round: (0.3 - 0.1) / 0.1 is 1.9999999999999998


DIMENSION_FORMS = ("choice", "grid", "uniform", "loguniform", "randint", "quniform")


def _form(raw: Any) -> str | None:
    """The form is the mapping's single key; None makes pydantic report a tagged-union error."""
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in DIMENSION_FORMS:
        return next(iter(raw))
    if isinstance(raw, BaseModel):
        return next(iter(type(raw).model_fields))
    return None


Dimension = Annotated[
    Union[Annotated[Choice, Tag("choice")], Annotated[Grid, Tag("grid")], Annotated[Uniform, Tag("uniform")],
          Annotated[LogUniform, Tag("loguniform")], Annotated[RandInt, Tag("randint")],
          Annotated[QUniform, Tag("quniform")]],
    Discriminator(_form, custom_error_type="dimension_form",
                  custom_error_message=f"a mapping with one key of {list(DIMENSION_FORMS)} expected"),
]
