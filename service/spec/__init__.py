"""The sweep spec: its schema (schema.py), how text becomes values (reading.py), the checks that span
sections (checks.py), what a shared cluster allows (policy.py, budget.py), the local user's code
(local.py), and the one parse path every caller takes (parse.py). Problems are SpecError lines, each
naming its field (errors.py)."""
from service.spec.budget import Budget
from service.spec.checks import Checks
from service.spec.errors import MAX_PROBLEMS, SpecError, format_pydantic
from service.spec.local import LocalCode
from service.spec.parse import load_spec, parse_spec, read_file
from service.spec.policy import OPERATOR_SERVE_FIELDS, Policy, data_source_problems, factory_prefix_problem, \
    factory_problem
from service.spec.reading import MAX_DEPTH, TaggedValue, TooLongInteger, read_spec
from service.spec.schema import NAME_PATTERN, ModelSection, SweepSpec, TrackingConfig

__all__ = ["Budget", "Checks", "LocalCode", "MAX_DEPTH", "MAX_PROBLEMS", "ModelSection", "NAME_PATTERN",
           "OPERATOR_SERVE_FIELDS", "Policy", "SpecError", "SweepSpec", "TaggedValue", "TooLongInteger",
           "TrackingConfig", "data_source_problems", "factory_prefix_problem", "factory_problem", "format_pydantic",
           "load_spec", "parse_spec", "read_file", "read_spec"]
