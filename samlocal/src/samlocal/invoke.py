"""`samlocal invoke`: `sam local invoke` without Docker. One event, one invocation, in the same execution
environment as the local API (an `awslambdaric` worker against a local Runtime API), then the environment stops.

The function's result goes to standard output; its own output and Lambda's START, END and REPORT lines to
standard error. Without a function name, the template's only function is used, or the function whose API
route the event names (an API Gateway event: `resource`/`path` and `httpMethod`, or `routeKey`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from samlocal.console import Console
from samlocal.events import random_uuid, trace_id
from samlocal.routing import RouteTable
from samlocal.sandbox import OptDirs
from samlocal.template import Stack
from samlocal.workers import INIT_TIME_LIMIT, FunctionPool, Invocation, Outcome, Watchdog


class InvokeError(Exception):
    """The invocation cannot be made: no such function, an ambiguous choice, an event that is not JSON."""


def choose_function(stack: Stack, name: str | None, event: Any) -> str:
    """The logical id of the function to invoke (by logical id or function name)."""
    if name is not None:
        for logical_id, function in stack.functions.items():
            if name in (logical_id, function.name):
                return logical_id
        raise InvokeError(f"no function {name!r} in the template; functions: {', '.join(stack.functions)}")
    if len(stack.functions) == 1:
        return next(iter(stack.functions))
    routed = _routed_function(stack, event)
    if routed is not None:
        return routed
    raise InvokeError(f"the template has several functions: name one of {', '.join(stack.functions)}")


def _routed_function(stack: Stack, event: Any) -> str | None:
    if not isinstance(event, Mapping):
        return None
    method, path = event.get("httpMethod"), event.get("resource") or event.get("path")
    route_key = event.get("routeKey")
    if isinstance(route_key, str) and " " in route_key:
        method, path = route_key.split(" ", 1)
    if not isinstance(method, str) or not isinstance(path, str):
        return None
    for route in stack.routes:  # the template's own resource path, as API Gateway writes it in `resource`
        if route.resource_path == path and route.method in (method.upper(), "ANY"):
            return route.function_id
    match = RouteTable.for_stack(stack).match(method.upper(), path)
    return match.route.function_id if match is not None else None


def parse_event(text: str) -> Any:
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvokeError(f"the event is not JSON: {error}") from None


def invoke(
    stack: Stack,
    function_id: str,
    event: Any,
    env_vars: Mapping[str, Mapping[str, str]],
    console: Console,
) -> Outcome:
    """Runs the function once on the event; its outcome (a result, or a function error)."""
    function = stack.functions[function_id]
    opt_dirs = OptDirs()
    pool = FunctionPool(function, size=1, opt_dir=opt_dirs.build(function), env_vars=env_vars, console=console)
    watchdog = Watchdog([pool])
    watchdog.start()
    try:
        payload = json.dumps(event).encode()
        invocation = Invocation(random_uuid(), payload, function.timeout, trace_id(time.time()))
        limit = time.monotonic() + INIT_TIME_LIMIT + function.timeout + 5
        if not pool.invoke(invocation, limit):
            raise InvokeError(f"{function_id}: no execution environment could be started")
        outcome = invocation.wait(limit - time.monotonic())
        if outcome is None:
            raise InvokeError(f"{function_id}: no answer within {INIT_TIME_LIMIT + function.timeout:g} s")
        return outcome
    finally:
        watchdog.stop()
        pool.close()
        opt_dirs.remove()
