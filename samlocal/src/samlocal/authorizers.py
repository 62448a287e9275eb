"""API Gateway authorizers: which one guards a route, and what it decides for a request.

Read from SAM's `Auth` (`Authorizers`, `DefaultAuthorizer`, an event's `Auth.Authorizer`, `NONE`) and from
OpenAPI security schemes with `x-amazon-apigateway-authorizer`. An event's own authorizer wins over its
operation's `security`, which wins over the API's `DefaultAuthorizer`.

- Lambda authorizers (REST TOKEN and REQUEST; HTTP API payload 1.0 and 2.0) are invoked through the same
  execution environments as any function. Their identity sources are checked first: a missing one answers 401
  without invoking (REST REQUEST authorizers only require them when caching is on, as API Gateway does).
  A TOKEN authorizer's `ValidationExpression` must match the whole token, else 401. The returned IAM policy
  is evaluated against the request's method ARN (a cached policy too, so a policy naming one resource denies
  the next path, as in API Gateway); HTTP APIs also take `{"isAuthorized", "context"}` simple responses.
  Results are cached per identity for `ReauthorizeEvery` seconds (REST default 300, HTTP API default 0;
  0 disables caching).
- JWT (HTTP API) and Cognito user pool (REST) authorizers cannot check a signature offline: the bearer token
  is decoded without verifying its signature, and its `exp`, `nbf`, issuer, audience and scopes are checked;
  its claims reach the function as API Gateway passes them. A start-up warning says so.
- AWS_IAM: the SigV4 signature cannot be checked offline; a request without an `Authorization` header is
  refused as API Gateway refuses it, one with a header is accepted (start-up warning).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from samlocal import gateway_responses as responses
from samlocal.gateway_responses import ResponseType
from samlocal.iam_policy import Decision, PolicyError, evaluate
from samlocal.intrinsics import ACCOUNT_ID, REGION
from samlocal.template import Api, Function, Route
from samlocal.workers import Outcome

LAMBDA_TOKEN = "TOKEN"
LAMBDA_REQUEST = "REQUEST"
COGNITO = "COGNITO_USER_POOLS"
JWT = "JWT"
AWS_IAM = "AWS_IAM"
NONE = "NONE"
REST_DEFAULT_TTL = 300
HTTP_DEFAULT_TTL = 0
MAX_TTL = 3600
_CACHE_LIMIT = 10_000
# Auth settings that live in AWS only, and what a local request gets instead.
_NOT_APPLIED = {
    "ResourcePolicy": "every caller is let through",
    "UsagePlan": "no quota or throttling",
    "InvokeRole": "functions are invoked without assuming a role",
}
_FUNCTION_ARN = re.compile(r":function:([A-Za-z0-9_-]+)")

# Invokes a function with a payload: its outcome, or None when it gave no answer in time.
Invoke = Callable[[str, bytes], Outcome | None]


class AuthorizerConfigError(Exception):
    """An authorizer the template declares but that cannot be served."""


@dataclass(frozen=True)
class IdentitySource:
    """Where an identity value comes from: header, querystring, stageVariables or context."""

    where: str
    name: str

    @classmethod
    def parse(cls, expression: str) -> IdentitySource:
        text = expression.strip()
        for prefix, where in (
            ("method.request.header.", "header"),
            ("$request.header.", "header"),
            ("method.request.querystring.", "querystring"),
            ("$request.querystring.", "querystring"),
            ("stageVariables.", "stageVariables"),
            ("$stageVariables.", "stageVariables"),
            ("context.", "context"),
            ("$context.", "context"),
        ):
            if text.startswith(prefix) and len(text) > len(prefix):
                return cls(where, text[len(prefix) :])
        raise AuthorizerConfigError(f"unknown identity source {expression!r}")

    def value(self, request: RequestData) -> str | None:
        if self.where == "header":
            found = request.header(self.name)
        elif self.where == "querystring":
            found = request.query.get(self.name)
        elif self.where == "stageVariables":
            found = request.stage_variables.get(self.name)
        else:
            found = _dotted(request.context, self.name)
        return str(found) if found not in (None, "") else None


@dataclass(frozen=True)
class RequestData:
    """The parts of a request an authorizer reads, and the event the function would receive."""

    headers: Sequence[tuple[str, str]]
    query_string: str
    stage_variables: Mapping[str, str]
    context: Mapping[str, Any]  # the event's requestContext
    method: str
    path: str  # as sent, without the stage
    event: Mapping[str, Any]

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        found = None
        for key, value in self.headers:
            if key.lower() == wanted:
                found = value
        return found

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string, keep_blank_values=True))


def _dotted(values: Mapping[str, Any], path: str) -> Any:
    value: Any = values
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class Authorizer:
    name: str
    kind: str  # TOKEN, REQUEST, COGNITO_USER_POOLS, JWT, AWS_IAM
    api_kind: str  # REST or HTTP
    function_id: str | None = None
    identity_sources: tuple[IdentitySource, ...] = ()
    validation_expression: str | None = None
    ttl: int = REST_DEFAULT_TTL
    payload_version: str = "1.0"
    simple_responses: bool = False
    issuer: str | None = None
    audiences: tuple[str, ...] = ()

    @property
    def is_lambda(self) -> bool:
        return self.kind in (LAMBDA_TOKEN, LAMBDA_REQUEST)


@dataclass(frozen=True)
class Guard:
    """The authorizer guarding one route, with the scopes the route requires."""

    authorizer: Authorizer
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """Allowed, with what the function's `requestContext.authorizer` gets; or refused with a gateway response."""

    refusal: ResponseType | None = None
    context: Mapping[str, Any] | None = None
    reason: str = ""
    identity: Mapping[str, Any] | None = None  # added to requestContext.identity (AWS_IAM on REST APIs)

    @property
    def allowed(self) -> bool:
        return self.refusal is None


