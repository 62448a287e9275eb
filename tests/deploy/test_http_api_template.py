"""ApiType=REST|HTTP: what CloudFormation deploys for each (template.yaml with swagger.yaml included, through
SAM's own translator, then conditions and parameters evaluated as CloudFormation would), and the template's
Rules that refuse what an HTTP API cannot do."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from budget import load_template
from cloudformation import Stack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
ORIGIN = "https://app.example.com"
POOL_ARN = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbCdEf123"
ALIAS = {"Ref": "InferenceFunctionAliaslive"}
ALIAS_INVOCATION = "/functions/${InferenceFunction.Arn}:live/invocations"

pytestmark = pytest.mark.slow


@functools.cache
def translated(*parameters: str) -> dict[str, Any]:
    """The SAM transform's output; SAM itself resolves a few parameters (CorsConfiguration's), hence the values."""
    subprocess.run(["make", "-s", "--no-print-directory", "sam-cli"], cwd=ROOT, check=True)
    result = subprocess.run(
        [str(ROOT / ".venv-sam/bin/python"), str(ROOT / "tests/deploy/sam_transform.py"), "template.yaml", *parameters],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def deployed(**parameters: str) -> Stack:
    return Stack(translated(*(f"{name}={value}" for name, value in sorted(parameters.items()))), parameters)


def of_type(resources: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {name: resource for name, resource in resources.items() if resource["Type"].startswith(prefix)}


def http_api(resources: dict[str, Any]) -> dict[str, Any]:
    (api,) = of_type(resources, "AWS::ApiGatewayV2::Api").values()
    properties: dict[str, Any] = api["Properties"]
    return properties


def http_stage(resources: dict[str, Any]) -> dict[str, Any]:
    (stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage").values()
    properties: dict[str, Any] = stage["Properties"]
    return properties


def evaluated(node: Any) -> Any:
    """Fn::Split, Fn::Select and the list form of Fn::Sub, which the Stack leaves as they are."""
    if isinstance(node, list):
        return [evaluated(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: evaluated(value) for key, value in node.items()}
    if len(node) == 1:
        ((key, argument),) = node.items()
        if key == "Fn::Split" and all(isinstance(item, str) for item in argument):
            return argument[1].split(argument[0])
        if key == "Fn::Select" and isinstance(argument[1], list):
            return argument[1][int(argument[0])]
        if key == "Fn::Sub" and isinstance(argument, list):
            text, variables = argument
            for name, value in {**variables, "AWS::URLSuffix": "amazonaws.com"}.items():
                text = text.replace(f"${{{name}}}", str(value))
            return text
    return node


def refused_by_rules(**parameters: str) -> list[str]:
    """The AssertDescription of every Rule whose condition holds and whose assertion fails."""
    refusals = []
    for rule in TEMPLATE.get("Rules", {}).values():
        for assertion in rule["Assertions"]:
            checks = {"applies": rule.get("RuleCondition", {"Fn::Equals": ["a", "a"]}), "holds": assertion["Assert"]}
            stack = Stack({"Parameters": TEMPLATE["Parameters"], "Conditions": checks}, parameters)
            if stack.condition("applies") and not stack.condition("holds"):
                refusals.append(str(assertion["AssertDescription"]))
    return refusals


# Which API exists.


def test_rest_is_the_default_and_creates_no_http_api() -> None:
    assert TEMPLATE["Parameters"]["ApiType"]["Default"] == "REST"
    resources = deployed().resources()
    assert not of_type(resources, "AWS::ApiGatewayV2::")
    assert len(of_type(resources, "AWS::ApiGateway::RestApi")) == 1
    assert "InferenceHttpApi" not in resources


def test_http_creates_an_http_api_and_none_of_the_rest_api_s_resources() -> None:
    resources = deployed(
        ApiType="HTTP", ApiGatewayCloudWatchRole="create", CorsAllowOrigin=ORIGIN, Auth="COGNITO"
    ).resources()
    # No REST API, stage, deployment, usage plan, API key, account role or gateway responses.
    assert not of_type(resources, "AWS::ApiGateway::")
    assert "ApiGatewayLogsRole" not in resources
    assert set(of_type(resources, "AWS::ApiGatewayV2::")) == {
        "InferenceHttpApi",
        "InferenceHttpApiApiGatewayDefaultStage",
    }


def test_every_route_of_the_http_api_reaches_the_function_alias_with_payload_2() -> None:
    body = http_api(deployed(ApiType="HTTP").resources())["Body"]
    # $default carries every route: the function routes them (the same routes as the REST API's swagger.yaml)
    # and answers any other with the API's 404 error.
    assert list(body["paths"]) == ["$default"]
    (operation,) = body["paths"]["$default"].values()
    assert operation["isDefaultRoute"] is True
    integration = operation["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy"
    assert integration["payloadFormatVersion"] == "2.0"
    assert integration["uri"]["Fn::Sub"].endswith(ALIAS_INVOCATION)
    assert integration["timeoutInMillis"] <= 30_000
    assert "x-amazon-apigateway-binary-media-types" not in body  # HTTP APIs have none: they decide by type


def test_the_http_stage_is_default_and_throttles_like_the_rest_stage() -> None:
    stack = deployed(ApiType="HTTP", ThrottlingRateLimit="4", ThrottlingBurstLimit="6", ReservedConcurrency="6")
    resources = stack.resources()
    stage = http_stage(resources)
    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    settings = stage["DefaultRouteSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == ("4", "6")
    reserved = int(resources["InferenceFunction"]["Properties"]["ReservedConcurrentExecutions"])
    assert int(settings["ThrottlingBurstLimit"]) <= reserved
    (rest_settings,) = deployed().resources()["InferenceApiStage"]["Properties"]["MethodSettings"]
    default = deployed(ApiType="HTTP").resources()
    assert http_stage(default)["DefaultRouteSettings"]["ThrottlingRateLimit"] == rest_settings["ThrottlingRateLimit"]
    assert http_stage(default)["DefaultRouteSettings"]["ThrottlingBurstLimit"] == rest_settings["ThrottlingBurstLimit"]


def test_the_http_api_always_writes_its_access_log_without_the_account_role() -> None:
    resources = deployed(ApiType="HTTP", ApiGatewayCloudWatchRole="none").resources()
    log = http_stage(resources)["AccessLogSettings"]
    assert log["DestinationArn"] == {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}
    assert resources["AccessLogGroup"]["Properties"]["RetentionInDays"] == "30"
    line = json.loads(log["Format"].replace("$context.error.messageString", '"Forbidden"'))
    assert {"requestId", "ip", "method", "path", "route", "status", "latencyMs", "error"} <= set(line)
    assert "AccessLogGroup" in deployed(ApiType="HTTP").outputs()
    # The REST API still needs the account's role for its logs.
    assert "AccessLogGroup" not in deployed().resources()


# Who may invoke the function.


@pytest.mark.parametrize(
    ("api_type", "permission", "api"),
    [("REST", "RestApiInvokePermission", "InferenceApi"), ("HTTP", "HttpApiInvokePermission", "InferenceHttpApi")],
)
def test_only_the_api_that_exists_may_invoke_the_function_alias(api_type: str, permission: str, api: str) -> None:
    resources = deployed(ApiType=api_type).resources()
    permissions = of_type(resources, "AWS::Lambda::Permission")
    assert list(permissions) == [permission]
    properties = permissions[permission]["Properties"]
    assert properties["FunctionName"] == ALIAS
    assert properties["Principal"] == "apigateway.amazonaws.com"
    assert properties["SourceAccount"] == "123456789012"
    assert properties["SourceArn"] == {"Fn::Sub": f"arn:aws:execute-api:us-east-1:123456789012:${{{api}}}/*"}
    # The function declares no Api or HttpApi event: its permission would name an API ApiType may leave out.
    events = TEMPLATE["Resources"]["InferenceFunction"]["Properties"].get("Events") or {}
    assert not [name for name, event in events.items() if event["Type"] in {"Api", "HttpApi"}]


# Outputs.


def test_the_outputs_name_the_api_of_either_type() -> None:
    rest = deployed(Auth="IAM").outputs()
    assert rest["ApiUrl"] == {"Fn::Sub": "https://${InferenceApi}.execute-api.us-east-1.amazonaws.com/v1"}
    assert rest["ApiId"] == {"Ref": "InferenceApi"}
    assert rest["ApiType"] == "REST"
    http = deployed(ApiType="HTTP", Auth="IAM").outputs()
    # An HTTP API's $default stage is served at the root of its URL: no stage segment.
    assert http["ApiUrl"] == {"Fn::Sub": "https://${InferenceHttpApi}.execute-api.us-east-1.amazonaws.com"}
    assert http["ApiId"] == {"Ref": "InferenceHttpApi"}
    assert http["ApiType"] == "HTTP"
    assert http["InvokeResourceArn"] == {
        "Fn::Sub": "arn:aws:execute-api:us-east-1:123456789012:${InferenceHttpApi}/$default/*"
    }
    assert "ApiKeyId" not in http


# Authentication on the HTTP API.


@pytest.mark.parametrize(
    ("auth", "security"), [("NONE", None), ("IAM", [{"sigv4": []}]), ("COGNITO", [{"cognito": []}])]
)
def test_every_route_of_the_http_api_requires_what_auth_chooses(auth: str, security: Any) -> None:
    body = http_api(deployed(ApiType="HTTP", Auth=auth).resources())["Body"]
    (operation,) = body["paths"]["$default"].values()
    assert operation.get("security") == security
    schemes = body["components"]["securitySchemes"]
    assert set(schemes) == {name for requirement in security or [] for name in requirement}


def test_iam_auth_on_the_http_api_is_aws_iam_authorization() -> None:
    schemes = http_api(deployed(ApiType="HTTP", Auth="IAM").resources())["Body"]["components"]["securitySchemes"]
    assert schemes["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_cognito_auth_on_the_http_api_is_a_jwt_authorizer_of_the_created_pool() -> None:
    stack = deployed(ApiType="HTTP", Auth="COGNITO")
    resources = stack.resources()
    scheme = http_api(resources)["Body"]["components"]["securitySchemes"]["cognito"]
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "jwt"
    assert authorizer["identitySource"] == "$request.header.Authorization"
    configuration = authorizer["jwtConfiguration"]
    assert configuration["issuer"] == {"Fn::Sub": "https://cognito-idp.us-east-1.amazonaws.com/${UserPool}"}
    assert configuration["audience"] == [{"Ref": "UserPoolClient"}]
    assert resources["UserPool"]["Properties"]["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    assert {"UserPoolId", "UserPoolClientId"} <= set(stack.outputs())


def test_cognito_auth_on_the_http_api_trusts_the_given_pool_and_its_app_clients() -> None:
    resources = deployed(
        ApiType="HTTP", Auth="COGNITO", CognitoUserPoolArn=POOL_ARN, CognitoAppClientIds="client1,client2"
    ).resources()
    assert "UserPool" not in resources
    scheme = http_api(resources)["Body"]["components"]["securitySchemes"]["cognito"]
    configuration = evaluated(scheme["x-amazon-apigateway-authorizer"]["jwtConfiguration"])
    assert configuration == {
        "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
        "audience": ["client1", "client2"],
    }


# CORS on the HTTP API: its CorsConfiguration, answered by API Gateway.


def test_cors_on_the_http_api_comes_from_cors_allow_origin() -> None:
    body = http_api(deployed(ApiType="HTTP", CorsAllowOrigin=ORIGIN).resources())["Body"]
    cors = body["x-amazon-apigateway-cors"]
    assert cors["allowOrigins"] == [ORIGIN]
    assert {"GET", "POST", "DELETE"} <= set(cors["allowMethods"])
    assert {"Content-Type", "Authorization", "X-Amz-Date", "X-Amz-Security-Token"} <= set(cors["allowHeaders"])
    assert cors["exposeHeaders"] == ["X-Detections"]
    assert cors["maxAge"] == 600
    assert "allowCredentials" not in cors
    assert "x-amazon-apigateway-cors" not in http_api(deployed(ApiType="HTTP").resources())["Body"]


# What an HTTP API cannot do is refused, not silently dropped.


def test_api_keys_are_refused_with_an_http_api() -> None:
    (refusal,) = refused_by_rules(ApiType="HTTP", ApiKeyRequired="true")
    assert "ApiType=REST" in refusal
    assert refused_by_rules(ApiType="REST", ApiKeyRequired="true") == []
    assert refused_by_rules(ApiType="HTTP") == []
    # Even were the rule bypassed, no API key or usage plan would name the missing REST API.
    resources = deployed(ApiType="HTTP", ApiKeyRequired="true").resources()
    assert not {"ApiKey", "UsagePlan", "UsagePlanKey"} & set(resources)


def test_a_given_user_pool_needs_its_app_clients_with_an_http_api() -> None:
    (refusal,) = refused_by_rules(ApiType="HTTP", Auth="COGNITO", CognitoUserPoolArn=POOL_ARN)
    assert "CognitoAppClientIds" in refusal
    assert refused_by_rules(ApiType="HTTP", Auth="COGNITO", CognitoUserPoolArn=POOL_ARN, CognitoAppClientIds="c1") == []
    assert refused_by_rules(ApiType="HTTP", Auth="COGNITO") == []  # the created pool's client is the audience
    assert refused_by_rules(ApiType="REST", Auth="COGNITO", CognitoUserPoolArn=POOL_ARN) == []


def test_the_template_lints_clean_as_an_http_api() -> None:
    subprocess.run(["make", "-s", "--no-print-directory", "sam-cli"], cwd=ROOT, check=True)
    result = subprocess.run(
        [str(ROOT / ".venv-sam/bin/cfn-lint"), "template.yaml", "--parameters", "ApiType=HTTP", "Auth=COGNITO"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
