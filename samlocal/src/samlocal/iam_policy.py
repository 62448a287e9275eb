"""The IAM policy a Lambda authorizer returns, evaluated against the request's method ARN as API Gateway does.

A statement applies when its Action matches `execute-api:Invoke` and its Resource matches the method ARN
(`NotAction`/`NotResource` invert the test). In IAM wildcards `*` matches any run of characters (slashes
included) and `?` any one character. An applicable Deny wins over any Allow; without an applicable Allow
the request is denied too ("implicit deny"). A document that is not a policy raises PolicyError: API Gateway
answers 500 AuthorizerConfigurationException.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from typing import Any

INVOKE_ACTION = "execute-api:Invoke"


class PolicyError(Exception):
    """The authorizer's policy document is not an IAM policy."""


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@functools.lru_cache(maxsize=1024)
def _pattern(wildcard: str) -> re.Pattern[str]:
    parts = (".*" if character == "*" else "." if character == "?" else re.escape(character) for character in wildcard)
    return re.compile("".join(parts), re.DOTALL)


def wildcard_match(wildcard: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's glob: `*` any run of characters, `?` one character. Actions compare without case."""
    if not case_sensitive:
        wildcard, value = wildcard.lower(), value.lower()
    return _pattern(wildcard).fullmatch(value) is not None


def _strings(statement: Mapping[str, Any], key: str) -> list[str] | None:
    value = statement.get(key)
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        raise PolicyError(f"{key} must be a string or a list of strings, got {value!r}")
    return values


def _matches(statement: Mapping[str, Any], positive: str, negative: str, value: str, case_sensitive: bool) -> bool:
    included = _strings(statement, positive)
    excluded = _strings(statement, negative)
    if (included is None) == (excluded is None):
        raise PolicyError(f"a statement needs exactly one of {positive} and {negative}")
    if included is not None:
        return any(wildcard_match(item, value, case_sensitive=case_sensitive) for item in included)
    assert excluded is not None
    return not any(wildcard_match(item, value, case_sensitive=case_sensitive) for item in excluded)


def statements(policy: Any) -> list[Mapping[str, Any]]:
    """The statements of a policy document; raises PolicyError when it is not one."""
    if not isinstance(policy, Mapping):
        raise PolicyError(f"policyDocument must be an object, got {type(policy).__name__}")
    found = policy.get("Statement")
    listed = [found] if isinstance(found, Mapping) else found
    if not isinstance(listed, list) or not listed or not all(isinstance(item, Mapping) for item in listed):
        raise PolicyError("policyDocument.Statement must be a statement or a non-empty list of statements")
    for statement in listed:
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"Effect must be Allow or Deny, got {statement.get('Effect')!r}")
    return listed


def evaluate(policy: Any, resource_arn: str, action: str = INVOKE_ACTION) -> Decision:
    """Whether `policy` lets the caller invoke `resource_arn`."""
    allowed = False
    for statement in statements(policy):
        if not _matches(statement, "Action", "NotAction", action, case_sensitive=False):
            continue
        if not _matches(statement, "Resource", "NotResource", resource_arn, case_sensitive=True):
            continue
        if statement["Effect"] == "Deny":
            return Decision.EXPLICIT_DENY
        allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY
