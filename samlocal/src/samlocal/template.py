"""What a SAM template serves: functions, their layers, and the REST APIs routing to them.

Reads `AWS::Serverless::Function`, `AWS::Serverless::LayerVersion` and `AWS::Serverless::Api` resources
with the template's `Globals`, and the routes of each API from its OpenAPI definition (`DefinitionBody`,
inline or through `AWS::Include`, or `DefinitionUri`) and from the functions' `Api` events (an event
without `RestApiId` belongs to the implicit `ServerlessRestApi`, stage `Prod`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samlocal.intrinsics import ACCOUNT_ID, REGION, PhysicalResource, Resolver, TemplateError, load_document

IMPLICIT_API = "ServerlessRestApi"
IMPLICIT_STAGE = "Prod"
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ANY_METHOD = "ANY"
_FUNCTION_ARN = re.compile(r":function:([A-Za-z0-9_-]+)")


def function_arn(logical_id: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}"


@dataclass(frozen=True)
class Layer:
    logical_id: str
    content_dir: Path
    # A layer with a requirements.txt is built by pip at deploy time; locally, its packages are the
    # ones of the emulator's own virtual environment.
    provides_requirements: bool

    @property
    def python_dir(self) -> Path:
        return self.content_dir / "python"


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str
    handler: str
    runtime: str
    code_dir: Path
    layers: tuple[Layer, ...]
    timeout: float
    memory_size: int
    architecture: str
    environment: Mapping[str, str]
    # Its event sources other than Api and HttpApi (SQS, S3, DynamoDB...), intrinsics resolved.
    events: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions: its concurrency limit
    # EventInvokeConfig (retries and destinations of asynchronous invocations), intrinsics resolved.
    event_invoke_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return function_arn(self.name)


@dataclass(frozen=True)
class Route:
    method: str  # an HTTP method or ANY
    resource_path: str  # as API Gateway names it: /models/{name}, /{proxy+}
    function_id: str
    api_id: str
    operation_name: str | None = None
    timeout_ms: int | None = None  # the integration's timeoutInMillis
    api_key_required: bool = False  # any x-api-key value is accepted locally
    # What authorizers read: the event's resolved `Auth` property, the OpenAPI operation's `security`.
    auth: Mapping[str, Any] | None = None
    security: Any = None
    # An OpenAPI integration that names no local function (MOCK, HTTP, an unknown Lambda): the gateway
    # answers it as API Gateway would; function_id is then empty.
    integration: Mapping[str, Any] | None = None
    # HTTP APIs: the integration's payload format, "2.0" (the v2 event) or "1.0" (the REST-shaped event).
    payload_format_version: str = "1.0"


@dataclass
class Api:
    logical_id: str
    stage_name: str
    binary_media_types: list[str] = field(default_factory=list)
    stage_variables: dict[str, str] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    kind: str = "REST"  # REST (AWS::Serverless::Api) or HTTP (AWS::Serverless::HttpApi)
    # The resource's resolved Properties (Globals merged) and its OpenAPI definition: Auth, Cors,
    # GatewayResponses and security schemes are read from them.
    properties: Mapping[str, Any] = field(default_factory=dict)
    definition: Mapping[str, Any] | None = None


@dataclass
class Stack:
    template_path: Path
    functions: dict[str, Function]
    apis: dict[str, Api]
    warnings: list[str] = field(default_factory=list)

    @property
    def routes(self) -> list[Route]:
        return [route for api in self.apis.values() for route in api.routes]


def _merge_globals(global_properties: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (the resource wins), lists concatenate (globals first), scalars override."""
    merged: dict[str, Any] = dict(global_properties)
    for key, value in properties.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        else:
            merged[key] = value
    return merged


def _media_type(value: str) -> str:
    # SAM templates write `/` as `~1` (a JSON-pointer escape)
    return value.replace("~1", "/")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise TemplateError(f"{what} must be a number, got {value!r}") from error