# Reading authorizers from a template -----------------------------------------------------------------


def _local_function(arn: Any, functions: Mapping[str, Function]) -> str | None:
    match = _FUNCTION_ARN.search(str(arn or ""))
    if match is None:
        return None
    for logical_id, function in functions.items():
        if match.group(1) in (logical_id, function.name):
            return logical_id
    return None


def _ttl(value: Any, default: int, where: str) -> int:
    if value is None:
        return default
    try:
        ttl = int(value)
    except (TypeError, ValueError) as error:
        raise AuthorizerConfigError(f"{where}: ReauthorizeEvery must be a number of seconds, got {value!r}") from error
    return max(0, min(ttl, MAX_TTL))


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _sam_authorizer(api: Api, name: str, spec: Mapping[str, Any], functions: Mapping[str, Function]) -> Authorizer:
    where = f"{api.logical_id}.Auth.Authorizers.{name}"
    identity = spec.get("Identity") or {}
    if not isinstance(identity, Mapping):
        raise AuthorizerConfigError(f"{where}: Identity must be a map")
    if api.kind == "HTTP":
        if "JwtConfiguration" in spec:
            jwt = {str(key).lower(): value for key, value in (spec.get("JwtConfiguration") or {}).items()}
            source = str(spec.get("IdentitySource") or "$request.header.Authorization")
            return Authorizer(
                name,
                JWT,
                "HTTP",
                identity_sources=tuple(IdentitySource.parse(item) for item in source.split(",")),
                issuer=str(jwt["issuer"]) if jwt.get("issuer") else None,
                audiences=_strings(jwt.get("audience")),
                ttl=0,
            )
        function_id = _function_or_raise(spec, functions, where)
        expressions = [f"$request.header.{item}" for item in _strings(identity.get("Headers"))]
        expressions += [f"$request.querystring.{item}" for item in _strings(identity.get("QueryStrings"))]
        expressions += [f"$stageVariables.{item}" for item in _strings(identity.get("StageVariables"))]
        expressions += [f"$context.{item}" for item in _strings(identity.get("Context"))]
        return Authorizer(
            name,
            LAMBDA_REQUEST,
            "HTTP",
            function_id,
            tuple(IdentitySource.parse(item) for item in expressions),
            ttl=_ttl(identity.get("ReauthorizeEvery"), HTTP_DEFAULT_TTL, where),
            payload_version=str(spec.get("AuthorizerPayloadFormatVersion") or "2.0"),
            simple_responses=str(spec.get("EnableSimpleResponses", "")).lower() == "true",
        )
    if "UserPoolArn" in spec:
        header = str(identity.get("Header") or "Authorization")
        return Authorizer(
            name,
            COGNITO,
            "REST",
            identity_sources=(IdentitySource("header", header),),
            validation_expression=identity.get("ValidationExpression"),
            ttl=0,
        )
    function_id = _function_or_raise(spec, functions, where)
    payload_type = str(spec.get("FunctionPayloadType") or LAMBDA_TOKEN).upper()
    ttl = _ttl(identity.get("ReauthorizeEvery"), REST_DEFAULT_TTL, where)
    if payload_type == LAMBDA_TOKEN:
        header = str(identity.get("Header") or "Authorization")
        return Authorizer(
            name,
            LAMBDA_TOKEN,
            "REST",
            function_id,
            (IdentitySource("header", header),),
            validation_expression=identity.get("ValidationExpression"),
            ttl=ttl,
        )
    if payload_type != LAMBDA_REQUEST:
        raise AuthorizerConfigError(f"{where}: FunctionPayloadType must be TOKEN or REQUEST, got {payload_type}")
    sources = [IdentitySource("header", item) for item in _strings(identity.get("Headers"))]
    sources += [IdentitySource("querystring", item) for item in _strings(identity.get("QueryStrings"))]
    sources += [IdentitySource("stageVariables", item) for item in _strings(identity.get("StageVariables"))]
    sources += [IdentitySource("context", item) for item in _strings(identity.get("Context"))]
    return Authorizer(name, LAMBDA_REQUEST, "REST", function_id, tuple(sources), ttl=ttl)


