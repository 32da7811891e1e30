"""SpecError and how problems are worded: one line each, naming the field path; values shown short
and safe (never int->str of a huge int, never a long string)."""
from __future__ import annotations

from pydantic import BaseModel, ValidationError

MAX_PROBLEMS = 50  # lines of one SpecError
MAX_INT = 2**53  # |an integer|: JSON's exactly representable range
_UNION_MEMBERS = {"bool", "int", "float", "str", "constrained-str"}


class SpecError(ValueError):
    """One or more problems with a spec, one line each, every line naming a field path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    def __reduce__(self):
        # rebuilt from its lines when it crosses a process (the API checks specs in worker processes)
        return type(self), (self.problems,)


def format_pydantic(err: ValidationError) -> list[str]:
    """pydantic's errors as "field.path: message (got value)" lines."""
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
        shown = "" if quiet else f" (got {show(e.get('input'))})"
        lines.append(f"{loc or '<spec>'}: {msg}{shown}")
    return lines


def show(value: object) -> str:
    """A short, safe rendering of a user's value: never int->str of a huge int, never a long string."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str) and len(value) > 80:
        return repr(value[:80]) + f"... ({len(value)} characters)"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return repr(value)
    return f"a {type(value).__name__}"


def short(value: object) -> str:
    return repr(value[:40] + "...") if isinstance(value, str) and len(value) > 40 else repr(value)
