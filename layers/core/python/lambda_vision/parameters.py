"""The routes' query and path parameters: declared on the handlers' signatures, read from the event and checked
before a handler runs.

    @app.post("/predict")
    def predict(top_k: Annotated[int | None, Query(ge=1, le=1000, description="Labels per image.")] = None): ...

A handler gets each declared query parameter as an argument of its type (int, float or str; None when absent),
or the request is refused with 422 `invalid_parameter`, naming every parameter at fault: not a number, out of
bounds, or given more than once. The same declarations document the API: `lambda_vision.openapi` hands them to
Powertools' OpenAPI generator as its own `Query` and `Path` when swagger.yaml is generated. Reading them here,
rather than through Powertools' validation middleware, keeps pydantic out of the function's cold start.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from lambda_vision.errors import ApiError, ErrorCode

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

INTEGER = re.compile(r"[+-]?\d+")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
SHOWN_VALUE = 40  # characters of a refused value repeated in the error


@dataclass(frozen=True)
class Param:
    description: str = ""
    ge: float | None = None
    le: float | None = None


class Query(Param):
    """A query string parameter."""


class Path(Param):
    """A path parameter (`/models/{name}`): Powertools passes it to the handler as it is."""


@dataclass(frozen=True)
class Declared:
    """One parameter of a handler: its name, type, declaration and whether it has a default."""

    name: str
    kind: type
    marker: Param
    required: bool

    def parse(self, text: str) -> Any:
        """The value of the parameter's type; ValueError says what is wrong with it."""
        if self.kind is str:
            return text
        shown = text if len(text) <= SHOWN_VALUE else text[:SHOWN_VALUE] + "..."
        if self.kind is int:
            if not INTEGER.fullmatch(text.strip()):
                raise ValueError(f"should be a whole number, got {shown!r}")
            value: float = int(text)
        else:
            if not NUMBER.fullmatch(text.strip()):
                raise ValueError(f"should be a number, got {shown!r}")
            value = float(text)
        if self.marker.ge is not None and value < self.marker.ge:
            raise ValueError(f"should be greater than or equal to {self.marker.ge:g}")
        if self.marker.le is not None and value > self.marker.le:
            raise ValueError(f"should be less than or equal to {self.marker.le:g}")
        return value


def declared(annotation: Any, name: str, required: bool) -> Declared | None:
    """The declaration in `Annotated[int | None, Query(...)]`; None for a parameter without one."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    base, *extras = typing.get_args(annotation)
    marker = next((extra for extra in extras if isinstance(extra, Param)), None)
    if marker is None:
        return None
    kinds = [kind for kind in typing.get_args(base) if kind is not NoneType] if _is_union(base) else [base]
    if len(kinds) != 1 or kinds[0] not in (int, float, str):
        raise TypeError(f"parameter {name!r}: {base} is not int, float or str (or one of them | None)")
    return Declared(name, kinds[0], marker, required)


def _is_union(annotation: Any) -> bool:
    return isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union


_DECLARATIONS: dict[Callable[..., Any], tuple[Declared, ...]] = {}


def declarations(handler: Callable[..., Any]) -> tuple[Declared, ...]:
    """A handler's declared parameters, in signature order (read once per handler)."""
    found = _DECLARATIONS.get(handler)
    if found is None:
        hints = typing.get_type_hints(handler, include_extras=True)
        found = tuple(
            item
            for name, parameter in inspect.signature(handler).parameters.items()
            if name in hints
            and (item := declared(hints[name], name, parameter.default is inspect.Parameter.empty)) is not None
        )
        _DECLARATIONS[handler] = found
    return found


def query_values(event: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every value of every query parameter, in order. A v2 event joins a repeated parameter's values with commas
    in queryStringParameters, so its raw query string is read instead. A parameter given empty (`?model=&top_k=`,
    as a browser form sends its empty fields) is absent."""
    raw = event.get("rawQueryString")
    if isinstance(raw, str) and raw:
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(raw):
            values.setdefault(name, []).append(value)
        return values
    multiple = event.get("multiValueQueryStringParameters")
    if isinstance(multiple, Mapping) and multiple:
        return {name: [str(value) for value in given] for name, given in multiple.items() if given and given != [""]}
    single = event.get("queryStringParameters")
    if isinstance(single, Mapping):
        return {name: [str(value)] for name, value in single.items() if value not in (None, "")}
    return {}


def query_arguments(handler: Callable[..., Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """The handler's query parameters read from the event, or ApiError 422 naming each one at fault."""
    parameters = [item for item in declarations(handler) if isinstance(item.marker, Query)]
    if not parameters:
        return {}
    values = query_values(event)
    arguments: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for parameter in parameters:
        location = f"query.{parameter.name}"
        given = values.get(parameter.name)
        if not given:
            if parameter.required:
                problems.append({"loc": location, "message": "required"})
        elif len(given) > 1:
            problems.append({"loc": location, "message": f"repeated ({len(given)} values); give it once"})
        else:
            try:
                arguments[parameter.name] = parameter.parse(given[0])
            except ValueError as error:
                problems.append({"loc": location, "message": str(error)})
    if problems:
        summary = "; ".join(f"{problem['loc']}: {problem['message']}" for problem in problems)
        raise ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.INVALID_PARAMETER, f"Invalid parameters: {summary}", problems
        )
    return arguments


def bind_query_parameters(app: ApiGatewayResolver, next_middleware: Callable[..., Response[Any]]) -> Response[Any]:
    """Powertools middleware: the matched route's handler gets its query parameters with its path parameters."""
    route = app.context.get("_route")
    if route is not None:
        arguments = query_arguments(route.func, app.current_event.raw_event)
        if arguments:
            route_arguments = {**app.context.get("_route_args", {}), **arguments}
            app.append_context(_route_args=route_arguments)  # type: ignore[no-untyped-call]  # untyped in Powertools
    return next_middleware(app)