def _function_or_raise(spec: Mapping[str, Any], functions: Mapping[str, Function], where: str) -> str:
    function_id = _local_function(spec.get("FunctionArn"), functions)
    if function_id is None:
        raise AuthorizerConfigError(f"{where}: FunctionArn {spec.get('FunctionArn')!r} names no local function")
    return function_id


def _openapi_authorizer(
    api: Api, name: str, scheme: Mapping[str, Any], functions: Mapping[str, Function]
) -> Authorizer | None:
    where = f"{api.logical_id}: security scheme {name}"
    auth_type = str(scheme.get("x-amazon-apigateway-authtype", "")).lower()
    if auth_type == "awssigv4":
        return Authorizer(name, AWS_IAM, api.kind)
    extension = scheme.get("x-amazon-apigateway-authorizer")
    if not isinstance(extension, Mapping):
        return None
    kind = str(extension.get("type", "")).lower()
    sources = extension.get("identitySource")
    source_list = _strings(sources) if isinstance(sources, list) else tuple(str(sources or "").split(","))
    parsed = tuple(IdentitySource.parse(item) for item in source_list if item.strip())
    if kind == "jwt":
        jwt = extension.get("jwtConfiguration") or {}
        return Authorizer(
            name,
            JWT,
            "HTTP",
            identity_sources=parsed or (IdentitySource("header", "Authorization"),),
            issuer=str(jwt["issuer"]) if jwt.get("issuer") else None,
            audiences=_strings(jwt.get("audience")),
            ttl=0,
        )
    if kind == "cognito_user_pools":
        header = scheme.get("name") if scheme.get("in") == "header" else None
        return Authorizer(
            name,
            COGNITO,
            "REST",
            identity_sources=parsed or (IdentitySource("header", str(header or "Authorization")),),
            validation_expression=extension.get("identityValidationExpression"),
            ttl=0,
        )
    if kind not in ("token", "request"):
        raise AuthorizerConfigError(f"{where}: authorizer type {kind!r} is not served")
    function_id = _local_function(extension.get("authorizerUri"), functions)
    if function_id is None:
        raise AuthorizerConfigError(
            f"{where}: authorizerUri {extension.get('authorizerUri')!r} names no local function"
        )
    default_ttl = REST_DEFAULT_TTL if api.kind == "REST" else HTTP_DEFAULT_TTL
    ttl = _ttl(extension.get("authorizerResultTtlInSeconds"), default_ttl, where)
    if kind == "token":
        header = scheme.get("name") if scheme.get("in") == "header" else None
        return Authorizer(
            name,
            LAMBDA_TOKEN,
            api.kind,
            function_id,
            parsed or (IdentitySource("header", str(header or "Authorization")),),
            validation_expression=extension.get("identityValidationExpression"),
            ttl=ttl,
        )
    return Authorizer(
        name,
        LAMBDA_REQUEST,
        api.kind,
        function_id,
        parsed,
        ttl=ttl,
        payload_version=str(
            extension.get("authorizerPayloadFormatVersion") or ("1.0" if api.kind == "REST" else "2.0")
        ),
        simple_responses=bool(extension.get("enableSimpleResponses")),
    )


