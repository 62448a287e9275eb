"""API Gateway's own answers (gateway responses) and how an API customizes them.

Each answer has a response type (UNAUTHORIZED, ACCESS_DENIED, MISSING_AUTHENTICATION_TOKEN...) with a status
code and a body byte for byte as API Gateway sends it. A REST API customizes them with SAM's
`GatewayResponses` property or `x-amazon-apigateway-gateway-responses` in its OpenAPI definition: a status
code, headers (`'literal'` values, or `method.request.header.X`, `method.request.querystring.X`,
`method.request.path.X`, `stageVariables.X`, `context.X`) and an `application/json` template in which
`$context.error.message`, `$context.error.messageString` (quoted), `$context.error.responseType`,
`$context.requestId`, `$context.authorizer.X` and `$stageVariables.X` are filled in. A type without a
customization of its own takes DEFAULT_4XX's or DEFAULT_5XX's; a status code set there applies to every type
of its class, as in API Gateway. Templates are not run as full VTL: only these references are substituted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from samlocal.events import HttpResponse


@dataclass(frozen=True)
class ResponseType:
    name: str
    status: int
    message: str | None  # $context.error.message
    error_type: str | None = None  # the x-amzn-ErrorType header
    body: bytes | None = None  # when API Gateway's bytes differ from {"message":"..."}

    def default_body(self) -> bytes:
        if self.body is not None:
            return self.body
        return b'{"message":' + json.dumps(self.message).encode() + b"}"


ACCESS_DENIED = ResponseType(
    "ACCESS_DENIED", 403, "User is not authorized to access this resource", "AccessDeniedException"
)
EXPLICITLY_DENIED = ResponseType(
    "ACCESS_DENIED",
    403,
    "User is not authorized to access this resource with an explicit deny",
    "AccessDeniedException",
)
API_CONFIGURATION_ERROR = ResponseType(
    "API_CONFIGURATION_ERROR",
    500,
    "Internal server error",
    "InternalServerErrorException",
    b'{"message": "Internal server error"}',
)
AUTHORIZER_CONFIGURATION_ERROR = ResponseType(
    "AUTHORIZER_CONFIGURATION_ERROR", 500, None, "AuthorizerConfigurationException", b'{"message": null}'
)
AUTHORIZER_FAILURE = ResponseType(
    "AUTHORIZER_FAILURE", 500, None, "AuthorizerConfigurationException", b'{"message": null}'
)
INVALID_API_KEY = ResponseType("INVALID_API_KEY", 403, "Forbidden", "ForbiddenException")
INTEGRATION_TIMEOUT = ResponseType(
    "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out", None, b'{"message": "Endpoint request timed out"}'
)
MISSING_AUTHENTICATION_TOKEN = ResponseType(
    "MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token", "MissingAuthenticationTokenException"
)
REQUEST_TOO_LARGE = ResponseType("REQUEST_TOO_LARGE", 413, "Request Too Long")
UNAUTHORIZED = ResponseType("UNAUTHORIZED", 401, "Unauthorized", "UnauthorizedException")
# A Lambda error or a malformed proxy response has no type of its own: DEFAULT_5XX customizes it.
LAMBDA_ERROR = ResponseType(
    "DEFAULT_5XX", 502, "Internal server error", "InternalServerErrorException", b'{"message": "Internal server error"}'
)
# Lambda rejected the invocation (throttled): API Gateway answers 500, not the 502 of a function error.
INVOCATION_REJECTED = ResponseType(
    "DEFAULT_5XX", 500, "Internal server error", "InternalServerErrorException", b'{"message": "Internal server error"}'
)

# HTTP APIs answer with fixed bodies and have no gateway responses to customize.
HTTP_API_UNAUTHORIZED = ResponseType("UNAUTHORIZED", 401, "Unauthorized")
HTTP_API_FORBIDDEN = ResponseType("ACCESS_DENIED", 403, "Forbidden")
HTTP_API_INTERNAL_ERROR = ResponseType("DEFAULT_5XX", 500, "Internal Server Error")


@dataclass(frozen=True)
class ErrorContext:
    """What a gateway response template and its header mappings can refer to."""

    request_id: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    query: Mapping[str, str] = field(default_factory=dict)
    path_parameters: Mapping[str, str] = field(default_factory=dict)
    stage_variables: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)  # $context.X: stage, apiId, resourcePath...
    authorizer: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Customization:
    status: int | None
    headers: Mapping[str, str]  # header name -> mapping expression
    template: str | None  # application/json


_REFERENCE = re.compile(r"\$\{?(context\.[A-Za-z0-9_.]+|stageVariables\.[A-Za-z0-9_]+)\}?")
_STATUS_CLASS = {4: "DEFAULT_4XX", 5: "DEFAULT_5XX"}


def _status(value: Any, where: str) -> int | None:
    if value is None:
        return None
    try:
        status = int(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: StatusCode must be an HTTP status, got {value!r}") from error
    if not 100 <= status <= 599:
        raise ValueError(f"{where}: StatusCode must be an HTTP status, got {value!r}")
    return status


def read_customizations(
    properties: Mapping[str, Any], definition: Mapping[str, Any] | None
) -> tuple[dict[str, Customization], list[str]]:
    """Gateway responses from SAM's `GatewayResponses` and the definition's extension (SAM's wins), and
    warnings about what cannot be applied."""
    found: dict[str, Customization] = {}
    warnings: list[str] = []
    extension = (definition or {}).get("x-amazon-apigateway-gateway-responses") or {}
    for name, response in extension.items() if isinstance(extension, Mapping) else ():
        if not isinstance(response, Mapping):
            continue
        parameters = response.get("responseParameters") or {}
        headers = {
            key.removeprefix("gatewayresponse.header."): str(value)
            for key, value in parameters.items()
            if key.startswith("gatewayresponse.header.")
        }
        try:
            status = _status(response.get("statusCode"), f"gateway response {name}")
        except ValueError as error:
            warnings.append(str(error))
            status = None
        found[str(name)] = Customization(status, headers, _template(response.get("responseTemplates")))
    sam = properties.get("GatewayResponses") or {}
    for name, response in sam.items() if isinstance(sam, Mapping) else ():
        if not isinstance(response, Mapping):
            continue
        parameters = response.get("ResponseParameters") or {}
        headers = {str(key): str(value) for key, value in (parameters.get("Headers") or {}).items()}
        warnings.extend(
            f"GatewayResponses.{name}: ResponseParameters.{other} are not sent (headers only)"
            for other in ("Paths", "QueryStrings")
            if parameters.get(other)
        )
        try:
            status = _status(response.get("StatusCode"), f"GatewayResponses.{name}")
        except ValueError as error:
            warnings.append(str(error))
            status = None
        found[str(name)] = Customization(status, headers, _template(response.get("ResponseTemplates")))
    return found, warnings


def _template(templates: Any) -> str | None:
    if not isinstance(templates, Mapping) or not templates:
        return None
    chosen = templates.get("application/json", next(iter(templates.values())))
    return chosen if isinstance(chosen, str) else json.dumps(chosen)


class GatewayResponses:
    """The gateway responses of one API."""

    def __init__(self, customizations: Mapping[str, Customization] | None = None) -> None:
        self.customizations = dict(customizations or {})

    def response(self, kind: ResponseType, error: ErrorContext | None = None) -> HttpResponse:
        error = error or ErrorContext()
        group = _STATUS_CLASS.get(kind.status // 100)
        specific = self.customizations.get(kind.name)
        fallback = self.customizations.get(group) if group else None
        chosen = specific or fallback
        status = kind.status
        if specific is not None and specific.status is not None:
            status = specific.status
        elif fallback is not None and fallback.status is not None:
            status = fallback.status
        headers = [("Content-Type", "application/json")]
        if kind.error_type:
            headers.append(("x-amzn-ErrorType", kind.error_type))
        if chosen is None:
            return HttpResponse(status, headers, kind.default_body())
        for name, expression in chosen.headers.items():
            value = header_value(expression, error)
            if value is not None:
                headers = [(key, text) for key, text in headers if key.lower() != name.lower()]
                headers.append((name, value))
        body = kind.default_body() if chosen.template is None else render(chosen.template, error, kind).encode()
        return HttpResponse(status, headers, body)


def header_value(expression: str, error: ErrorContext) -> str | None:
    """A response parameter's value: a quoted literal or a reference to the request."""
    if len(expression) >= 2 and expression.startswith("'") and expression.endswith("'"):
        return expression[1:-1]
    sources: tuple[tuple[str, Mapping[str, Any]], ...] = (
        ("method.request.header.", error.headers),
        ("method.request.querystring.", error.query),
        ("method.request.path.", error.path_parameters),
        ("stageVariables.", error.stage_variables),
    )
    for prefix, values in sources:
        if expression.startswith(prefix):
            name = expression[len(prefix) :]
            found = values.get(name.lower() if prefix == "method.request.header." else name)
            return None if found is None else str(found)
    if expression.startswith("context."):
        found = _context_value(expression.removeprefix("context."), None, error)
        return None if found is None else str(found)
    return None


def _context_value(path: str, kind: ResponseType | None, error: ErrorContext) -> Any:
    if path.startswith("error.") and kind is not None:
        return {
            "error.message": kind.message,
            "error.messageString": json.dumps(kind.message),
            "error.responseType": kind.name,
            "error.validationErrorString": "",
        }.get(path)
    if path.startswith("authorizer."):
        return error.authorizer.get(path.removeprefix("authorizer."))
    if path in ("requestId", "extendedRequestId"):
        return error.request_id
    value: Any = error.context
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def render(template: str, error: ErrorContext, kind: ResponseType | None = None) -> str:
    """A mapping template with its `$context.*` and `$stageVariables.*` references filled in."""

    def substitute(match: re.Match[str]) -> str:
        reference = match.group(1)
        if reference.startswith("stageVariables."):
            value = error.stage_variables.get(reference.removeprefix("stageVariables."))
        else:
            value = _context_value(reference.removeprefix("context."), kind, error)
        return "" if value is None else str(value)

    return _REFERENCE.sub(substitute, template)
