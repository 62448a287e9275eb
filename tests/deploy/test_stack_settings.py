"""What CloudFormation deploys for each setting of the stack: template.yaml with swagger.yaml included, run
through SAM's own translator (tests/deploy/sam_transform.py, in SAM CLI's environment), then the conditions
and parameters evaluated as CloudFormation would (tests/cloudformation.py)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from budget import load_template
from cloudformation import Stack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
ROUTES = {("post", "/predict"), ("post", "/object_detection"), ("get", "/models"), ("get", "/models/{name}"),
          ("get", "/health"), ("post", "/jobs"), ("get", "/jobs/{job_id}"), ("delete", "/jobs/{job_id}"),
          ("post", "/embed"), ("get", "/")}  # fmt: skip
ORIGIN = "https://app.example.com"
BATCH_JOB_STATEMENTS = {"JobRecords", "QueueJobs", "CheckJobLocations"}  # tests/deploy/test_batch_template.py
POOL_ARN = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123"

pytestmark = pytest.mark.slow


@functools.cache
def translated(template: Path = ROOT / "template.yaml") -> dict[str, Any]:
    """The SAM transform's output (parameters stay references: conditions are kept in the output)."""
    subprocess.run(["make", "-s", "--no-print-directory", "sam-cli"], cwd=ROOT, check=True)
    result = subprocess.run(
        [str(ROOT / ".venv-sam/bin/python"), str(ROOT / "tests/deploy/sam_transform.py"), str(template)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def deployed(**parameters: str) -> Stack:
    return Stack(translated(), parameters)


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: resource for name, resource in resources.items() if resource["Type"] == kind}


def one(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    (resource,) = of_type(resources, kind).values()
    properties: dict[str, Any] = resource.get("Properties", {})
    return properties


def api_body(resources: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = one(resources, "AWS::ApiGateway::RestApi")["Body"]
    return body


def operations(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): operation for path, item in body["paths"].items() for method, operation in item.items()}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [statement for policy in role.get("Policies", []) for statement in policy["PolicyDocument"]["Statement"]]


# Concurrency and throttling: the bill's ceiling.


def test_the_function_reserves_a_modest_concurrency_and_the_throttles_fit_it() -> None:
    resources = deployed().resources()
    function = resources["InferenceFunction"]["Properties"]
    assert function["ReservedConcurrentExecutions"] == "10"
    (settings,) = one(resources, "AWS::ApiGateway::Stage")["MethodSettings"]
    # A burst above the reserved concurrency could only be refused by Lambda; the rate is what 10 copies
    # serve at one second per request.
    assert int(settings["ThrottlingBurstLimit"]) <= int(function["ReservedConcurrentExecutions"])
    assert int(settings["ThrottlingRateLimit"]) <= int(function["ReservedConcurrentExecutions"])


def test_reserved_concurrency_follows_its_parameter_and_minus_one_reserves_none() -> None:
    assert (
        deployed(ReservedConcurrency="3").resources()["InferenceFunction"]["Properties"]["ReservedConcurrentExecutions"]
        == "3"
    )
    assert (
        "ReservedConcurrentExecutions"
        not in deployed(ReservedConcurrency="-1").resources()["InferenceFunction"]["Properties"]
    )


@pytest.mark.parametrize("env", ["default", "prod"])
def test_each_environment_throttles_within_its_reserved_concurrency(env: str) -> None:
    overrides = dict(item.split("=", 1) for item in SAMCONFIG[env]["deploy"]["parameters"]["parameter_overrides"])
    resources = deployed(**overrides).resources()
    reserved = int(resources["InferenceFunction"]["Properties"]["ReservedConcurrentExecutions"])
    (settings,) = one(resources, "AWS::ApiGateway::Stage")["MethodSettings"]
    assert int(settings["ThrottlingBurstLimit"]) <= reserved
    assert int(settings["ThrottlingRateLimit"]) <= reserved


def test_api_keys_come_with_a_usage_plan_quota_and_throttle() -> None:
    assert not of_type(deployed().resources(), "AWS::ApiGateway::UsagePlan")
    resources = deployed(ApiKeyRequired="true", QuotaRequestsPerDay="2500").resources()
    plan = one(resources, "AWS::ApiGateway::UsagePlan")
    assert plan["Quota"] == {"Limit": "2500", "Period": "DAY"}
    assert plan["Throttle"] == {"RateLimit": "10", "BurstLimit": "10"}
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "InferenceApi"}, "Stage": {"Ref": "InferenceApiStage"}}]
    key = one(resources, "AWS::ApiGateway::UsagePlanKey")
    assert key["KeyType"] == "API_KEY"
    assert key["KeyId"] == {"Ref": "ApiKey"}


