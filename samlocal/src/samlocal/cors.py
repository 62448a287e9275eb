"""CORS as API Gateway applies it: SAM's `Cors` on REST APIs and `CorsConfiguration` on HTTP APIs.

REST (`Cors` on `AWS::Serverless::Api`, or in `Globals.Api`; a string is `AllowOrigin`): SAM adds to every
path an OPTIONS method with a MOCK integration answering 200 with `Access-Control-Allow-Origin`,
`-Allow-Methods` (the path's methods and OPTIONS, every method for ANY, unless `AllowMethods` is set),
`-Allow-Headers`, `-Max-Age` and `-Allow-Credentials`. Values are API Gateway string expressions, quoted
(`"'*'"`). A path with its own OPTIONS route keeps it, and the functions' responses are NOT given CORS
headers: with a proxy integration the function sets them itself, as on AWS.

HTTP (`CorsConfiguration` on `AWS::Serverless::HttpApi`, `true` meaning any origin, or
`x-amazon-apigateway-cors` in the definition): a preflight (OPTIONS with `Origin` and
`Access-Control-Request-Method`) is answered 204 by the gateway itself, and the gateway adds
`Access-Control-Allow-Origin`, `-Allow-Credentials` and `-Expose-Headers` to responses of requests with an
allowed `Origin`, replacing CORS headers the function set, as HTTP APIs do. An explicit OPTIONS route wins.

Function URLs (`Cors` of a `FunctionUrlConfig` or an `AWS::Lambda::Url`) have the same semantics, with the
preflight answered 200.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from samlocal.events import HttpResponse
from samlocal.integrations import Integration
from samlocal.template import Api

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
_CORS_PREFIX = "access-control-"


@dataclass(frozen=True)
class RestCors:
    """SAM's `Cors` of a REST API; values are API Gateway string expressions (`'value'`)."""

    allow_origin: str
    allow_methods: str | None = None
    allow_headers: str | None = None
    max_age: str | None = None
    allow_credentials: bool = False

    def preflight_integration(self, methods: Iterable[str]) -> Integration:
        """The MOCK integration SAM adds as the OPTIONS method of a path with these methods."""
        allow_methods = self.allow_methods
        if allow_methods is None:
            listed = {method.upper() for method in methods}
            chosen = set(ALL_METHODS) if "ANY" in listed else listed | {"OPTIONS"}
            allow_methods = "'" + ",".join(sorted(chosen)) + "'"
        parameters = {"method.response.header.Access-Control-Allow-Origin": self.allow_origin}
        if self.allow_headers:
            parameters["method.response.header.Access-Control-Allow-Headers"] = self.allow_headers
        parameters["method.response.header.Access-Control-Allow-Methods"] = allow_methods
        if self.max_age is not None:
            parameters["method.response.header.Access-Control-Max-Age"] = self.max_age
        if self.allow_credentials:
            parameters["method.response.header.Access-Control-Allow-Credentials"] = "'true'"
        return Integration.read(
            {
                "type": "mock",
                "requestTemplates": {"application/json": '{\n  "statusCode" : 200\n}\n'},
                "responses": {
                    "default": {
                        "statusCode": "200",
                        "responseParameters": parameters,
                        "responseTemplates": {"application/json": "{}\n"},
                    }
                },
            }
        )


