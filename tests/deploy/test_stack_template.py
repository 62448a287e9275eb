"""template.yaml, samconfig.toml and swagger.yaml describe one stack: the same routes, the settings the function
reads, parameters that exist, and what CloudFormation makes of them once AWS::Include and the SAM transform
have run (the SAM translator of SAM CLI's environment, offline)."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from budget import load_template
from lambda_vision.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTION = RESOURCES["InferenceFunction"]["Properties"]
SWAGGER = load_template(ROOT / "swagger.yaml")
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
ROUTES = {("POST", "/predict"), ("POST", "/object_detection"), ("GET", "/models"), ("GET", "/models/{name}"),
          ("GET", "/health")}  # fmt: skip


def swagger_operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SWAGGER["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_the_function_events_are_the_routes_of_swagger() -> None:
    events = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"]) for event in FUNCTION["Events"].values()
    }
    routes = {(method, path) for method, path, _ in swagger_operations() if method != "OPTIONS"}
    assert events == routes == ROUTES


def test_every_operation_is_a_lambda_proxy_integration_of_the_function() -> None:
    for method, path, operation in swagger_operations():
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", (method, path)
        assert integration["httpMethod"] == "POST"
        assert "${InferenceFunction.Arn}" in integration["uri"]["Fn::Sub"]
        assert integration["timeoutInMillis"] <= 29_000


def test_every_path_answers_cors_preflight_and_api_gateway_may_call_the_function_for_it() -> None:
    assert all("options" in item for item in SWAGGER["paths"].values())
    permission = RESOURCES["PreflightPermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "InferenceFunction"}
    assert permission["SourceArn"]["Fn::Sub"].endswith("${InferenceApi}/*/OPTIONS/*")


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


# What CloudFormation deploys: AWS::Include resolved, then the SAM transform (samtranslator, in .venv-sam).


def transformed(**parameters: str) -> dict[str, Any]:
    subprocess.run(["make", "-s", "--no-print-directory", "sam-cli"], cwd=ROOT, check=True)
    result = subprocess.run(
        [str(ROOT / ".venv-sam/bin/python"), str(ROOT / "tests/deploy/sam_transform.py"), str(ROOT / "template.yaml")]
        + [f"{name}={value}" for name, value in parameters.items()],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    translated: dict[str, Any] = json.loads(result.stdout)
    return translated


@pytest.fixture(scope="module")
def cloudformation() -> dict[str, Any]:
    resources: dict[str, Any] = transformed()["Resources"]
    return resources


def of_type(resources: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [resource for resource in resources.values() if resource["Type"] == kind]


@pytest.mark.slow
def test_the_rest_api_body_is_swagger_with_its_binary_media_types(cloudformation: dict[str, Any]) -> None:
    (api,) = of_type(cloudformation, "AWS::ApiGateway::RestApi")
    body = api["Properties"]["Body"]
    assert body["openapi"] == "3.0.1"
    assert set(body["paths"]) == {path for _, path in ROUTES}
    assert body["x-amazon-apigateway-binary-media-types"] == SWAGGER["x-amazon-apigateway-binary-media-types"]
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}


@pytest.mark.slow
def test_api_gateway_may_invoke_the_function_on_every_route(cloudformation: dict[str, Any]) -> None:
    source_arns = []
    for permission in of_type(cloudformation, "AWS::Lambda::Permission"):
        assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
        arn = permission["Properties"]["SourceArn"]["Fn::Sub"]
        source_arns.append(arn[0] if isinstance(arn, list) else arn)
    for method, path in ROUTES:
        resource = path.replace("{name}", "*")
        assert any(arn.endswith(f"/{method}{resource}") for arn in source_arns), (method, path)
    assert any(arn.endswith("/OPTIONS/*") for arn in source_arns)


@pytest.mark.slow
def test_the_stage_logs_access_and_throttles(cloudformation: dict[str, Any]) -> None:
    (stage,) = of_type(cloudformation, "AWS::ApiGateway::Stage")
    assert stage["Properties"]["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}
    json.loads(stage["Properties"]["AccessLogSetting"]["Format"].replace("$context.error.messageString", '""'))
    (settings,) = stage["Properties"]["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}


@pytest.mark.slow
def test_the_function_role_grants_logs_and_reads_only_the_models_bucket(cloudformation: dict[str, Any]) -> None:
    role = cloudformation["InferenceFunctionRole"]["Properties"]
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
    (policy,) = role["Policies"]
    condition, granted, otherwise = policy["Fn::If"]
    assert condition == "HasModelsBucket"
    assert otherwise == {"Ref": "AWS::NoValue"}
    (statement,) = granted["PolicyDocument"]["Statement"]
    assert statement["Action"] == "s3:GetObject"
    assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ModelsBucket}/*"}


@pytest.mark.slow
def test_the_api_key_and_usage_plan_exist_only_when_required(cloudformation: dict[str, Any]) -> None:
    for name in ("ApiKey", "UsagePlan", "UsagePlanKey"):
        assert cloudformation[name]["Condition"] == "RequireApiKey"
    (api,) = of_type(cloudformation, "AWS::ApiGateway::RestApi")
    for item in api["Properties"]["Body"]["paths"].values():
        for method, operation in item.items():
            expected = (
                None
                if method == "options"
                else {"Fn::If": ["RequireApiKey", [{"api_key": []}], {"Ref": "AWS::NoValue"}]}
            )
            assert operation.get("security") == expected