def _security_schemes(definition: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not definition:
        return {}
    return {
        **((definition.get("components") or {}).get("securitySchemes") or {}),
        **(definition.get("securityDefinitions") or {}),
    }


def read_authorizers(api: Api, functions: Mapping[str, Function]) -> tuple[dict[str, Authorizer], list[str]]:
    """The authorizers an API declares, by name, and what cannot be served of them."""
    found: dict[str, Authorizer] = {}
    warnings: list[str] = []
    for name, scheme in _security_schemes(api.definition).items():
        if not isinstance(scheme, Mapping):
            continue
        try:
            authorizer = _openapi_authorizer(api, str(name), scheme, functions)
        except AuthorizerConfigError as error:
            warnings.append(f"{error}: its routes answer 500 AuthorizerConfigurationException")
            found[str(name)] = Authorizer(str(name), "UNSERVED", api.kind)
            continue
        if authorizer is not None:
            found[str(name)] = _checked(authorizer, warnings)
    auth = api.properties.get("Auth") or {}
    warnings.extend(
        f"{api.logical_id}.Auth.{key} is not applied locally: {effect}"
        for key, effect in _NOT_APPLIED.items()
        if isinstance(auth, Mapping) and auth.get(key)
    )
    for name, spec in (auth.get("Authorizers") or {}).items() if isinstance(auth, Mapping) else ():
        if not isinstance(spec, Mapping):
            continue
        try:
            found[str(name)] = _checked(_sam_authorizer(api, str(name), spec, functions), warnings)
        except AuthorizerConfigError as error:
            warnings.append(f"{error}: its routes answer 500 AuthorizerConfigurationException")
            found[str(name)] = Authorizer(str(name), "UNSERVED", api.kind)
    return found, warnings


def _checked(authorizer: Authorizer, warnings: list[str]) -> Authorizer:
    """The authorizer, or an unserved one when its ValidationExpression is not a regular expression."""
    if authorizer.validation_expression is None:
        return authorizer
    try:
        re.compile(str(authorizer.validation_expression))
    except re.error as error:
        warnings.append(
            f"authorizer {authorizer.name}: ValidationExpression {authorizer.validation_expression!r} is not a "
            f"regular expression ({error}): its routes answer 500 AuthorizerConfigurationException"
        )
        return Authorizer(authorizer.name, "UNSERVED", authorizer.api_kind)
    return authorizer


def guard_for(route: Route, api: Api, authorizers: Mapping[str, Authorizer]) -> Guard | None:
    """Which authorizer guards a route: the event's, else the operation's security, else the API's default."""
    event_auth = route.auth or {}
    chosen = event_auth.get("Authorizer")
    scopes = _strings(event_auth.get("AuthorizationScopes"))
    if chosen is None and isinstance(route.security, list):
        for requirement in route.security:
            if not isinstance(requirement, Mapping):
                continue
            for name, requirement_scopes in requirement.items():
                if name in authorizers:
                    chosen = name
                    scopes = scopes or _strings(requirement_scopes)
                    break
            if chosen is not None:
                break
        if chosen is None and route.security == []:
            return None
    api_auth = api.properties.get("Auth") or {}
    if chosen is None:
        chosen = api_auth.get("DefaultAuthorizer")
        # SAM adds the default authorizer to preflight methods unless told not to
        preflight = chosen is not None and route.method == "OPTIONS" and api.kind == "REST"
        if preflight and str(api_auth.get("AddDefaultAuthorizerToCorsPreflight", True)).lower() == "false":
            return None
    if chosen is None or chosen == NONE:
        return None
    if chosen == AWS_IAM:
        return Guard(Authorizer(AWS_IAM, AWS_IAM, api.kind), scopes)
    authorizer = authorizers.get(str(chosen))
    if authorizer is None:
        return Guard(Authorizer(str(chosen), "UNSERVED", api.kind), scopes)
    return Guard(authorizer, scopes)


def startup_warnings(guards: Iterable[Guard]) -> list[str]:
    """What cannot be checked offline, said once per authorizer."""
    warnings: dict[str, str] = {}
    for guard in guards:
        authorizer = guard.authorizer
        if authorizer.kind in (JWT, COGNITO):
            warnings[authorizer.name] = (
                f"authorizer {authorizer.name} ({authorizer.kind}): token signatures are not verified offline; "
                "a token's claims (decoded unverified), expiry, issuer, audience and scopes are checked"
            )
        elif authorizer.kind == AWS_IAM:
            warnings[authorizer.name] = (
                "AWS_IAM authorization: SigV4 signatures are not verified offline; "
                "a request without an Authorization header is refused"
            )
        elif authorizer.kind == "UNSERVED":
            warnings[authorizer.name] = (
                f"authorizer {authorizer.name} is not declared or not served: its routes answer 500"
            )
    return list(warnings.values())


# Deciding --------------------------------------------------------------------------------------------


def method_arn(api: Api, api_identifier: str, method: str, path: str) -> str:
    """`arn:aws:execute-api:region:account:api-id/stage/METHOD/path` for the request (a route ARN on HTTP APIs)."""
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_identifier}/{api.stage_name}/{method}/{path.lstrip('/')}"


