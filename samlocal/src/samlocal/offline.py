"""Events for requests that are never sent: the exact event the local API would hand a function for an HTTP
request, for event fixtures, benchmarks and tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from samlocal.events import HttpRequest, RequestIds
from samlocal.integration import integration_event
from samlocal.routing import RouteTable
from samlocal.template import read_stack


class EventFactory:
    def __init__(self, template: Path, parameter_overrides: Mapping[str, str] | None = None) -> None:
        self.stack = read_stack(template, parameter_overrides)
        self.routes = RouteTable.for_stack(self.stack)

    def event(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        ids: RequestIds | None = None,
        source_ip: str = "127.0.0.1",
        port: int = 3000,
        scheme: str = "http",
    ) -> dict[str, Any]:
        """The event of `method target` (a path with an optional query string) on the template's API."""
        path, _, query = target.partition("?")
        match = self.routes.match(method, path)
        if match is None:
            raise ValueError(f"the template has no route for {method} {path}")
        request = HttpRequest(method, path, query, list(headers), body, source_ip)
        return integration_event(
            request,
            route=match.route,
            api=self.stack.apis[match.route.api_id],
            path_parameters=match.path_parameters,
            ids=ids or RequestIds.new(),
            port=port,
            scheme=scheme,
        )
