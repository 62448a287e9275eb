"""Given a SAM template, these functions, layers and routes are served."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from samlocal.intrinsics import TemplateError
from samlocal.template import IMPLICIT_API, read_stack

FUNCTION_DIR = "code"
INTEGRATION = "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${HelloFunction.Arn}/invocations"


def write(folder: Path, name: str, text: str, *resources: str) -> Path:
    """A file: `text` dedented, then resources (already indented under Resources:)."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) + "".join(resources))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path, f"{FUNCTION_DIR}/app.py", "def handler(event, context):\n    return {}\n")
    write(tmp_path, "layer/python/lib.py", "")
    write(tmp_path, "deps/requirements.txt", "requests==2.34.2\n")
    return tmp_path


FUNCTION = """\
  HelloFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: app.handler
      Runtime: python3.13
"""


def function(*properties: str) -> str:
    """HelloFunction with more properties, one YAML line each (nested lines indented by two)."""
    return FUNCTION + "".join(f"      {line}\n" for line in properties)


def test_an_openapi_body_included_with_aws_include(folder: Path) -> None:
    write(
        folder,
        "openapi.yaml",
        f"""\
        openapi: 3.0.1
        paths:
          /hello/{{name}}:
            get:
              operationId: hello
              x-amazon-apigateway-integration:
                type: aws_proxy
                httpMethod: POST
                timeoutInMillis: 5000
                uri:
                  Fn::Sub: {INTEGRATION}
          /{{proxy+}}:
            x-amazon-apigateway-any-method:
              x-amazon-apigateway-integration:
                type: aws_proxy
                httpMethod: POST
                uri: {{"Fn::Sub": "{INTEGRATION}"}}
        x-amazon-apigateway-binary-media-types: [image/png]
        """,
    )
    template = write(
        folder,
        "template.yaml",
        """\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Api:
            Type: AWS::Serverless::Api
            Properties:
              StageName: v1
              BinaryMediaTypes: [application~1octet-stream, image~1png]
              DefinitionBody:
                Fn::Transform:
                  Name: AWS::Include
                  Parameters: {Location: openapi.yaml}
        """,
        FUNCTION,
    )
    stack = read_stack(template)
    routes = {(route.method, route.resource_path): route for route in stack.routes}
    assert set(routes) == {("GET", "/hello/{name}"), ("ANY", "/{proxy+}")}
    assert routes["GET", "/hello/{name}"].operation_name == "hello"
    assert routes["GET", "/hello/{name}"].timeout_ms == 5000
    assert all(route.function_id == "HelloFunction" for route in routes.values())
    assert stack.apis["Api"].binary_media_types == ["application/octet-stream", "image/png"]
    assert stack.apis["Api"].stage_name == "v1"


def test_a_definition_uri_names_functions_by_their_arn(folder: Path) -> None:
    write(
        folder,
        "swagger.json",
        """\
        {"swagger": "2.0", "paths": {"/hello": {"post": {"x-amazon-apigateway-integration": {
          "type": "aws_proxy", "httpMethod": "POST",
          "uri": "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/%s/invocations"
        }}}}}
        """.replace("%s", "arn:aws:lambda:eu-west-1:111111111111:function:hello-world"),
    )
    template = write(
        folder,
        "template.yaml",
        """\
        Resources:
          Api:
            Type: AWS::Serverless::Api
            Properties: {StageName: prod, DefinitionUri: swagger.json}
        """,
        function("FunctionName: hello-world"),
    )
    stack = read_stack(template)
    (route,) = stack.routes
    assert (route.method, route.resource_path, route.function_id) == ("POST", "/hello", "HelloFunction")
    assert stack.functions["HelloFunction"].name == "hello-world"


def test_events_without_rest_api_id_go_to_the_implicit_api(folder: Path) -> None:
    template = write(
        folder,
        "template.yaml",
        """\
        Globals:
          Api:
            BinaryMediaTypes: ["*~1*"]
        Resources:
        """,
        function(
            "Events:",
            "  Any: {Type: Api, Properties: {Path: /anything, Method: any}}",
            '  Get: {Type: Api, Properties: {Path: "/things/{id}", Method: GET}}',
        ),
    )
    stack = read_stack(template)
    api = stack.apis[IMPLICIT_API]
    assert api.stage_name == "Prod"
    assert api.binary_media_types == ["*/*"]
    assert {(route.method, route.resource_path) for route in api.routes} == {
        ("ANY", "/anything"),
        ("GET", "/things/{id}"),
    }