@dataclass
class _Cached:
    expires: float
    output: Mapping[str, Any]


def _refusals(api_kind: str) -> tuple[ResponseType, ResponseType, ResponseType, ResponseType]:
    """(unauthorized, implicit deny, explicit deny, authorizer failure) for the kind of API."""
    if api_kind == "HTTP":
        return (
            responses.HTTP_API_UNAUTHORIZED,
            responses.HTTP_API_FORBIDDEN,
            responses.HTTP_API_FORBIDDEN,
            responses.HTTP_API_INTERNAL_ERROR,
        )
    return (
        responses.UNAUTHORIZED,
        responses.ACCESS_DENIED,
        responses.EXPLICITLY_DENIED,
        responses.AUTHORIZER_CONFIGURATION_ERROR,
    )


class AuthorizerOutputError(Exception):
    """The authorizer's answer is not one API Gateway accepts: 500."""


@dataclass
class Authorization:
    """Runs authorizers for requests; keeps their cached results."""

    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    _cache: dict[tuple[str, tuple[str, ...]], _Cached] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(
        self, guard: Guard, request: RequestData, resource_arn: str, invoke: Invoke, payload_version: str = "1.0"
    ) -> Verdict:
        """The verdict for one request; `payload_version` is the route's (how the function gets the context)."""
        authorizer = guard.authorizer
        unauthorized, _, _, failure = _refusals(authorizer.api_kind)
        if authorizer.kind == "UNSERVED":
            return Verdict(failure, reason=f"authorizer {authorizer.name} is not served")
        if authorizer.kind == AWS_IAM:
            return self._iam(authorizer, request)
        identities = [source.value(request) for source in authorizer.identity_sources]
        required = authorizer.kind != LAMBDA_REQUEST or authorizer.api_kind == "HTTP" or authorizer.ttl > 0
        if required and any(value is None for value in identities):
            return Verdict(unauthorized, reason=f"{authorizer.name}: identity source missing")
        if authorizer.kind in (JWT, COGNITO):
            return _bearer_token(guard, identities[0] or "", self.wall_clock(), payload_version)
        token = identities[0] if identities else None
        expression = authorizer.validation_expression if authorizer.kind == LAMBDA_TOKEN else None
        if expression and re.fullmatch(str(expression), token or "") is None:
            return Verdict(unauthorized, reason=f"{authorizer.name}: token does not match ValidationExpression")
        key = (authorizer.name, tuple(value or "" for value in identities))
        output = self._cached(key) if authorizer.ttl > 0 else None
        if output is None:
            event = _authorizer_event(authorizer, request, resource_arn, [value or "" for value in identities])
            outcome = invoke(authorizer.function_id or "", json.dumps(event).encode())
            if outcome is None:
                return Verdict(failure, reason=f"{authorizer.name}: no answer in time")
            if not outcome.ok:
                message = _error_message(outcome.payload)
                if message == "Unauthorized":
                    return Verdict(unauthorized, reason=f"{authorizer.name}: Unauthorized")
                return Verdict(failure, reason=f"{authorizer.name}: function error {outcome.error_type}: {message}")
            try:
                output = json.loads(outcome.payload)
                _check_output(authorizer, output)
            except (ValueError, AuthorizerOutputError, PolicyError) as error:
                return Verdict(failure, reason=f"{authorizer.name}: invalid authorizer response: {error}")
            if authorizer.ttl > 0:
                self._remember(key, _Cached(self.clock() + authorizer.ttl, output))
        return _judge(authorizer, output, resource_arn, payload_version)

    def _remember(self, key: tuple[str, tuple[str, ...]], entry: _Cached) -> None:
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:  # many distinct tokens: forget the expired ones
                now = self.clock()
                self._cache = {known: cached for known, cached in self._cache.items() if cached.expires > now}
            self._cache[key] = entry

    def _cached(self, key: tuple[str, tuple[str, ...]]) -> Mapping[str, Any] | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry.expires <= self.clock():
                del self._cache[key]
                return None
            return entry.output

    @staticmethod
    def _iam(authorizer: Authorizer, request: RequestData) -> Verdict:
        header = request.header("Authorization")
        if not header:
            refusal = (
                responses.MISSING_AUTHENTICATION_TOKEN
                if authorizer.api_kind == "REST"
                else responses.HTTP_API_FORBIDDEN
            )
            return Verdict(refusal, reason="AWS_IAM: no Authorization header")
        credential = re.search(r"Credential=([^/,\s]+)", header)
        access_key = credential.group(1) if credential else None
        if authorizer.api_kind == "HTTP":
            return Verdict(None, {"iam": {"accessKey": access_key, "accountId": ACCOUNT_ID}})
        return Verdict(None, identity={"accessKey": access_key, "accountId": ACCOUNT_ID})


