"""Reading spec text into plain values, and the check that every value is a plain, bounded JSON/YAML
value. One reader for every caller: a user's file (YAML or JSON, aliases allowed) and a client's
request body (the kind its Content-Type names; no aliases, nesting bounded before anything is built).

YAML keeps core types only: str, int, float, bool, null, lists and mappings. A !!binary, !!timestamp,
!!set, !!omap or !!pairs value becomes a TaggedValue (reported with its field by value_problems);
custom and !!python tags stay parse errors (SafeLoader has no constructor for them); dates stay
strings; a huge integer literal is not converted (a TooLongInteger), in YAML and JSON alike.
"""
from __future__ import annotations

import json
import math
import re
from typing import Literal

import yaml

from service.spec.errors import MAX_INT, MAX_PROBLEMS, SpecError, show

# limits on every value of a spec, checked before the schema (which bounds each field further)
MAX_DEPTH = 32  # nesting of mappings and lists
MAX_STRING_CHARS = 4096
MAX_KEY_CHARS = 128
MAX_LIST_ITEMS = 1024
MAX_MAPPING_KEYS = 256
MAX_INT_DIGITS = 32  # longer integer literals are not even converted (int() of 4300+ digits raises)
# YAML nodes of a request body (the largest spec: 64 keys x 256 choices and the rest): parsing stops past
# it, so a body's parse time and memory are bounded whatever its shape
MAX_YAML_NODES = 20_000


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


class SpecLoader(yaml.SafeLoader):
    """A user's own spec file: core types only (see the module docstring)."""

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


class UntrustedLoader(SpecLoader):
    """A request body: no anchors or aliases (a few lines of them expand into gigabytes), and at most
    MAX_YAML_NODES nodes (pure-Python parsing of a megabyte of tiny nodes takes seconds)."""

    nodes = 0

    def compose_node(self, parent, index):
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(None, None, f"at most {MAX_YAML_NODES} YAML nodes are accepted "
                                                    f"here", self.peek_event().start_mark)
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(None, None, "YAML aliases are not accepted here",
                                                    event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.constructor.ConstructorError(None, None, "YAML anchors are not accepted here",
                                                    event.start_mark)
        return super().compose_node(parent, index)


def _int_literal(text: str):
    """int(text), or a TooLongInteger for a literal that int() should not be asked to convert."""
    digits = sum(c.isalnum() for c in text)
    return TooLongInteger(digits) if digits > MAX_INT_DIGITS else int(text)


def loads_json(text: str) -> object:
    """json.loads with huge integer literals left unconverted (TooLongInteger)."""
    return json.loads(text, parse_int=_int_literal)


def read_spec(text: str, source: str = "<spec>", kind: Literal["json", "yaml"] | None = None,
              untrusted: bool = False) -> object:
    """Spec text -> plain values. kind: None reads JSON when the text starts with "{", else YAML.
    untrusted (a request body): no YAML aliases. Raises SpecError naming `source`."""
    kind = kind or ("json" if text.lstrip().startswith("{") else "yaml")
    what = kind.upper() if untrusted else "YAML or JSON"
    try:
        if kind == "json":
            value = loads_json(text)
        else:
            value = yaml.load(text, Loader=UntrustedLoader if untrusted else SpecLoader)  # noqa: S506
    except RecursionError:
        raise SpecError([f"{source}: at most {MAX_DEPTH} levels of nesting expected, but got more"]) from None
    except (yaml.YAMLError, ValueError) as err:  # JSONDecodeError is a ValueError
        first = re.sub(r"\s+", " ", str(err))[:300]
        raise SpecError([f"{source}: valid {what} expected, but parsing failed: {first}"]) from None
    if untrusted and _depth(value) > MAX_DEPTH:  # a file's nesting is reported per field (value_problems)
        raise SpecError([f"{source}: at most {MAX_DEPTH} levels of nesting expected, but got more"])
    return value


def _depth(value, limit: int = MAX_DEPTH) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


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
                                    f"but got {show(key)}")
                else:
                    stack.append((item, (*path, key)))
        else:
            what = "binary data" if isinstance(value, (bytes, bytearray)) else f"a {type(value).__name__}"
            problems.append(f"{where}: a string, number, boolean, null, list or mapping expected, but got {what}")
    return problems
