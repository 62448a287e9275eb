"""Which route a request takes, as API Gateway REST resolves resources.

A path is matched segment by segment against each resource path: a literal segment beats a `{param}`,
which beats a greedy `{param+}` (one or more trailing segments). The most specific resource that matches
wins; then its method, else its ANY method. No match answers 403 Missing Authentication Token, as a REST
API does for an unknown route or method. Path parameter values stay percent-encoded, as REST APIs send them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from samlocal.template import ANY_METHOD, Route

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


class RouteTable:
    """The routes of every API served, looked up by method and request path."""

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

    def match(self, method: str, path: str) -> Match | None:
        resource, parameters = self._resource(path)
        if resource is None:
            return None
        route = resource.methods.get(method) or resource.methods.get(ANY_METHOD)
        return Match(route, parameters) if route is not None else None

    def _resource(self, path: str) -> tuple[_Resource | None, dict[str, str]]:
        normalized = path if path == "/" else path.rstrip("/") or "/"
        static = self._static.get(normalized)
        if static is not None:
            return static, {}
        parts = _split(normalized)
        for resource in self._dynamic:
            parameters = resource.match(parts)
            if parameters is not None:
                return resource, parameters
        return None, {}