def _error_message(payload: bytes) -> str:
    try:
        document = json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", errors="replace")
    return str(document.get("errorMessage", "")) if isinstance(document, dict) else str(document)


def _authorizer_event(
    authorizer: Authorizer, request: RequestData, resource_arn: str, identities: list[str]
) -> dict[str, Any]:
    if authorizer.kind == LAMBDA_TOKEN:
        return {"type": "TOKEN", "authorizationToken": identities[0], "methodArn": resource_arn}
    # A REQUEST authorizer gets the function's event without its body.
    event = {key: value for key, value in request.event.items() if key not in ("body", "isBase64Encoded")}
    # The authorizer's own fields win over the request event's: its payload version is not the route's.
    if authorizer.api_kind == "REST":
        return {**event, "type": "REQUEST", "methodArn": resource_arn}
    if authorizer.payload_version == "2.0":
        return {**event, "version": "2.0", "type": "REQUEST", "routeArn": resource_arn, "identitySource": identities}
    joined = ",".join(identities)
    return {
        **event,
        "version": "1.0",
        "type": "REQUEST",
        "methodArn": resource_arn,
        "identitySource": joined,
        "authorizationToken": joined,
    }


def _check_output(authorizer: Authorizer, output: Any) -> None:
    if not isinstance(output, dict):
        raise AuthorizerOutputError("the answer must be a JSON object")
    context = output.get("context")
    if context is not None:
        if not isinstance(context, dict):
            raise AuthorizerOutputError("context must be an object")
        if authorizer.api_kind == "REST" and any(isinstance(value, dict | list) for value in context.values()):
            raise AuthorizerOutputError("context values must be strings, numbers or booleans")
    if authorizer.simple_responses and authorizer.payload_version == "2.0":
        if not isinstance(output.get("isAuthorized"), bool):
            raise AuthorizerOutputError("isAuthorized must be a boolean")
        return
    if authorizer.api_kind == "REST" and not isinstance(output.get("principalId"), str | int):
        raise AuthorizerOutputError("principalId is missing")
    if "policyDocument" not in output:
        raise AuthorizerOutputError("policyDocument is missing")
    evaluate(output["policyDocument"], "arn:aws:execute-api:check")  # raises PolicyError when not a policy