class TemplateReader:
    """Turns one template into a `Stack`."""

    def __init__(
        self,
        template_path: Path,
        parameter_overrides: Mapping[str, str] | None = None,
        physical: Mapping[str, PhysicalResource] | None = None,
    ) -> None:
        self.template_path = template_path.resolve()
        self.base_dir = self.template_path.parent
        document = load_document(self.template_path)
        if (
            not isinstance(document, Mapping)
            or not document.get("Resources")
            or not isinstance(document["Resources"], Mapping)
        ):
            raise TemplateError(f"{template_path} has no Resources")
        self.document: Mapping[str, Any] = document
        self.resolver = Resolver(document, self.base_dir, parameter_overrides, self._attribute, physical)
        self.resources: Mapping[str, Any] = document["Resources"]
        self.globals: Mapping[str, Any] = document.get("Globals") or {}
        self.warnings: list[str] = self.resolver.warnings

    def _attribute(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id) or {}
        if resource.get("Type") in {"AWS::Serverless::Function", "AWS::Lambda::Function"} and attribute == "Arn":
            return function_arn(logical_id)
        return f"{logical_id}.{attribute}"

    def _of_type(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for logical_id, resource in self.resources.items():
            if not isinstance(resource, Mapping) or resource.get("Type") != resource_type:
                continue
            condition = resource.get("Condition")
            if condition is not None and not self.resolver.condition(str(condition)):
                continue
            found[logical_id] = resource
        return found

    def read(self) -> Stack:
        layers = {logical_id: self._layer(logical_id, resource) for logical_id, resource in self._layers().items()}
        functions: dict[str, Function] = {}
        function_properties: dict[str, Mapping[str, Any]] = {}
        for logical_id, resource in self._of_type("AWS::Serverless::Function").items():
            properties = _merge_globals(self.globals.get("Function") or {}, resource.get("Properties") or {})
            function = self._function(logical_id, properties, layers)
            if function is not None:
                functions[logical_id] = function
                function_properties[logical_id] = properties
        apis = self._apis(functions)
        self._add_event_routes(apis, function_properties)
        for api in apis.values():
            api.routes = _deduplicate(api, self.warnings)
        return Stack(self.template_path, functions, {k: v for k, v in apis.items() if v.routes}, self.warnings)

    # Layers and functions ------------------------------------------------------------------------

    def _layers(self) -> dict[str, Mapping[str, Any]]:
        return self._of_type("AWS::Serverless::LayerVersion")

    def _layer(self, logical_id: str, resource: Mapping[str, Any]) -> Layer:
        properties = self.resolver.resolve(resource.get("Properties") or {})
        content_uri = properties.get("ContentUri")
        if not isinstance(content_uri, str):
            raise TemplateError(f"{logical_id}: only a local ContentUri can be served, got {content_uri!r}")
        content_dir = (self.base_dir / content_uri).resolve()
        if not content_dir.is_dir():
            raise TemplateError(f"{logical_id}: ContentUri {content_uri} is not a directory")
        return Layer(logical_id, content_dir, (content_dir / "requirements.txt").is_file())

    def _function(self, logical_id: str, raw: Mapping[str, Any], layers: Mapping[str, Layer]) -> Function | None:
        raw_layers = raw.get("Layers") or []
        properties = self.resolver.resolve({key: value for key, value in raw.items() if key != "Events"})
        if properties.get("PackageType") == "Image":
            self.warnings.append(f"{logical_id}: image functions are not served (PackageType: Image)")
            return None
        runtime = str(properties.get("Runtime", ""))
        if not runtime.startswith("python"):
            self.warnings.append(f"{logical_id}: runtime {runtime or '(none)'} is not served, only python runtimes")
            return None
        code_dir = self._code_dir(logical_id, properties)
        function_layers: list[Layer] = []
        for entry in raw_layers:
            layer_id = entry.get("Ref") if isinstance(entry, Mapping) else None
            if isinstance(layer_id, str) and layer_id in layers:
                function_layers.append(layers[layer_id])
            else:
                self.warnings.append(f"{logical_id}: layer {self.resolver.resolve(entry)!r} is not local, skipped")
        environment = (properties.get("Environment") or {}).get("Variables") or {}
        events = {
            str(event_id): self.resolver.resolve(event)
            for event_id, event in (raw.get("Events") or {}).items()
            if isinstance(event, Mapping) and event.get("Type") not in {"Api", "HttpApi"}
        }
        architectures = properties.get("Architectures") or ["x86_64"]
        handler = properties.get("Handler")
        if not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"{logical_id}: Handler must look like module.function, got {handler!r}")
        return Function(
            logical_id=logical_id,
            name=str(properties.get("FunctionName") or logical_id),
            handler=handler,
            runtime=runtime,
            code_dir=code_dir,
            layers=tuple(function_layers),
            timeout=_number(properties.get("Timeout", DEFAULT_TIMEOUT), f"{logical_id}.Timeout"),
            memory_size=int(_number(properties.get("MemorySize", DEFAULT_MEMORY), f"{logical_id}.MemorySize")),
            architecture=str(architectures[0]),
            environment={str(key): _as_text(value) for key, value in environment.items()},
            events=events,
            reserved_concurrency=_reserved_concurrency(logical_id, properties),
            event_invoke_config=properties.get("EventInvokeConfig") or {},
        )

    def _code_dir(self, logical_id: str, properties: Mapping[str, Any]) -> Path:
        inline = properties.get("InlineCode")
        if isinstance(inline, str):
            raise TemplateError(f"{logical_id}: InlineCode is not served; put the code in a CodeUri directory")
        code_uri = properties.get("CodeUri", ".")
        if not isinstance(code_uri, str):
            raise TemplateError(f"{logical_id}: only a local CodeUri can be served, got {code_uri!r}")
        code_dir = (self.base_dir / code_uri).resolve()
        if not code_dir.is_dir():
            raise TemplateError(f"{logical_id}: CodeUri {code_uri} is not a directory")
        return code_dir

    # APIs ----------------------------------------------------------------------------------------

    def _apis(self, functions: Mapping[str, Function]) -> dict[str, Api]:
        apis: dict[str, Api] = {}
        global_api = self.globals.get("Api") or {}
        for logical_id, resource in self._of_type("AWS::Serverless::Api").items():
            properties = self.resolver.resolve(_merge_globals(global_api, resource.get("Properties") or {}))
            api = self._api(logical_id, properties)
            definition = self._definition(logical_id, properties)
            api.definition = definition
            if definition is not None:
                api.binary_media_types += [
                    _media_type(str(item)) for item in definition.get("x-amazon-apigateway-binary-media-types") or []
                ]
                api.routes += self._definition_routes(logical_id, definition, functions)
            api.binary_media_types = list(dict.fromkeys(api.binary_media_types))
            apis[logical_id] = api
        return apis

    def _api(self, logical_id: str, properties: Mapping[str, Any]) -> Api:
        stage = properties.get("StageName")
        if not isinstance(stage, str) or not stage:
            raise TemplateError(f"{logical_id}: StageName is required")
        variables = properties.get("Variables") or {}
        return Api(
            logical_id=logical_id,
            stage_name=stage,
            binary_media_types=[_media_type(str(item)) for item in properties.get("BinaryMediaTypes") or []],
            stage_variables={str(key): _as_text(value) for key, value in variables.items()},
            properties=properties,
        )

    def _definition(self, logical_id: str, properties: Mapping[str, Any]) -> Mapping[str, Any] | None:
        body = properties.get("DefinitionBody")
        if body is not None:
            if not isinstance(body, Mapping):
                raise TemplateError(f"{logical_id}: DefinitionBody must be an OpenAPI document")
            return body
        uri = properties.get("DefinitionUri")
        if uri is None:
            return None
        if not isinstance(uri, str) or uri.startswith("s3://"):
            raise TemplateError(f"{logical_id}: only a local DefinitionUri can be served, got {uri!r}")
        document = self.resolver.resolve(load_document(self.base_dir / uri))
        if not isinstance(document, Mapping):
            raise TemplateError(f"{logical_id}: {uri} is not an OpenAPI document")
        return document

    def _definition_routes(
        self, api_id: str, definition: Mapping[str, Any], functions: Mapping[str, Function]
    ) -> list[Route]:
        routes: list[Route] = []
        keys = _api_key_schemes(definition)
        for path, operations in (definition.get("paths") or {}).items():
            if not isinstance(operations, Mapping):
                continue
            for method, operation in operations.items():
                if not isinstance(operation, Mapping):
                    continue
                http_method = "ANY" if method == "x-amazon-apigateway-any-method" else str(method).upper()
                if http_method not in (*HTTP_METHODS, ANY_METHOD):
                    continue
                integration = operation.get("x-amazon-apigateway-integration") or {}
                kind = str(integration.get("type", "")).lower()
                if not kind:
                    self.warnings.append(f"{api_id}: {http_method} {path}: no x-amazon-apigateway-integration")
                    continue
                function_id = None
                if kind == "aws_proxy":
                    function_id = self._integration_function(str(integration.get("uri", "")), functions)
                if function_id is None and kind not in ("mock", "http_proxy"):
                    self.warnings.append(
                        f"{api_id}: {http_method} {path}: the {kind.upper()} integration {integration.get('uri')!r} "
                        "names no local function: answers 500 Internal server error"
                    )
                timeout = integration.get("timeoutInMillis")
                routes.append(
                    Route(
                        method=http_method,
                        resource_path=str(path),
                        function_id=function_id or "",
                        api_id=api_id,
                        operation_name=operation.get("operationId"),
                        timeout_ms=int(timeout) if timeout is not None else None,
                        api_key_required=_needs_api_key(operation.get("security", definition.get("security")), keys),
                        security=operation.get("security", definition.get("security")),
                        integration=None if function_id else integration,
                    )
                )
        return routes

    @staticmethod
    def _integration_function(uri: str, functions: Mapping[str, Function]) -> str | None:
        match = _FUNCTION_ARN.search(uri)
        if match is None:
            return None
        name = match.group(1)
        for logical_id, function in functions.items():
            if name in (logical_id, function.name):
                return logical_id
        return None

    def _add_event_routes(self, apis: dict[str, Api], function_properties: Mapping[str, Mapping[str, Any]]) -> None:
        for function_id, properties in function_properties.items():
            for event_id, event in (properties.get("Events") or {}).items():
                if not isinstance(event, Mapping):
                    continue
                if event.get("Type") == "HttpApi":
                    self.warnings.append(f"{function_id}.{event_id}: HttpApi events are not served (REST APIs only)")
                if event.get("Type") != "Api":
                    continue
                event_properties = event.get("Properties") or {}
                rest_api = event_properties.get("RestApiId")
                api_id = rest_api.get("Ref") if isinstance(rest_api, Mapping) else rest_api
                api_id = str(api_id) if api_id else IMPLICIT_API
                if api_id not in apis:
                    if api_id != IMPLICIT_API:
                        raise TemplateError(
                            f"{function_id}.{event_id}: RestApiId {api_id} is not an Api of the template"
                        )
                    apis[api_id] = self._implicit_api()
                event_properties = self.resolver.resolve(event_properties)
                method = str(event_properties.get("Method", "")).upper()
                path = event_properties.get("Path")
                if not isinstance(path, str) or not method:
                    raise TemplateError(f"{function_id}.{event_id}: an Api event needs Path and Method")
                auth = event_properties.get("Auth") or {}
                apis[api_id].routes.append(
                    Route(
                        method=method,
                        resource_path=path,
                        function_id=function_id,
                        api_id=api_id,
                        api_key_required=str(auth.get("ApiKeyRequired", "")).lower() == "true",
                        auth=auth or None,
                    )
                )

    def _implicit_api(self) -> Api:
        properties = self.resolver.resolve(self.globals.get("Api") or {})
        return self._api(IMPLICIT_API, {**properties, "StageName": IMPLICIT_STAGE})