# Authentication.


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, None),
        ({"ApiKeyRequired": "true"}, [{"api_key": []}]),
        ({"Auth": "IAM"}, [{"sigv4": []}]),
        ({"Auth": "IAM", "ApiKeyRequired": "true"}, [{"sigv4": [], "api_key": []}]),
        ({"Auth": "COGNITO"}, [{"cognito": []}]),
        ({"Auth": "COGNITO", "ApiKeyRequired": "true"}, [{"cognito": [], "api_key": []}]),
    ],
)
def test_every_route_requires_what_auth_and_api_key_choose_and_preflights_nothing(
    parameters: dict[str, str], expected: list[dict[str, list[str]]] | None
) -> None:
    body = api_body(deployed(**parameters).resources())
    for (method, path), operation in operations(body).items():
        if method == "options":
            assert "security" not in operation, path
        else:
            assert operation.get("security") == expected, (method, path)
    assert {(method, path) for method, path in operations(body) if method != "options"} == ROUTES


def test_iam_auth_is_sigv4_on_every_method() -> None:
    schemes = api_body(deployed(Auth="IAM").resources())["components"]["securitySchemes"]
    assert schemes["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert "cognito" not in schemes
    outputs = deployed(Auth="IAM").outputs()
    assert outputs["InvokeResourceArn"] == {
        "Fn::Sub": "arn:aws:execute-api:us-east-1:123456789012:${InferenceApi}/v1/*"
    }


def test_no_authorizer_exists_without_auth() -> None:
    resources = deployed().resources()
    schemes = api_body(resources)["components"]["securitySchemes"]
    assert set(schemes) == {"api_key"}
    assert not of_type(resources, "AWS::Cognito::UserPool")


def test_cognito_auth_creates_an_admin_only_user_pool_when_none_is_given() -> None:
    stack = deployed(Auth="COGNITO")
    resources = stack.resources()
    authorizer = api_body(resources)["components"]["securitySchemes"]["cognito"]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "cognito_user_pools"
    assert authorizer["providerARNs"] == [{"Fn::GetAtt": ["UserPool", "Arn"]}]
    assert authorizer["identitySource"] == "method.request.header.Authorization"
    pool = one(resources, "AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}  # nobody signs themselves up
    client = one(resources, "AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False
    assert {"UserPoolId", "UserPoolClientId"} <= set(stack.outputs())


def test_cognito_auth_uses_the_given_user_pool() -> None:
    resources = deployed(Auth="COGNITO", CognitoUserPoolArn=POOL_ARN).resources()
    authorizer = api_body(resources)["components"]["securitySchemes"]["cognito"]["x-amazon-apigateway-authorizer"]
    assert authorizer["providerARNs"] == [POOL_ARN]
    assert not of_type(resources, "AWS::Cognito::UserPool")


# Permissions of the function.


def test_the_function_role_writes_only_its_own_log_group_and_reads_nothing_without_a_bucket() -> None:
    resources = deployed().resources()
    roles = of_type(resources, "AWS::IAM::Role")
    # SAM adds no role of its own (with the managed basic execution policy); the batch roles: test_batch_template.py
    assert set(roles) == {"FunctionRole", "WorkerRole", "PlannerRole", "DeadLetterRole"}
    role = roles["FunctionRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert resources["InferenceFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["FunctionRole", "Arn"]}
    (statement,) = [statement for statement in statements(role) if statement["Sid"] not in BATCH_JOB_STATEMENTS]
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == {"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}
    assert resources["InferenceFunction"]["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": "FunctionLogGroup"}}
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


@pytest.mark.parametrize(
    ("prefix", "resource"), [("models/", "arn:aws:s3:::weights/models/*"), ("", "arn:aws:s3:::weights/*")]
)
def test_the_function_reads_only_the_models_prefix_of_the_bucket(prefix: str, resource: str) -> None:
    role = deployed(ModelsBucket="weights", ModelsPrefix=prefix).resources()["FunctionRole"]["Properties"]
    (s3,) = [statement for statement in statements(role) if statement["Sid"] == "ReadModels"]
    assert s3["Action"] == "s3:GetObject"
    assert s3["Resource"] == resource


def test_the_default_models_prefix_is_not_the_whole_bucket() -> None:
    assert TEMPLATE["Parameters"]["ModelsPrefix"]["Default"] == "models/"


# CORS: preflight by API Gateway, and its own errors carry the headers.


def test_preflight_is_a_mock_with_the_origin_and_the_path_methods_when_cors_is_on() -> None:
    body = api_body(deployed(CorsAllowOrigin=ORIGIN).resources())
    for path, item in body["paths"].items():
        integration = item["options"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "mock"
        headers = integration["responses"]["default"]["responseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == f"'{ORIGIN}'"
        methods = headers["method.response.header.Access-Control-Allow-Methods"].strip("'").split(",")
        assert set(methods) == {method.upper() for method in item}, path
        allowed = headers["method.response.header.Access-Control-Allow-Headers"].strip("'").split(",")
        assert {"Content-Type", "Authorization", "X-Api-Key", "X-Amz-Date", "X-Amz-Security-Token"} <= set(allowed)
        assert headers["method.response.header.Access-Control-Max-Age"] == "'600'"
        # Every mapped header is declared on the method response, as API Gateway requires.
        declared = set(item["options"]["responses"]["204"]["headers"])
        assert {name.rpartition(".")[2] for name in headers} <= declared


def test_preflight_answers_no_cors_headers_when_cors_is_off() -> None:
    body = api_body(deployed().resources())
    for item in body["paths"].values():
        assert item["options"]["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"] == {}


def test_no_invocation_permission_for_preflight() -> None:
    resources = deployed(CorsAllowOrigin=ORIGIN).resources()
    arns = [json.dumps(permission["Properties"]["SourceArn"]) for permission in of_type(
        resources, "AWS::Lambda::Permission").values()]  # fmt: skip
    assert arns
    assert not [arn for arn in arns if "OPTIONS" in arn]
    assert "PreflightPermission" not in resources


@pytest.mark.parametrize("cors", [ORIGIN, ""])
def test_gateway_errors_answer_the_api_error_shape_with_cors_headers_when_cors_is_on(cors: str) -> None:
    responses = api_body(deployed(CorsAllowOrigin=cors).resources())["x-amazon-apigateway-gateway-responses"]
    # DEFAULT_4XX covers 403 (auth, unknown route, API key), 413 and 429 (throttle, quota); DEFAULT_5XX 502/504.
    assert set(responses) == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses.values():
        template = response["responseTemplates"]["application/json"]
        filled = (
            template.replace("$context.error.responseType", "THROTTLED")
            .replace("$context.error.messageString", '"Too Many Requests"')
            .replace("$context.requestId", "c0ffee")
        )
        error = {"code": "THROTTLED", "message": "Too Many Requests", "request_id": "c0ffee"}
        assert json.loads(filled) == {"error": error}
        headers = response["responseParameters"]
        if cors:
            assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == f"'{cors}'"
        else:
            assert headers == {}


# API Gateway's account-wide CloudWatch role: off unless asked for.


def test_by_default_no_account_role_and_no_api_gateway_logs() -> None:
    assert TEMPLATE["Parameters"]["ApiGatewayCloudWatchRole"]["Default"] == "none"
    resources = deployed().resources()
    assert not {"ApiGatewayLogsRole", "ApiGatewayAccount", "AccessLogGroup"} & set(resources)
    stage = one(resources, "AWS::ApiGateway::Stage")
    assert "AccessLogSetting" not in stage
    (settings,) = stage["MethodSettings"]
    assert settings["LoggingLevel"] == "OFF"  # execution logs would need the account role too


def test_existing_account_role_logs_access_without_creating_the_role() -> None:
    resources = deployed(ApiGatewayCloudWatchRole="existing").resources()
    assert not {"ApiGatewayLogsRole", "ApiGatewayAccount"} & set(resources)
    stage = one(resources, "AWS::ApiGateway::Stage")
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}
    json.loads(stage["AccessLogSetting"]["Format"].replace("$context.error.messageString", '""'))
    assert stage["MethodSettings"][0]["LoggingLevel"] == "ERROR"


def test_create_makes_the_account_role_kept_on_delete() -> None:
    resources = deployed(ApiGatewayCloudWatchRole="create").resources()
    for name in ("ApiGatewayLogsRole", "ApiGatewayAccount"):
        assert resources[name]["DeletionPolicy"] == "Retain"
    assert "AccessLogSetting" in one(resources, "AWS::ApiGateway::Stage")


# SnapStart, the published alias the API invokes, and versions that follow every change.


def test_snapstart_is_off_by_default_and_on_for_published_versions() -> None:
    function = deployed().resources()["InferenceFunction"]["Properties"]
    assert function["SnapStart"] == {"ApplyOn": "None"}
    assert function["Runtime"] == "python3.13"
    function = deployed(SnapStart="true").resources()["InferenceFunction"]["Properties"]
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}


def test_the_api_invokes_the_live_alias_of_a_published_version() -> None:
    resources = deployed(SnapStart="true").resources()
    (alias_id,) = of_type(resources, "AWS::Lambda::Alias")
    alias = resources[alias_id]["Properties"]
    assert alias["Name"] == "live"
    (version_id,) = of_type(resources, "AWS::Lambda::Version")
    assert alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    assert resources[version_id]["DeletionPolicy"] == "Delete"  # replaced versions and their snapshots go
    for (method, path), operation in operations(api_body(resources)).items():
        if method != "options":
            assert operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"].endswith(
                "${InferenceFunction.Arn}:live/invocations"
            ), path
    assert deployed(SnapStart="true").outputs()["FunctionAlias"] == {"Ref": alias_id}
    permissions = of_type(resources, "AWS::Lambda::Permission").values()
    assert {json.dumps(permission["Properties"]["FunctionName"]) for permission in permissions} == {
        json.dumps({"Ref": alias_id})
    }


def test_every_parameter_of_the_function_configuration_publishes_a_new_version() -> None:
    function = TEMPLATE["Resources"]["InferenceFunction"]["Properties"]
    used: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("Ref"), str) and node["Ref"] in TEMPLATE["Parameters"]:
                used.add(node["Ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    # Reserved concurrency belongs to the function, not to a version.
    collect({key: value for key, value in function.items() if key not in {"ReservedConcurrentExecutions", "Events"}})
    description = function["VersionDescription"]["Fn::Sub"]
    # Each parameter is in the description itself, or in the digest of every value scripts/deploy passes.
    assert "${ConfigurationDigest}" in description
    written = {name for name in used if f"${{{name}}}" in description}
    assert {"Architecture", "MemorySize", "LogLevel"} <= written
    assert "${SnapStart}" in description  # used through the EnableSnapStart condition
    secrets = {name for name, spec in TEMPLATE["Parameters"].items() if spec.get("NoEcho")}
    assert not written & secrets  # a secret is never written in a description
    # The longest description the parameters allow fits Lambda's 256 characters.
    longest = description
    for name in written | {"ConfigurationDigest", "SnapStart"}:
        spec = TEMPLATE["Parameters"][name]
        values = [str(value) for value in spec.get("AllowedValues", [])] or ["x" * int(spec.get("MaxLength", 16))]
        longest = longest.replace(f"${{{name}}}", max(values, key=len))
    assert "${" not in longest
    assert len(longest) <= 256
    (version,) = of_type(deployed(MemorySize="4096").resources(), "AWS::Lambda::Version").values()
    assert "4096MB" in version["Properties"]["Description"]


def test_the_deploy_digest_changes_with_any_value_and_reveals_none() -> None:
    from configuration_digest import configuration_digest  # noqa: PLC0415 - scripts/ is on the test path

    values = {"Architecture": "arm64", "CorsAllowOrigin": ORIGIN, "WebhookSecret": "s3cr3t-value"}
    digest = configuration_digest(values)
    assert len(digest) == 16
    assert "s3cr3t" not in digest
    for name, value in values.items():
        assert configuration_digest({**values, name: value + "x"}) != digest, name
    assert configuration_digest({**values, "ConfigurationDigest": digest}) == digest
    description = deployed(ConfigurationDigest=digest).resources()
    (version,) = of_type(description, "AWS::Lambda::Version").values()
    assert version["Properties"]["Description"].endswith(f"config={digest}")
    assert "values[PARAMETER] = configuration_digest(values)" in (ROOT / "scripts" / "deploy").read_text()


def test_a_new_layer_publishes_a_new_function_version(tmp_path: Path) -> None:
    def version_id(template: Path) -> str:
        (name,) = of_type(translated(template)["Resources"], "AWS::Lambda::Version")
        return name

    shutil.copy(ROOT / "swagger.yaml", tmp_path / "swagger.yaml")
    text = (ROOT / "template.yaml").read_text()
    (tmp_path / "template.yaml").write_text(text)
    changed = tmp_path / "changed" / "template.yaml"
    changed.parent.mkdir()
    shutil.copy(ROOT / "swagger.yaml", changed.parent / "swagger.yaml")
    changed.write_text(text.replace("ContentUri: layers/dependencies/", "ContentUri: s3://artifacts/other.zip"))
    assert version_id(tmp_path / "template.yaml") != version_id(changed)


def test_every_stack_update_deploys_the_api_again() -> None:
    # The definition holds parameter-dependent values (CORS origin, authorizer, API key requirement) that SAM's
    # hash of the body cannot see change: without a new deployment the stage would keep serving the old ones.
    assert TEMPLATE["Resources"]["InferenceApi"]["Properties"]["AlwaysDeploy"] is True
    (deployment,) = of_type(deployed().resources(), "AWS::ApiGateway::Deployment").values()
    assert deployment["Properties"]["RestApiId"] == {"Ref": "InferenceApi"}