def test_globals_parameters_and_conditions_shape_each_function(folder: Path) -> None:
    template = write(
        folder,
        "template.yaml",
        """\
        Parameters:
          Stage: {Type: String, Default: dev}
          Memory: {Type: Number, Default: 512}
        Conditions:
          IsProd: !Equals [!Ref Stage, prod]
        Globals:
          Function:
            Timeout: 7
            MemorySize: !Ref Memory
            Layers: [!Ref DepsLayer]
            Environment:
              Variables: {SHARED: global, OVERRIDDEN: global, MODELS_DIR: /opt/models}
        Resources:
          DepsLayer:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: deps/}
          CodeLayer:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: layer/}
        """,
        function(
            "Timeout: !If [IsProd, 30, 3]",
            "Architectures: [arm64]",
            'Layers: [!Ref CodeLayer, "arn:aws:lambda:us-east-1:017000801446:layer:Powertools:1"]',
            "Environment:",
            "  Variables:",
            "    OVERRIDDEN: function",
            '    STAGE: !Sub "stage-${Stage}"',
            "    ENABLED: true",
        ),
    )
    hello = read_stack(template, {"Stage": "prod"}).functions["HelloFunction"]
    assert hello.timeout == 30
    assert hello.memory_size == 512
    assert hello.architecture == "arm64"
    assert hello.environment == {
        "SHARED": "global",
        "OVERRIDDEN": "function",
        "MODELS_DIR": "/opt/models",
        "STAGE": "stage-prod",
        "ENABLED": "true",
    }
    assert [layer.logical_id for layer in hello.layers] == ["DepsLayer", "CodeLayer"]
    assert [layer.provides_requirements for layer in hello.layers] == [True, False]
    assert read_stack(template).functions["HelloFunction"].timeout == 3
    assert any("Powertools" in warning for warning in read_stack(template).warnings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Resources:\n  A: {Type: AWS::Serverless::Api, Properties: {Path: /a/{b}}}\n", "not valid YAML"),
        ("Resources: {}\nParameters: {}\n", "no Resources"),
        (
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n"
            "    Properties: {CodeUri: missing/, Handler: app.handler, Runtime: python3.13}\n",
            "is not a directory or a .zip file",
        ),
    ],
)
def test_templates_that_cannot_be_served_say_why(folder: Path, text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        read_stack(write(folder, "template.yaml", text))


def test_overrides_of_undeclared_parameters_are_ignored_with_a_warning(folder: Path) -> None:
    template = write(folder, "template.yaml", "Resources:\n", FUNCTION)
    stack = read_stack(template, {"Nope": "1"})
    assert "parameter overrides for undeclared parameters are ignored: Nope" in stack.warnings


def test_resources_of_a_false_condition_are_not_listed_as_not_served(folder: Path) -> None:
    template = write(
        folder,
        "template.yaml",
        """\
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          ApiType: {Type: String, Default: REST, AllowedValues: [REST, HTTP]}
        Conditions:
          IsRest: !Equals [!Ref ApiType, REST]
          IsHttp: !Equals [!Ref ApiType, HTTP]
        Resources:
          RestApi:
            Type: AWS::Serverless::Api
            Condition: IsRest
            Properties: {StageName: v1}
          HttpApi:
            Type: AWS::Serverless::HttpApi
            Condition: IsHttp
          Key:
            Type: AWS::ApiGateway::ApiKey
            Condition: IsRest
          Plan:
            Type: AWS::ApiGateway::UsagePlan
            Condition: IsRest
            Properties: {ApiStages: [{ApiId: !Ref RestApi, Stage: v1}]}
          Logs:
            Type: AWS::Logs::LogGroup
        """,
        FUNCTION,
    )
    rest = read_stack(template)
    assert any("ApiKey (Key)" in item for item in rest.not_served)
    assert any("UsagePlan (Plan)" in item for item in rest.not_served)
    http = read_stack(template, {"ApiType": "HTTP"})
    listed = "\n".join(http.not_served)
    assert "Key" not in listed
    assert "Plan" not in listed
    assert "LogGroup (Logs)" in listed  # unconditional resources are still listed
