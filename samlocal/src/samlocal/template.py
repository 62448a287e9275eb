"""What a template serves: functions, their layers, and the API Gateway APIs routing to them.

- SAM: `AWS::Serverless::Function` (CodeUri a directory or a .zip, or InlineCode), `LayerVersion`, `Api` and
  `HttpApi` with the template's `Globals`; routes from each API's OpenAPI definition (`DefinitionBody`, inline
  or through `AWS::Include`, or `DefinitionUri`) and from the functions' `Api` events (without `RestApiId`: the
  implicit `ServerlessRestApi`, stage `Prod`) and `HttpApi` events (without `ApiId`: the implicit
  `ServerlessHttpApi`, stage `$default`; without Path and Method: the `$default` route).
- CloudFormation as CDK synthesizes it: `AWS::Lambda::Function` (Code.ZipFile, or the `aws:asset:path`
  metadata naming the asset directory or zip), `AWS::Lambda::LayerVersion`, `AWS::ApiGateway::RestApi`/
  `Resource`/`Method` (+ `Stage` or `Deployment` for the stage) and `AWS::ApiGatewayV2::Api`/`Route`/
  `Integration` (+ `Stage`), with Lambda proxy integrations naming a function of the template.
- Nested stacks (`AWS::Serverless::Application`, `AWS::CloudFormation::Stack`) with a local template: their
  functions and APIs are served too, named `Parent/Child`, with the parameters the parent passes.
- Lambda Function URLs: a function's `FunctionUrlConfig` and `AWS::Lambda::Url` resources (TargetFunctionArn
  by `!GetAtt`, `!Ref` or ARN), each served on a port of its own (samlocal.function_urls).
- `Fn::ForEach` loops (`Transform: AWS::LanguageExtensions`) are expanded first.
Everything else is listed in `Stack.not_served` with what happens instead (samlocal.not_served).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samlocal.artifacts import ARTIFACTS
from samlocal.intrinsics import ACCOUNT_ID, REGION, PhysicalResource, Resolver, TemplateError, load_document
from samlocal.language_extensions import expand_for_each, uses_language_extensions
from samlocal.not_served import API_PROPERTY_NOTES, SERVED_TYPES, NotServed

IMPLICIT_API = "ServerlessRestApi"
IMPLICIT_STAGE = "Prod"
IMPLICIT_HTTP_API = "ServerlessHttpApi"
HTTP_DEFAULT_STAGE = "$default"
DEFAULT_ROUTE = "$default"  # an HTTP API's catch-all route
REST, HTTP = "REST", "HTTP"
PAYLOAD_V1, PAYLOAD_V2 = "1.0", "2.0"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
ASSET_PATH = "aws:asset:path"  # CDK's metadata: where in cdk.out the asset's directory (or zip) is
MAX_NESTING = 8
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
    kind: str = REST  # REST (Serverless::Api, ApiGateway::RestApi) or HTTP (Serverless::HttpApi, ApiGatewayV2::Api)
    # The resource's resolved Properties (Globals merged) and its OpenAPI definition: Auth, Cors,
    # GatewayResponses and security schemes are read from them.
    properties: Mapping[str, Any] = field(default_factory=dict)
    definition: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class FunctionUrl:
    """A Lambda Function URL: every method and path of its own host goes to one function."""

    logical_id: str  # the function's id for a FunctionUrlConfig, else the AWS::Lambda::Url resource's
    function_id: str
    auth_type: str = "NONE"  # NONE or AWS_IAM
    # The resolved `Cors` (AllowOrigins, AllowMethods, AllowHeaders, ExposeHeaders, MaxAge, AllowCredentials).
    cors: Mapping[str, Any] | None = None
    invoke_mode: str = "BUFFERED"  # or RESPONSE_STREAM
    qualifier: str | None = None  # an alias or version: the function's current code is served


@dataclass
class Stack:
    template_path: Path
    functions: dict[str, Function]
    apis: dict[str, Api]
    warnings: list[str] = field(default_factory=list)
    # What the template asks for that is not served, each with what happens instead.
    not_served: list[str] = field(default_factory=list)
    # Every file the stack was read from (templates, nested templates, zips, OpenAPI files): a change re-reads it.
    sources: list[Path] = field(default_factory=list)
    function_urls: dict[str, FunctionUrl] = field(default_factory=dict)

    @property
    def routes(self) -> list[Route]:
        return [route for api in self.apis.values() for route in api.routes]


# Finds a function's code directory from its logical id and resolved properties (None: not served).
CodeLocator = Callable[[str, Mapping[str, Any]], Path | None]


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
    """Turns one template (and the nested stacks it names) into a `Stack`."""

    def __init__(
        self,
        template_path: Path,
        parameter_overrides: Mapping[str, str] | None = None,
        physical: Mapping[str, PhysicalResource] | None = None,
        *,
        prefix: str = "",
        depth: int = 0,
    ) -> None:
        self.template_path = template_path.resolve()
        self.base_dir = self.template_path.parent
        self.prefix = prefix  # a nested stack's resources are named Parent/Child
        self.depth = depth
        document = load_document(self.template_path)
        if (
            not isinstance(document, Mapping)
            or not document.get("Resources")
            or not isinstance(document["Resources"], Mapping)
        ):
            raise TemplateError(f"{template_path} has no Resources")
        if uses_language_extensions(document):
            loops = Resolver(document, self.base_dir, parameter_overrides)
            document = expand_for_each(document, loops.resolve)
        self.document: Mapping[str, Any] = document
        self.resolver = Resolver(document, self.base_dir, parameter_overrides, self._attribute, physical)
        self.resources: Mapping[str, Any] = document["Resources"]
        self.globals: Mapping[str, Any] = document.get("Globals") or {}
        self.warnings: list[str] = self.resolver.warnings
        self.not_served = NotServed()
        self.sources: list[Path] = [self.template_path]
        self.placeholders: set[str] = set()
        # Template logical id -> the Function it became (ids carry the nested stack's prefix).
        self.function_ids: dict[str, str] = {}

    def _id(self, logical_id: str) -> str:
        return f"{self.prefix}{logical_id}"

    def _attribute(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id) or {}
        resource_type = resource.get("Type") if isinstance(resource, Mapping) else None
        if resource_type in FUNCTION_TYPES and attribute == "Arn":
            return function_arn(logical_id)
        if resource_type not in SERVED_TYPES:
            self.placeholders.add(f"{logical_id}.{attribute}")
        return f"{logical_id}.{attribute}"

    def _of_type(self, *resource_types: str) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for logical_id, resource in self.resources.items():
            if not isinstance(resource, Mapping) or resource.get("Type") not in resource_types:
                continue
            condition = resource.get("Condition")
            if condition is not None and not self.resolver.condition(str(condition)):
                continue
            found[logical_id] = resource
        return found

    def _properties_of_type(self, *resource_types: str) -> dict[str, Any]:
        """The resolved Properties of each resource of these types, by logical id (see `_of_type`)."""
        return {
            logical_id: self.resolver.resolve(resource.get("Properties") or {})
            for logical_id, resource in self._of_type(*resource_types).items()
        }

    def read(self) -> Stack:
        layers = {logical_id: self._layer(logical_id, resource) for logical_id, resource in self._layers().items()}
        functions: dict[str, Function] = {}
        function_events: dict[str, Mapping[str, Any]] = {}
        # The FunctionUrlConfig (and AutoPublishAlias, its qualifier) of each function that has one.
        function_configs: dict[str, tuple[Any, Any]] = {}
        for logical_id, resource in self._of_type(*FUNCTION_TYPES).items():
            properties: Mapping[str, Any] = resource.get("Properties") or {}
            if resource.get("Type") == "AWS::Serverless::Function":
                properties = _merge_globals(self.globals.get("Function") or {}, properties)
                function = self._function(logical_id, properties, layers, self._sam_code)
            else:
                function = self._function(logical_id, properties, layers, self._cloudformation_code(resource))
            if function is not None:
                self.not_served.function_properties(logical_id, properties)
                functions[function.logical_id] = function
                self.function_ids[logical_id] = function.logical_id
                function_events[logical_id] = properties.get("Events") or {}
                if properties.get("FunctionUrlConfig") is not None:
                    function_configs[logical_id] = (properties["FunctionUrlConfig"], properties.get("AutoPublishAlias"))
        apis = self._sam_rest_apis(functions)
        apis.update(self._sam_http_apis(functions))
        apis.update(self._cloudformation_rest_apis(functions))
        apis.update(self._cloudformation_http_apis(functions))
        self._add_event_routes(apis, function_events)
        for api in apis.values():
            api.routes = _deduplicate(api, self.warnings)
        stack = Stack(self.template_path, functions, {k: v for k, v in apis.items() if v.routes}, self.warnings)
        stack.function_urls = self._function_urls(functions, function_configs)
        self._read_nested_stacks(stack)
        self._list_unserved_resources()
        for text in sorted(self.resolver.unresolved):
            self.not_served.add(text, "no local value: its JSON text is used instead")
        for text in sorted(self.placeholders):
            self.not_served.add(f"Fn::GetAtt {text}", f"no local value: the placeholder text {text!r} is used")
        stack.not_served = self.not_served.lines() + stack.not_served
        stack.sources = list(dict.fromkeys(self.sources + self.resolver.included + stack.sources))
        return stack

    def _list_unserved_resources(self) -> None:
        for logical_id, resource in self.resources.items():
            if not isinstance(resource, Mapping):
                continue
            condition = resource.get("Condition")
            if condition is not None and not self.resolver.condition(str(condition)):
                continue  # not created with these parameters: nothing to say about it
            resource_type = str(resource.get("Type", ""))
            if resource_type not in SERVED_TYPES:
                self.not_served.resource(logical_id, resource_type)

    # Layers and functions ------------------------------------------------------------------------

    def _layers(self) -> dict[str, Mapping[str, Any]]:
        return self._of_type("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")

    def _layer(self, logical_id: str, resource: Mapping[str, Any]) -> Layer | None:
        properties = self.resolver.resolve(resource.get("Properties") or {})
        asset = (resource.get("Metadata") or {}).get(ASSET_PATH)
        content_uri = properties.get("ContentUri") if asset is None else asset
        if not isinstance(content_uri, str) or content_uri.startswith("s3://"):
            self.not_served.add(logical_id, "not served: its content is not local (a ContentUri or CDK asset path)")
            return None
        content_dir = self._code_location(logical_id, "ContentUri", content_uri)
        return Layer(self._id(logical_id), content_dir, (content_dir / "requirements.txt").is_file())

    def _code_location(self, logical_id: str, what: str, location: str) -> Path:
        """A local directory, or the directory a local zip is extracted to (the zip is watched for changes)."""
        path = (self.base_dir / location).resolve()
        if path.is_dir():
            return path
        if path.is_file() and zipfile.is_zipfile(path):
            self.sources.append(path)
            return ARTIFACTS.extract(path, logical_id)
        raise TemplateError(f"{logical_id}: {what} {location} is not a directory or a .zip file")

    def _sam_code(self, logical_id: str, properties: Mapping[str, Any]) -> Path | None:
        inline = properties.get("InlineCode")
        if isinstance(inline, str):
            return ARTIFACTS.inline(inline, str(properties.get("Handler", "index.handler")), logical_id)
        code_uri = properties.get("CodeUri", ".")
        if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
            self.not_served.add(logical_id, f"not served: CodeUri {code_uri!r} is not local (a directory or a .zip)")
            return None
        return self._code_location(logical_id, "CodeUri", code_uri)

    def _cloudformation_code(self, resource: Mapping[str, Any]) -> CodeLocator:
        asset = (resource.get("Metadata") or {}).get(ASSET_PATH)

        def locate(logical_id: str, properties: Mapping[str, Any]) -> Path | None:
            code = properties.get("Code") or {}
            if isinstance(code, Mapping) and isinstance(code.get("ZipFile"), str):
                return ARTIFACTS.inline(code["ZipFile"], str(properties.get("Handler", "index.handler")), logical_id)
            if isinstance(asset, str):
                return self._code_location(logical_id, f"{ASSET_PATH} metadata", asset)
            self.not_served.add(
                logical_id, f"not served: its Code is in S3 without {ASSET_PATH} metadata naming a local directory"
            )
            return None

        return locate

    def _function(
        self, logical_id: str, raw: Mapping[str, Any], layers: Mapping[str, Layer | None], locate: CodeLocator
    ) -> Function | None:
        raw_layers = raw.get("Layers") or []
        properties = self.resolver.resolve({key: value for key, value in raw.items() if key != "Events"})
        if properties.get("PackageType") == "Image":
            self.not_served.add(logical_id, "not served: image functions (PackageType: Image) need Docker")
            return None
        runtime = str(properties.get("Runtime", ""))
        if not runtime.startswith("python"):
            self.not_served.add(logical_id, f"not served: runtime {runtime or '(none)'}; only python runtimes are")
            return None
        handler = properties.get("Handler")
        if not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"{logical_id}: Handler must look like module.function, got {handler!r}")
        code_dir = locate(logical_id, properties)
        if code_dir is None:
            return None
        function_layers: list[Layer] = []
        for entry in raw_layers if isinstance(raw_layers, list) else []:
            layer_id = entry.get("Ref") if isinstance(entry, Mapping) else None
            layer = layers.get(layer_id) if isinstance(layer_id, str) else None
            if layer is not None:
                function_layers.append(layer)
            else:
                self.warnings.append(f"{logical_id}: layer {self.resolver.resolve(entry)!r} is not local, skipped")
        environment = (properties.get("Environment") or {}).get("Variables") or {}
        events = {
            str(event_id): self.resolver.resolve(event)
            for event_id, event in (raw.get("Events") or {}).items()
            if isinstance(event, Mapping) and event.get("Type") not in {"Api", "HttpApi"}
        }
        architectures = properties.get("Architectures") or ["x86_64"]
        return Function(
            logical_id=self._id(logical_id),
            name=str(properties.get("FunctionName") or self._id(logical_id)),
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

    # SAM APIs ------------------------------------------------------------------------------------

    def _sam_rest_apis(self, functions: Mapping[str, Function]) -> dict[str, Api]:
        apis: dict[str, Api] = {}
        global_api = self.globals.get("Api") or {}
        for logical_id, resource in self._of_type("AWS::Serverless::Api").items():
            properties = self.resolver.resolve(_merge_globals(global_api, resource.get("Properties") or {}))
            self.not_served.api_properties(logical_id, properties)
            api = self._api(logical_id, properties)
            definition = self._definition(logical_id, properties)
            api.definition = definition
            if definition is not None:
                api.binary_media_types += [
                    _media_type(str(item)) for item in definition.get("x-amazon-apigateway-binary-media-types") or []
                ]
                api.routes += self._definition_routes(api, definition, functions)
            api.binary_media_types = list(dict.fromkeys(api.binary_media_types))
            apis[api.logical_id] = api
        return apis

    def _sam_http_apis(self, functions: Mapping[str, Function]) -> dict[str, Api]:
        apis: dict[str, Api] = {}
        global_api = self.globals.get("HttpApi") or {}
        for logical_id, resource in self._of_type("AWS::Serverless::HttpApi").items():
            properties = self.resolver.resolve(_merge_globals(global_api, resource.get("Properties") or {}))
            self.not_served.api_properties(logical_id, properties)
            api = self._http_api(logical_id, properties)
            api.definition = self._definition(logical_id, properties)
            if api.definition is not None:
                api.routes += self._definition_routes(api, api.definition, functions)
            apis[api.logical_id] = api
        return apis

    def _api(self, logical_id: str, properties: Mapping[str, Any]) -> Api:
        stage = properties.get("StageName")
        if not isinstance(stage, str) or not stage:
            raise TemplateError(f"{logical_id}: StageName is required")
        variables = properties.get("Variables") or {}
        return Api(
            logical_id=self._id(logical_id),
            stage_name=stage,
            binary_media_types=[_media_type(str(item)) for item in properties.get("BinaryMediaTypes") or []],
            stage_variables={str(key): _as_text(value) for key, value in variables.items()},
            properties=properties,
        )

    def _http_api(self, logical_id: str, properties: Mapping[str, Any]) -> Api:
        stage = properties.get("StageName") or HTTP_DEFAULT_STAGE
        variables = properties.get("StageVariables") or {}
        return Api(
            logical_id=self._id(logical_id),
            stage_name=str(stage),
            stage_variables={str(key): _as_text(value) for key, value in variables.items()},
            kind=HTTP,
            properties=properties,
        )

    def _definition(self, logical_id: str, properties: Mapping[str, Any]) -> Mapping[str, Any] | None:
        body = properties.get("DefinitionBody", properties.get("Body"))
        if body is not None:
            if not isinstance(body, Mapping):
                raise TemplateError(f"{logical_id}: the API's definition must be an OpenAPI document")
            return body
        uri = properties.get("DefinitionUri")
        if uri is None:
            if properties.get("BodyS3Location") is not None:
                self.not_served.add(logical_id, "BodyS3Location: not read (in S3): only the API's own resources")
            return None
        if not isinstance(uri, str) or uri.startswith("s3://"):
            raise TemplateError(f"{logical_id}: only a local DefinitionUri can be served, got {uri!r}")
        self.sources.append((self.base_dir / uri).resolve())
        document = self.resolver.resolve(load_document(self.base_dir / uri))
        if not isinstance(document, Mapping):
            raise TemplateError(f"{logical_id}: {uri} is not an OpenAPI document")
        return document

    def _definition_routes(
        self, api: Api, definition: Mapping[str, Any], functions: Mapping[str, Function]
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
                where = f"{api.logical_id}: {http_method} {path}"
                integration = operation.get("x-amazon-apigateway-integration") or {}
                kind = str(integration.get("type", "")).lower()
                if not kind:
                    self.warnings.append(f"{where}: no x-amazon-apigateway-integration")
                    continue
                function_id = None
                if kind == "aws_proxy":
                    function_id = self._integration_function(str(integration.get("uri", "")), functions)
                if function_id is None and kind not in ("mock", "http_proxy"):
                    self.warnings.append(
                        f"{where}: the {kind.upper()} integration {integration.get('uri')!r} "
                        "names no local function: answers 500 Internal server error"
                    )
                timeout = integration.get("timeoutInMillis")
                security = operation.get("security", definition.get("security"))
                routes.append(
                    Route(
                        method=http_method,
                        resource_path=DEFAULT_ROUTE if str(path).strip("/") == DEFAULT_ROUTE else str(path),
                        function_id=function_id or "",
                        api_id=api.logical_id,
                        operation_name=operation.get("operationId"),
                        timeout_ms=int(timeout) if timeout is not None else None,
                        api_key_required=_needs_api_key(security, keys),
                        security=security,
                        integration=None if function_id else integration,
                        payload_format_version=str(
                            integration.get("payloadFormatVersion", PAYLOAD_V2 if api.kind == HTTP else PAYLOAD_V1)
                        ),
                    )
                )
        return routes

    def _integration_function(self, uri: str, functions: Mapping[str, Function]) -> str | None:
        match = _FUNCTION_ARN.search(uri)
        if match is None:
            return None
        name = match.group(1)
        if name in self.function_ids:
            return self.function_ids[name]
        for logical_id, function in functions.items():
            if name in (logical_id, function.name):
                return logical_id
        return None

    def _add_event_routes(self, apis: dict[str, Api], function_events: Mapping[str, Mapping[str, Any]]) -> None:
        for logical_id, events in function_events.items():
            function_id = self.function_ids[logical_id]
            for event_id, event in events.items() if isinstance(events, Mapping) else []:
                if not isinstance(event, Mapping):
                    continue
                where = f"{logical_id}.Events.{event_id}"
                event_type = str(event.get("Type", ""))
                if event_type == "Api":
                    self._add_rest_event_route(apis, function_id, where, event.get("Properties") or {})
                elif event_type == "HttpApi":
                    self._add_http_event_route(apis, function_id, where, event.get("Properties") or {})
                else:
                    self.not_served.event(where, event_type)

    def _event_api(self, apis: dict[str, Api], where: str, reference: Any, implicit: str) -> Api:
        api_id = reference.get("Ref") if isinstance(reference, Mapping) else reference
        api_id = self._id(str(api_id)) if api_id else self._id(implicit)
        if api_id not in apis:
            if api_id != self._id(implicit):
                raise TemplateError(f"{where}: {reference!r} is not an API of the template")
            apis[api_id] = self._implicit_rest_api() if implicit == IMPLICIT_API else self._implicit_http_api()
        return apis[api_id]

    def _add_rest_event_route(self, apis: dict[str, Api], function_id: str, where: str, raw: Mapping[str, Any]) -> None:
        api = self._event_api(apis, where, raw.get("RestApiId"), IMPLICIT_API)
        properties = self.resolver.resolve(raw)
        method = str(properties.get("Method", "")).upper()
        path = properties.get("Path")
        if not isinstance(path, str) or not method:
            raise TemplateError(f"{where}: an Api event needs Path and Method")
        auth = properties.get("Auth") or {}
        api.routes.append(
            Route(
                method=method,
                resource_path=path,
                function_id=function_id,
                api_id=api.logical_id,
                api_key_required=str(auth.get("ApiKeyRequired", "")).lower() == "true",
                auth=auth or None,
            )
        )

    def _add_http_event_route(self, apis: dict[str, Api], function_id: str, where: str, raw: Mapping[str, Any]) -> None:
        api = self._event_api(apis, where, raw.get("ApiId"), IMPLICIT_HTTP_API)
        properties = self.resolver.resolve(raw)
        path, method = properties.get("Path"), properties.get("Method")
        if path is None and method is None:  # SAM's $default route
            path, method = DEFAULT_ROUTE, ANY_METHOD
        if not isinstance(path, str) or not method:
            raise TemplateError(f"{where}: an HttpApi event needs both Path and Method, or neither ($default)")
        method = str(method).upper()
        method = ANY_METHOD if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" else method
        timeout = properties.get("TimeoutInMillis")
        auth = properties.get("Auth") or {}
        for name in ("RouteSettings",):
            if name in properties:
                self.not_served.add(name, API_PROPERTY_NOTES[name], where)
        api.routes.append(
            Route(
                method=method,
                resource_path=path,
                function_id=function_id,
                api_id=api.logical_id,
                timeout_ms=int(timeout) if timeout is not None else None,
                auth=auth or None,
                payload_format_version=str(properties.get("PayloadFormatVersion", PAYLOAD_V2)),
            )
        )

    def _implicit_rest_api(self) -> Api:
        properties = self.resolver.resolve(self.globals.get("Api") or {})
        self.not_served.api_properties(IMPLICIT_API, properties)
        return self._api(IMPLICIT_API, {**properties, "StageName": IMPLICIT_STAGE})

    def _implicit_http_api(self) -> Api:
        properties = self.resolver.resolve(self.globals.get("HttpApi") or {})
        self.not_served.api_properties(IMPLICIT_HTTP_API, properties)
        return self._http_api(IMPLICIT_HTTP_API, properties)

    # CloudFormation APIs (as CDK and other tools synthesize them) -------------------------------

    def _cloudformation_rest_apis(self, functions: Mapping[str, Function]) -> dict[str, Api]:
        rest_apis = self._properties_of_type("AWS::ApiGateway::RestApi")
        if not rest_apis:
            return {}
        stages = self._stages("AWS::ApiGateway::Stage", "AWS::ApiGateway::Deployment", "RestApiId")
        resources = self._properties_of_type("AWS::ApiGateway::Resource")
        apis: dict[str, Api] = {}
        for logical_id, properties in rest_apis.items():
            self.not_served.api_properties(logical_id, properties)
            stage_name, variables = stages.get(logical_id, (None, {}))
            if stage_name is None:
                self.warnings.append(f"{logical_id}: no Stage or Deployment names a stage; served as stage 'prod'")
            api = self._api(logical_id, {**properties, "StageName": stage_name or "prod", "Variables": variables})
            api.definition = self._definition(logical_id, properties)
            if api.definition is not None:
                api.binary_media_types += [
                    _media_type(str(item))
                    for item in api.definition.get("x-amazon-apigateway-binary-media-types") or []
                ]
                api.routes += self._definition_routes(api, api.definition, functions)
            api.binary_media_types = list(dict.fromkeys(api.binary_media_types))
            apis[logical_id] = api
        for method_id, properties in self._properties_of_type("AWS::ApiGateway::Method").items():
            api_id = str(properties.get("RestApiId", ""))
            if api_id not in apis:
                self.warnings.append(f"{method_id}: RestApiId {api_id!r} is not a RestApi of the template")
                continue
            path = _resource_path(str(properties.get("ResourceId", "")), resources, method_id)
            http_method = str(properties.get("HttpMethod", "")).upper()
            where = f"{method_id} ({http_method} {path})"
            integration = properties.get("Integration") or {}
            if str(integration.get("Type", "")).upper() != "AWS_PROXY":
                kind = integration.get("Type", "none")
                self.not_served.add(where, f"not served: integration {kind}; only Lambda proxy (AWS_PROXY) is")
                continue
            function_id = self._integration_function(str(integration.get("Uri", "")), functions)
            if function_id is None:
                self.warnings.append(f"{where}: integration {integration.get('Uri')!r} names no local function")
                continue
            authorization = str(properties.get("AuthorizationType", "NONE")).upper()
            auth = (
                {"AuthorizationType": authorization, "AuthorizerId": properties.get("AuthorizerId")}
                if authorization != "NONE"
                else None
            )
            timeout = integration.get("TimeoutInMillis")
            apis[api_id].routes.append(
                Route(
                    method=http_method,
                    resource_path=path,
                    function_id=function_id,
                    api_id=apis[api_id].logical_id,
                    operation_name=properties.get("OperationName"),
                    timeout_ms=int(timeout) if timeout is not None else None,
                    api_key_required=str(properties.get("ApiKeyRequired", "")).lower() == "true",
                    auth=auth,
                )
            )
        return {api.logical_id: api for api in apis.values()}

    def _stages(self, stage_type: str, deployment_type: str, api_key: str) -> dict[str, tuple[str, dict[str, str]]]:
        """Per API logical id: the stage name and variables (a Stage resource, else a Deployment's StageName)."""
        found: dict[str, tuple[str, dict[str, str]]] = {}
        for properties in self._properties_of_type(deployment_type).values():
            if isinstance(properties.get("StageName"), str):
                found[str(properties.get(api_key))] = (properties["StageName"], {})
        for properties in self._properties_of_type(stage_type).values():
            variables = properties.get("Variables") or properties.get("StageVariables") or {}
            if isinstance(properties.get("StageName"), str):
                found[str(properties.get(api_key))] = (
                    properties["StageName"],
                    {str(key): _as_text(value) for key, value in variables.items()},
                )
        return found

    def _cloudformation_http_apis(self, functions: Mapping[str, Function]) -> dict[str, Api]:
        http_apis = self._properties_of_type("AWS::ApiGatewayV2::Api")
        if not http_apis:
            return {}
        stages = self._stages("AWS::ApiGatewayV2::Stage", "AWS::ApiGatewayV2::Deployment", "ApiId")
        integrations = self._properties_of_type("AWS::ApiGatewayV2::Integration")
        apis: dict[str, Api] = {}
        for logical_id, properties in http_apis.items():
            protocol = str(properties.get("ProtocolType", "HTTP")).upper()
            if protocol != "HTTP":
                self.not_served.add(logical_id, f"not served: ProtocolType {protocol}; only HTTP APIs are")
                continue
            self.not_served.api_properties(logical_id, properties)
            stage_name, variables = stages.get(logical_id, (HTTP_DEFAULT_STAGE, {}))
            api = self._http_api(logical_id, {**properties, "StageName": stage_name, "StageVariables": variables})
            api.definition = self._definition(logical_id, properties)
            if api.definition is not None:
                api.routes += self._definition_routes(api, api.definition, functions)
            target = properties.get("Target")
            if isinstance(target, str):  # quick create: a $default route to the target
                function_id = self._integration_function(target, functions)
                if function_id is not None:
                    key = str(properties.get("RouteKey", DEFAULT_ROUTE))
                    method, path = _split_route_key(key)
                    api.routes.append(Route(method, path, function_id, api.logical_id, payload_format_version="2.0"))
            apis[logical_id] = api
        for route_id, properties in self._properties_of_type("AWS::ApiGatewayV2::Route").items():
            api_id = str(properties.get("ApiId", ""))
            key = str(properties.get("RouteKey", ""))
            where = f"{route_id} ({key})"
            if api_id not in apis:
                self.warnings.append(f"{where}: ApiId {api_id!r} is not an HTTP Api of the template")
                continue
            target = str(properties.get("Target", ""))
            integration = integrations.get(target.split("/", 1)[1] if target.startswith("integrations/") else "")
            if integration is None:
                self.not_served.add(where, f"not served: its Target {target!r} is not an Integration of the template")
                continue
            if str(integration.get("IntegrationType", "")).upper() != "AWS_PROXY":
                kind = integration.get("IntegrationType")
                self.not_served.add(where, f"not served: integration {kind}; only Lambda proxy (AWS_PROXY) is")
                continue
            function_id = self._integration_function(str(integration.get("IntegrationUri", "")), functions)
            if function_id is None:
                self.warnings.append(f"{where}: {integration.get('IntegrationUri')!r} names no local function")
                continue
            method, path = _split_route_key(key)
            authorization = str(properties.get("AuthorizationType", "NONE")).upper()
            timeout = integration.get("TimeoutInMillis")
            apis[api_id].routes.append(
                Route(
                    method=method,
                    resource_path=path,
                    function_id=function_id,
                    api_id=apis[api_id].logical_id,
                    operation_name=properties.get("OperationName"),
                    timeout_ms=int(timeout) if timeout is not None else None,
                    auth={"AuthorizationType": authorization, "AuthorizerId": properties.get("AuthorizerId")}
                    if authorization != "NONE"
                    else None,
                    payload_format_version=str(integration.get("PayloadFormatVersion", PAYLOAD_V2)),
                )
            )
        return {api.logical_id: api for api in apis.values()}

    # Function URLs -------------------------------------------------------------------------------

    def _function_urls(
        self, functions: Mapping[str, Function], configs: Mapping[str, tuple[Any, Any]]
    ) -> dict[str, FunctionUrl]:
        """Each function's FunctionUrlConfig, then the AWS::Lambda::Url resources naming a function served."""
        urls: dict[str, FunctionUrl] = {}
        for logical_id, (raw, raw_alias) in configs.items():
            function_id = self.function_ids[logical_id]
            config = self.resolver.resolve(raw)
            if not isinstance(config, Mapping):
                raise TemplateError(f"{logical_id}.FunctionUrlConfig must be a mapping, got {config!r}")
            alias = self.resolver.resolve(raw_alias)
            url = self._function_url(function_id, function_id, config, f"{logical_id}.FunctionUrlConfig", alias)
            urls[url.logical_id] = url
        for logical_id, properties in self._properties_of_type("AWS::Lambda::Url").items():
            target = str(properties.get("TargetFunctionArn", ""))
            target_id = self._url_target(target, functions)
            if target_id is None:
                self.not_served.add(
                    logical_id, f"not served: its TargetFunctionArn {target!r} names no function served locally"
                )
                continue
            url = self._function_url(self._id(logical_id), target_id, properties, logical_id, None)
            urls[url.logical_id] = url
        return urls

    def _url_target(self, target: str, functions: Mapping[str, Function]) -> str | None:
        """The function a TargetFunctionArn names: an ARN (`!GetAtt F.Arn`), a name or a logical id (`!Ref F`)."""
        if ":function:" in target:
            return self._integration_function(target, functions)
        if target in self.function_ids:
            return self.function_ids[target]
        return next((logical_id for logical_id, function in functions.items() if function.name == target), None)

    def _function_url(
        self, logical_id: str, function_id: str, config: Mapping[str, Any], where: str, alias: Any
    ) -> FunctionUrl:
        auth_type = str(config.get("AuthType", "")).upper()
        if auth_type not in ("NONE", "AWS_IAM"):
            raise TemplateError(f"{where}: AuthType must be NONE or AWS_IAM, got {config.get('AuthType')!r}")
        invoke_mode = str(config.get("InvokeMode", "BUFFERED")).upper()
        if invoke_mode not in ("BUFFERED", "RESPONSE_STREAM"):
            raise TemplateError(f"{where}: InvokeMode must be BUFFERED or RESPONSE_STREAM, got {invoke_mode!r}")
        if invoke_mode == "RESPONSE_STREAM":
            self.not_served.add(
                f"{where}: InvokeMode RESPONSE_STREAM",
                "served buffered: the response is sent whole once the function returns",
            )
        qualifier = config.get("Qualifier")
        qualifier = str(qualifier) if qualifier is not None else (str(alias) if alias else None)
        if qualifier is not None:
            self.not_served.add(
                f"{where}: Qualifier {qualifier}", "the function's current code is served (no versions or aliases)"
            )
        cors = config.get("Cors")
        if cors is not None and not isinstance(cors, Mapping):
            raise TemplateError(f"{where}: Cors must be a mapping, got {cors!r}")
        return FunctionUrl(logical_id, function_id, auth_type, cors, invoke_mode, qualifier)

    # Nested stacks -------------------------------------------------------------------------------

    def _read_nested_stacks(self, stack: Stack) -> None:
        for logical_id, resource in self._of_type("AWS::Serverless::Application", "AWS::CloudFormation::Stack").items():
            properties = self.resolver.resolve(resource.get("Properties") or {})
            is_application = resource.get("Type") == "AWS::Serverless::Application"
            location = properties.get("Location" if is_application else "TemplateURL")
            asset = (resource.get("Metadata") or {}).get(ASSET_PATH)
            if isinstance(asset, str):  # a CDK nested stack: its template is an asset beside this one
                location = asset
            if not isinstance(location, str) or "://" in location:
                shown = location if isinstance(location, str) else json.dumps(location, default=str)
                self.not_served.add(logical_id, f"not served: the nested stack's template {shown} is not a local file")
                continue
            if self.depth >= MAX_NESTING:
                raise TemplateError(f"{logical_id}: nested stacks deeper than {MAX_NESTING} levels (a cycle?)")
            parameters = {
                str(name): ",".join(str(item) for item in value) if isinstance(value, list) else _as_text(value)
                for name, value in (properties.get("Parameters") or {}).items()
            }
            child = TemplateReader(
                self.base_dir / location, parameters, prefix=f"{self._id(logical_id)}/", depth=self.depth + 1
            ).read()
            overlap = (set(child.functions) & set(stack.functions)) | (set(child.apis) & set(stack.apis))
            if overlap:
                raise TemplateError(f"{logical_id}: nested stack names clash: {', '.join(sorted(overlap))}")
            stack.functions.update(child.functions)
            stack.apis.update(child.apis)
            stack.function_urls.update(child.function_urls)
            stack.warnings += child.warnings
            stack.not_served += child.not_served
            stack.sources += child.sources


def _split_route_key(key: str) -> tuple[str, str]:
    """`GET /items/{id}` -> (GET, /items/{id}); `$default` -> (ANY, $default)."""
    if key.strip() == DEFAULT_ROUTE:
        return ANY_METHOD, DEFAULT_ROUTE
    method, _, path = key.strip().partition(" ")
    if not path:
        raise TemplateError(f"route key {key!r} must be `METHOD /path` or `$default`")
    return method.upper(), path.strip()


def _resource_path(resource_id: str, resources: Mapping[str, Mapping[str, Any]], where: str) -> str:
    """The path of an AWS::ApiGateway::Resource, from its PathPart and its parents' (the root is `/`)."""
    parts: list[str] = []
    seen: set[str] = set()
    while not resource_id.endswith(".RootResourceId"):
        resource = resources.get(resource_id)
        if resource is None or resource_id in seen:
            raise TemplateError(f"{where}: ResourceId {resource_id!r} is not an AWS::ApiGateway::Resource")
        seen.add(resource_id)
        parts.append(str(resource.get("PathPart", "")))
        resource_id = str(resource.get("ParentId", ""))
    return "/" + "/".join(reversed(parts))


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
            seen[key] = dataclasses.replace(
                previous,
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


def _reserved_concurrency(logical_id: str, properties: Mapping[str, Any]) -> int | None:
    value = properties.get("ReservedConcurrentExecutions")
    if value is None:
        return None
    return int(_number(value, f"{logical_id}.ReservedConcurrentExecutions"))


if __name__ == "__main__":  # pragma: no cover - a quick look at what a template serves
    stack = read_stack(Path(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
    for route in stack.routes:
        print(route.method, route.resource_path, "->", route.function_id)
    for warning in stack.warnings:
        print("warning:", warning)
    for item in stack.not_served:
        print("not served:", item)
