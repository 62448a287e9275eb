"""template.yaml, samconfig.toml and swagger.yaml describe one stack: the same routes, the settings the function
reads, parameters that exist, and what CloudFormation makes of them once AWS::Include and the SAM transform
have run (the SAM translator of SAM CLI's environment, offline)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from budget import load_template
from lambda_vision.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTION = RESOURCES["InferenceFunction"]["Properties"]
SWAGGER = load_template(ROOT / "swagger.yaml")
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
ROUTES = {("POST", "/predict"), ("POST", "/object_detection"), ("GET", "/models"), ("GET", "/models/{name}"),
          ("GET", "/health"), ("POST", "/jobs"), ("GET", "/jobs/{job_id}"), ("DELETE", "/jobs/{job_id}"),
          ("POST", "/embed"), ("GET", "/")}  # fmt: skip


def swagger_operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SWAGGER["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_the_routes_are_swagger_s_and_no_function_event_names_an_api() -> None:
    routes = {(method, path) for method, path, _ in swagger_operations() if method != "OPTIONS"}
    assert routes == ROUTES
    # An Api event's permission would name the REST API even when ApiType=HTTP leaves it out: the routes live in
    # the API definitions, and each API's permission is conditioned on it (test_http_api_template.py).
    events = FUNCTION.get("Events") or {}
    assert not [name for name, event in events.items() if event["Type"] in {"Api", "HttpApi"}]


def test_every_route_is_a_lambda_proxy_integration_of_the_function_alias() -> None:
    alias = FUNCTION["AutoPublishAlias"]
    for method, path, operation in swagger_operations():
        if method == "OPTIONS":
            continue
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", (method, path)
        assert integration["httpMethod"] == "POST"
        assert integration["uri"]["Fn::Sub"].endswith(f"/functions/${{InferenceFunction.Arn}}:{alias}/invocations")
        assert integration["timeoutInMillis"] <= 29_000


def test_cors_preflight_is_answered_by_api_gateway_without_invoking_the_function() -> None:
    for path, item in SWAGGER["paths"].items():
        integration = item["options"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "mock", path
        assert integration["responses"]["default"]["statusCode"] == "204"
        assert "security" not in item["options"]  # a browser's preflight carries no credentials
    # No permission lets API Gateway invoke the function for OPTIONS: one per API type, each for its whole API.
    permissions = {name for name, resource in RESOURCES.items() if resource["Type"] == "AWS::Lambda::Permission"}
    assert permissions == {"RestApiInvokePermission", "HttpApiInvokePermission"}


def test_binary_media_types_agree_between_template_and_swagger() -> None:
    template_types = [kind.replace("~1", "/") for kind in RESOURCES["InferenceApi"]["Properties"]["BinaryMediaTypes"]]
    assert template_types == SWAGGER["x-amazon-apigateway-binary-media-types"]
    assert {"multipart/form-data", "image/*", "application/octet-stream"} <= set(template_types)


def test_the_api_is_the_included_swagger() -> None:
    body = RESOURCES["InferenceApi"]["Properties"]["DefinitionBody"]
    assert body == {"Fn::Transform": {"Name": "AWS::Include", "Parameters": {"Location": "swagger.yaml"}}}


def test_the_function_has_every_setting_the_library_reads() -> None:
    read: set[str] = set()

    class Recording(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> str:
            read.add(key)
            return super().__getitem__(key)

    Settings.from_env(Recording())
    variables = FUNCTION["Environment"]["Variables"]
    assert read <= set(variables), sorted(read - set(variables))
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(variables)
    # The template's literal values must be ones the library accepts.
    literal = {name: value for name, value in variables.items() if isinstance(value, str)}
    Settings.from_env(literal)


def test_the_function_fits_api_gateway_and_lambda_limits() -> None:
    assert FUNCTION["Runtime"] == "python3.13"
    assert FUNCTION["Timeout"] < 29  # API Gateway's integration timeout
    assert FUNCTION["Architectures"] == [{"Ref": "Architecture"}]
    assert TEMPLATE["Parameters"]["Architecture"]["Default"] == "arm64"
    assert len(FUNCTION["Layers"]) <= 5


def test_samconfig_environments_set_parameters_the_template_has() -> None:
    parameters = TEMPLATE["Parameters"]
    for env in ("default", "prod"):
        assert SAMCONFIG[env]["global"]["parameters"]["stack_name"]
        deploy = SAMCONFIG[env]["deploy"]["parameters"]
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        for override in deploy["parameter_overrides"]:
            name, _, value = override.partition("=")
            assert name in parameters, f"[{env}] sets unknown parameter {name}"
            if "AllowedValues" in parameters[name]:
                assert value in [str(allowed) for allowed in parameters[name]["AllowedValues"]], override
    assert (
        SAMCONFIG["default"]["global"]["parameters"]["stack_name"]
        != SAMCONFIG["prod"]["global"]["parameters"]["stack_name"]
    )