def _judge(authorizer: Authorizer, output: Mapping[str, Any], resource_arn: str, payload_version: str) -> Verdict:
    _, implicit_deny, explicit_deny, _ = _refusals(authorizer.api_kind)
    context = dict(output.get("context") or {})
    if authorizer.simple_responses and authorizer.payload_version == "2.0":
        if not output["isAuthorized"]:
            return Verdict(implicit_deny, reason=f"{authorizer.name}: isAuthorized is false")
    else:
        decision = evaluate(output["policyDocument"], resource_arn)
        if decision is Decision.EXPLICIT_DENY:
            return Verdict(explicit_deny, reason=f"{authorizer.name}: the policy denies {resource_arn}")
        if decision is Decision.IMPLICIT_DENY:
            return Verdict(implicit_deny, reason=f"{authorizer.name}: the policy does not allow {resource_arn}")
    principal = output.get("principalId")
    if authorizer.api_kind == "HTTP" and payload_version == "2.0":
        return Verdict(None, {"lambda": context or None})
    if authorizer.api_kind == "HTTP":
        # payload 1.0 on an HTTP API: the context map as is, beside the principal
        return Verdict(None, {**context, "principalId": principal, "integrationLatency": 0})
    # REST APIs pass context values to the function as strings.
    values = {key: _as_string(value) for key, value in context.items()}
    return Verdict(None, {**values, "principalId": str(principal), "integrationLatency": 0})


def _as_string(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Bearer tokens (JWT and Cognito user pools) ----------------------------------------------------------


def decode_jwt(token: str) -> dict[str, Any]:
    """The claims of a JWT, without verifying its signature; ValueError if it is not a JWT."""
    parts = token.removeprefix("Bearer ").strip().split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has three dot-separated parts")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"not a JWT: {error}") from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("a JWT's header and claims are JSON objects")
    return claims


def _claim_text(value: Any) -> str:
    """Claims reach the function as strings; a list as `[a b]`, as API Gateway writes it."""
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _bearer_token(guard: Guard, token: str, now: float, payload_version: str) -> Verdict:
    authorizer = guard.authorizer
    unauthorized, forbidden, _, _ = _refusals(authorizer.api_kind)
    if authorizer.validation_expression and re.fullmatch(str(authorizer.validation_expression), token) is None:
        return Verdict(unauthorized, reason=f"{authorizer.name}: token does not match ValidationExpression")
    try:
        claims = decode_jwt(token)
    except ValueError as error:
        return Verdict(unauthorized, reason=f"{authorizer.name}: {error}")
    for name, late in (("exp", True), ("nbf", False)):
        moment = claims.get(name)
        if isinstance(moment, int | float) and (now >= moment if late else now < moment):
            return Verdict(unauthorized, reason=f"{authorizer.name}: the token's {name} is {moment}")
    if authorizer.issuer and claims.get("iss") != authorizer.issuer:
        return Verdict(
            unauthorized, reason=f"{authorizer.name}: issuer {claims.get('iss')!r} is not {authorizer.issuer}"
        )
    if authorizer.audiences:
        audiences = set(_strings(claims.get("aud"))) | set(_strings(claims.get("client_id")))
        if not audiences & set(authorizer.audiences):
            return Verdict(unauthorized, reason=f"{authorizer.name}: audience {sorted(audiences)} not accepted")
    token_scopes = tuple(str(claims.get("scope") or claims.get("scp") or "").split())
    if guard.scopes and not set(guard.scopes) & set(token_scopes):
        # HTTP APIs answer 403 for a missing scope; a Cognito authorizer on a REST API answers 401
        refusal = forbidden if authorizer.api_kind == "HTTP" else unauthorized
        return Verdict(refusal, reason=f"{authorizer.name}: the token has none of the scopes {list(guard.scopes)}")
    texts = {key: _claim_text(value) for key, value in claims.items()}
    if authorizer.api_kind == "HTTP" and payload_version == "2.0":
        return Verdict(None, {"jwt": {"claims": texts, "scopes": list(token_scopes) if guard.scopes else None}})
    if authorizer.api_kind == "HTTP":
        return Verdict(None, {"claims": texts, "scopes": list(token_scopes) if guard.scopes else None})
    return Verdict(None, {"claims": texts})
