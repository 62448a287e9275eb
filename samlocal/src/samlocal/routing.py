"""Which route a request takes, as API Gateway resolves resources (REST APIs) and route keys (HTTP APIs).

A path is matched segment by segment against each resource path: a literal segment beats a `{param}`,
which beats a greedy `{param+}` (one or more trailing segments). REST APIs: the most specific resource that
matches wins; then its method, else its ANY method; no match answers 403 Missing Authentication Token.
HTTP APIs: the most specific route whose path and method (or ANY) match wins, a less specific one is tried
when a more specific path has no such method, then the `$default` route; no match answers 404 Not Found.
Path parameter values stay percent-encoded, as API Gateway sends them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

from samlocal.events import MISSING_AUTHENTICATION_TOKEN, NOT_FOUND, GatewayError
from samlocal.template import ANY_METHOD, DEFAULT_ROUTE, HTTP, Route, Stack

_LITERAL, _PARAMETER, _GREEDY = 0, 1, 2


@dataclass(frozen=True)
class _Segment:
    kind: int
    text: str  # the literal, or the parameter's name


@dataclass(frozen=True)
class Match:
    route: Route
    path_parameters: dict[str, str]


class _Resource:
    def __init__(self, path: str) -> None:
        self.path = path
        self.segments = tuple(_parse_segment(part) for part in _split(path))
        self.methods: dict[str, Route] = {}
        # Sorts the most specific resource first: literals before parameters before greedy ones.
        self.specificity = tuple(segment.kind for segment in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        parameters: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.kind == _GREEDY:
                rest = parts[index:]
                if not rest:
                    return None
                parameters[segment.text] = "/".join(rest)
                return parameters
            if index >= len(parts):
                return None
            if segment.kind == _LITERAL:
                if parts[index] != segment.text:
                    return None
            elif parts[index] == "":
                return None
            else:
                parameters[segment.text] = parts[index]
        return parameters if len(parts) == len(self.segments) else None


def _split(path: str) -> list[str]:
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []


def _parse_segment(part: str) -> _Segment:
    if part.startswith("{") and part.endswith("+}"):
        return _Segment(_GREEDY, part[1:-2])
    if part.startswith("{") and part.endswith("}"):
        return _Segment(_PARAMETER, part[1:-1])
    return _Segment(_LITERAL, part)


class _Resources:
    """The resource paths of one kind of API, most specific first."""

    def __init__(self, routes: Iterable[Route]) -> None:
        resources: dict[str, _Resource] = {}
        for route in routes:
            key = "/" + "/".join(_split(route.resource_path))
            resource = resources.setdefault(key, _Resource(key))
            resource.methods.setdefault(route.method, route)
        self._static = {path: resource for path, resource in resources.items() if "{" not in path}
        self._dynamic = sorted(
            (resource for resource in resources.values() if "{" in resource.path),
            key=lambda resource: resource.specificity,
        )

    def matching(self, path: str) -> Iterator[tuple[_Resource, dict[str, str]]]:
        normalized = path if path == "/" else path.rstrip("/") or "/"
        static = self._static.get(normalized)
        if static is not None:
            yield static, {}
        parts = _split(normalized)
        for resource in self._dynamic:
            parameters = resource.match(parts)
            if parameters is not None:
                yield resource, parameters


class RouteTable:
    """The routes of every API served, looked up by method and request path."""

    def __init__(self, routes: Iterable[Route], http_api_ids: Collection[str] = ()) -> None:
        routes = list(routes)
        self._rest = _Resources(route for route in routes if route.api_id not in http_api_ids)
        http_routes = [route for route in routes if route.api_id in http_api_ids]
        self._http = _Resources(route for route in http_routes if route.resource_path != DEFAULT_ROUTE)
        self._default = next((route for route in http_routes if route.resource_path == DEFAULT_ROUTE), None)
        serves_rest = any(route.api_id not in http_api_ids for route in routes)
        # What a request matching no route gets: API Gateway REST says 403, HTTP APIs 404.
        self.no_route: GatewayError = MISSING_AUTHENTICATION_TOKEN if serves_rest or not routes else NOT_FOUND

    @classmethod
    def for_stack(cls, stack: Stack) -> RouteTable:
        return cls(stack.routes, {api.logical_id for api in stack.apis.values() if api.kind == HTTP})

    def match(self, method: str, path: str) -> Match | None:
        for resource, parameters in self._rest.matching(path):
            route = resource.methods.get(method) or resource.methods.get(ANY_METHOD)
            return Match(route, parameters) if route is not None else None
        for resource, parameters in self._http.matching(path):
            route = resource.methods.get(method) or resource.methods.get(ANY_METHOD)
            if route is not None:
                return Match(route, parameters)
        return Match(self._default, {}) if self._default is not None else None