def _api_key_schemes(definition: Mapping[str, Any]) -> set[str]:
    """Security schemes that are API Gateway API keys (an x-api-key header)."""
    schemes = {
        **((definition.get("components") or {}).get("securitySchemes") or {}),
        **(definition.get("securityDefinitions") or {}),
    }
    return {
        name
        for name, scheme in schemes.items()
        if isinstance(scheme, Mapping)
        and scheme.get("type") == "apiKey"
        and str(scheme.get("name", "")).lower() == "x-api-key"
        and scheme.get("in") == "header"
    }


def _needs_api_key(security: Any, keys: set[str]) -> bool:
    if not isinstance(security, list):
        return False
    requirements = [requirement for requirement in security if isinstance(requirement, Mapping)]
    # Any one requirement satisfies OpenAPI security; an API key is needed when every one names it.
    return bool(requirements) and all(set(requirement) & keys for requirement in requirements)


def _deduplicate(api: Api, warnings: list[str]) -> list[Route]:
    """One route per (method, path): an OpenAPI definition and the functions' events often name the same."""
    seen: dict[tuple[str, str], Route] = {}
    for route in api.routes:
        key = (route.method, route.resource_path)
        previous = seen.get(key)
        if previous is None:
            seen[key] = route
        elif previous.function_id != route.function_id:
            warnings.append(
                f"{api.logical_id}: {route.method} {route.resource_path} goes to {previous.function_id}, "
                f"not {route.function_id}"
            )
        else:
            # The OpenAPI route and the event name the same operation: keep what each knows.
            seen[key] = Route(
                method=previous.method,
                resource_path=previous.resource_path,
                function_id=previous.function_id,
                api_id=previous.api_id,
                operation_name=previous.operation_name or route.operation_name,
                timeout_ms=previous.timeout_ms if previous.timeout_ms is not None else route.timeout_ms,
                api_key_required=previous.api_key_required or route.api_key_required,
                auth=previous.auth or route.auth,
                security=previous.security if previous.security is not None else route.security,
                integration=previous.integration or route.integration,
            )
    return list(seen.values())


def read_stack(
    template_path: Path,
    parameter_overrides: Mapping[str, str] | None = None,
    physical: Mapping[str, PhysicalResource] | None = None,
) -> Stack:
    """The functions and APIs of a template; raises TemplateError with a readable message. `physical`: what
    the resources created locally (buckets, queues, tables) resolve to."""
    return TemplateReader(template_path, parameter_overrides, physical).read()


if __name__ == "__main__":  # pragma: no cover - a quick look at what a template serves
    stack = read_stack(Path(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
    for route in stack.routes:
        print(route.method, route.resource_path, "->", route.function_id)
    for warning in stack.warnings:
        print("warning:", warning)


def _reserved_concurrency(logical_id: str, properties: Mapping[str, Any]) -> int | None:
    value = properties.get("ReservedConcurrentExecutions")
    if value is None:
        return None
    return int(_number(value, f"{logical_id}.ReservedConcurrentExecutions"))