@dataclass(frozen=True)
class HttpCors:
    """The CORS configuration of an HTTP API."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin for a request's Origin, or None when it is not allowed."""
        if not origin:
            return None
        if origin in self.allow_origins:
            return origin
        return "*" if "*" in self.allow_origins else None

    def preflight(self, origin: str | None, status: int = 204) -> HttpResponse:
        headers: list[tuple[str, str]] = []
        allowed = self.allowed_origin(origin)
        if allowed is not None:
            headers.append(("access-control-allow-origin", allowed))
            if self.allow_credentials:
                headers.append(("access-control-allow-credentials", "true"))
            if self.allow_methods:
                headers.append(("access-control-allow-methods", ",".join(self.allow_methods)))
            if self.allow_headers:
                headers.append(("access-control-allow-headers", ",".join(self.allow_headers)))
            if self.expose_headers:
                headers.append(("access-control-expose-headers", ",".join(self.expose_headers)))
            if self.max_age is not None:
                headers.append(("access-control-max-age", str(self.max_age)))
        return HttpResponse(status, headers, b"")

    def decorate(self, response: HttpResponse, origin: str | None) -> HttpResponse:
        """The response with the API's CORS headers in place of any the function set."""
        headers = [(name, value) for name, value in response.headers if not name.lower().startswith(_CORS_PREFIX)]
        allowed = self.allowed_origin(origin)
        if allowed is not None:
            headers.append(("access-control-allow-origin", allowed))
            if self.allow_credentials:
                headers.append(("access-control-allow-credentials", "true"))
            if self.expose_headers:
                headers.append(("access-control-expose-headers", ",".join(self.expose_headers)))
        return HttpResponse(response.status, headers, response.body)


def is_preflight(method: str, origin: str | None, request_method: str | None) -> bool:
    return method == "OPTIONS" and bool(origin) and bool(request_method)


def _expression(value: Any, where: str, warnings: list[str]) -> str:
    """A REST CORS value as the string expression API Gateway expects."""
    if isinstance(value, bool):
        return "'true'" if value else "'false'"
    if isinstance(value, int | float):
        return f"'{value:g}'"
    text = str(value)
    if not (len(text) >= 2 and text.startswith("'") and text.endswith("'")):
        warnings.append(
            f"{where} is {text!r}: API Gateway needs a quoted string expression such as \"'{text}'\"; "
            "the header is not sent"
        )
    return text


def _list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def read_rest_cors(api: Api) -> tuple[RestCors | None, list[str]]:
    warnings: list[str] = []
    cors = api.properties.get("Cors")
    where = f"{api.logical_id}.Cors"
    if cors is None:
        return None, warnings
    if isinstance(cors, str):
        return RestCors(_expression(cors, where, warnings)), warnings
    if not isinstance(cors, Mapping) or "AllowOrigin" not in cors:
        warnings.append(f"{where} needs AllowOrigin: no CORS preflight is answered")
        return None, warnings

    def optional(key: str) -> str | None:
        value = cors.get(key)
        return None if value is None else _expression(value, f"{where}.{key}", warnings)

    return (
        RestCors(
            allow_origin=_expression(cors["AllowOrigin"], f"{where}.AllowOrigin", warnings),
            allow_methods=optional("AllowMethods"),
            allow_headers=optional("AllowHeaders"),
            max_age=optional("MaxAge"),
            allow_credentials=str(cors.get("AllowCredentials", "")).lower() == "true",
        ),
        warnings,
    )


def read_http_cors(api: Api) -> HttpCors | None:
    """`CorsConfiguration` over the definition's `x-amazon-apigateway-cors` (SAM merges them that way)."""
    extension = (api.definition or {}).get("x-amazon-apigateway-cors")
    merged: dict[str, Any] = {}
    if isinstance(extension, Mapping):
        merged.update({str(key).lower(): value for key, value in extension.items()})
    configuration = api.properties.get("CorsConfiguration")
    if configuration is True or str(configuration).lower() == "true":
        merged["alloworigins"] = ["*"]
    elif isinstance(configuration, Mapping):
        merged.update({str(key).lower(): value for key, value in configuration.items()})
    if not merged:
        return None
    return http_cors(merged)


def http_cors(configuration: Mapping[str, Any]) -> HttpCors:
    """An HTTP API's or a Function URL's CORS configuration (AllowOrigins, AllowMethods..., any case)."""
    merged = {str(key).lower(): value for key, value in configuration.items()}
    max_age = merged.get("maxage")
    return HttpCors(
        allow_origins=_list(merged.get("alloworigins")),
        allow_methods=tuple(method.upper() for method in _list(merged.get("allowmethods"))),
        allow_headers=_list(merged.get("allowheaders")),
        expose_headers=_list(merged.get("exposeheaders")),
        max_age=int(max_age) if max_age is not None else None,
        allow_credentials=str(merged.get("allowcredentials", "")).lower() == "true",
    )
