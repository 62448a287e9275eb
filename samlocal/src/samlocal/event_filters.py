"""Lambda's event filtering (an event source mapping's FilterCriteria), applied to one record.

A pattern is a JSON object whose keys follow the record's (for SQS: body, attributes, messageAttributes...;
a JSON body is matched as the object it holds). Nested objects narrow the path; a leaf is a list of
conditions, any of which may match (a list value in the record matches when one of its items does):
an exact string, number, boolean or null; {"prefix"}, {"suffix"}, {"equals-ignore-case"}, {"anything-but"}
(a value, a list of values, or {"prefix"}/{"suffix"}), {"numeric": [">", 0, "<=", 5]}, {"exists": true|false}.
Every key of a pattern must match; a record matching any one of the patterns passes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_OPERATORS = frozenset({"prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists"})


class FilterPatternError(ValueError):
    """A pattern Lambda would refuse."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate(pattern: Any, path: str = "") -> None:
    """Raises FilterPatternError, naming where, for a pattern Lambda would refuse."""
    if not isinstance(pattern, Mapping) or not pattern:
        raise FilterPatternError(f"{path or 'the pattern'} must be a non-empty JSON object")
    for key, condition in pattern.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(condition, Mapping):
            validate(condition, where)
        elif isinstance(condition, list) and condition:
            for item in condition:
                _validate_condition(item, where)
        else:
            raise FilterPatternError(f"{where} must be an object or a non-empty list of values, got {condition!r}")


def _validate_condition(condition: Any, where: str) -> None:
    if condition is None or isinstance(condition, str | bool) or _is_number(condition):
        return
    if not isinstance(condition, Mapping) or len(condition) != 1:
        raise FilterPatternError(f"{where}: {condition!r} is neither a value nor one operator")
    ((name, argument),) = condition.items()
    if name not in _OPERATORS:
        raise FilterPatternError(f"{where}: unknown operator {name!r} (one of {', '.join(sorted(_OPERATORS))})")
    if name == "exists" and not isinstance(argument, bool):
        raise FilterPatternError(f"{where}: exists takes true or false, got {argument!r}")
    if name in {"prefix", "suffix", "equals-ignore-case"} and not isinstance(argument, str):
        raise FilterPatternError(f"{where}: {name} takes a string, got {argument!r}")
    if name == "numeric":
        _numeric_bounds(argument, where)


def _numeric_bounds(argument: Any, where: str) -> list[tuple[Callable[[float, float], bool], float]]:
    if not isinstance(argument, list) or not argument or len(argument) % 2 or len(argument) > 4:
        raise FilterPatternError(f"{where}: numeric takes [op, number] or [op, number, op, number], got {argument!r}")
    bounds = []
    for comparison, bound in zip(argument[::2], argument[1::2], strict=True):
        if comparison not in _COMPARISONS or not _is_number(bound):
            raise FilterPatternError(f"{where}: numeric takes one of {' '.join(_COMPARISONS)} then a number")
        bounds.append((_COMPARISONS[comparison], float(bound)))
    return bounds


def matches_any(patterns: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    return any(matches(pattern, record) for pattern in patterns)


def matches(pattern: Mapping[str, Any], document: Any) -> bool:
    for key, condition in pattern.items():
        present = isinstance(document, Mapping) and key in document
        value = document[key] if present else None
        if isinstance(condition, Mapping):
            if present and not isinstance(value, Mapping):
                return False
            if not matches(condition, value if present else {}):
                return False
        elif not any(_condition_matches(item, value, present) for item in condition):
            return False
    return True


def _condition_matches(condition: Any, value: Any, present: bool) -> bool:
    if isinstance(condition, Mapping) and "exists" in condition:
        return bool(condition["exists"]) == (present and value is not None)
    if not present:
        return False
    values = value if isinstance(value, list) else [value]
    return any(_leaf_matches(condition, item) for item in values)


def _equal(condition: Any, value: Any) -> bool:
    if _is_number(condition):
        return _is_number(value) and float(value) == float(condition)
    if isinstance(condition, bool) or condition is None:
        return value is condition
    return isinstance(value, str) and value == condition


def _leaf_matches(condition: Any, value: Any) -> bool:
    if not isinstance(condition, Mapping):
        return _equal(condition, value)
    ((name, argument),) = condition.items()
    if name == "prefix":
        return isinstance(value, str) and value.startswith(argument)
    if name == "suffix":
        return isinstance(value, str) and value.endswith(argument)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == str(argument).casefold()
    if name == "numeric":
        return _is_number(value) and all(
            compare(float(value), bound) for compare, bound in _numeric_bounds(argument, "")
        )
    if name == "anything-but":
        if isinstance(argument, Mapping):
            return not _leaf_matches(argument, value)
        excluded = argument if isinstance(argument, list) else [argument]
        return not any(_equal(item, value) for item in excluded)
    return False
