"""swagger.yaml is generated from the app and API Gateway can import it: OpenAPI 3.0, alphanumeric model
names, one integration per operation, valid once CloudFormation has resolved the intrinsic functions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from budget import load_template
from cloudformation import Stack
from generate_swagger import downgrade_schema, to_api_gateway

ROOT = Path(__file__).resolve().parents[2]
SWAGGER = load_template(ROOT / "swagger.yaml")


def test_swagger_is_what_the_app_describes() -> None:
    # In a process of its own: the generator imports the app with settings of its own.
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/generate_swagger.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def resolved(parameters: dict[str, str]) -> Any:
    """The swagger body as CloudFormation leaves it for the given stack parameters."""
    template = load_template(ROOT / "template.yaml")
    stack = Stack({"Parameters": template["Parameters"], "Conditions": template["Conditions"]}, parameters)
    text = json.dumps(stack.resolve(SWAGGER))
    for reference, value in {
        "${InferenceFunction.Arn}": "arn:aws:lambda:us-east-1:123456789012:function:lambda-vision-Inference",
        "${AWS::Partition}": "aws",
        "${AWS::Region}": "us-east-1",
    }.items():
        text = text.replace(reference, value)
    document = json.loads(text)
    # What remains is resolved by CloudFormation: {"Fn::Sub": <a string>} -> the string.
    return json.loads(re.sub(r'\{"Fn::Sub": ("[^"]*")\}', r"\1", json.dumps(document)))


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"ApiKeyRequired": "true"},
        {"Auth": "IAM", "ApiKeyRequired": "true", "CorsAllowOrigin": "https://app.example.com"},
        {"Auth": "COGNITO", "CognitoUserPoolArn": "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_A"},
    ],
)
def test_swagger_is_valid_openapi_3_0_once_deployed(parameters: dict[str, str]) -> None:
    document = resolved(parameters)
    assert "Fn::" not in json.dumps(document)
    validate(document)
    security = document["paths"]["/predict"]["post"].get("security")
    if parameters.get("ApiKeyRequired") == "true":
        assert security is not None
        assert {"api_key"} <= set(security[0])
    else:
        assert security is None or "api_key" not in security[0]


def test_model_names_are_alphanumeric() -> None:
    # API Gateway turns every component schema into a model and refuses other names.
    assert all(name.isalnum() for name in SWAGGER["components"]["schemas"])


def test_no_openapi_3_1_construct_is_left() -> None:
    text = (ROOT / "swagger.yaml").read_text()
    for construct in ("type: 'null'", "const:", "examples:\n", "contentMediaType", "$defs", "openapi: 3.1"):
        assert construct not in text


def test_bodies_are_checked_by_the_function_and_parameters_by_api_gateway() -> None:
    assert SWAGGER["x-amazon-apigateway-request-validators"] == {
        "parameters": {"validateRequestParameters": True, "validateRequestBody": False}
    }
    for item in SWAGGER["paths"].values():
        for method, operation in item.items():
            if method != "options":
                assert operation["x-amazon-apigateway-request-validator"] == "parameters"


def test_every_inference_route_takes_every_body_kind() -> None:
    for path in ("/predict", "/object_detection"):
        content = SWAGGER["paths"][path]["post"]["requestBody"]["content"]
        assert {"multipart/form-data", "application/json", "image/*", "application/octet-stream"} <= set(content)


NULL = {"type": "null"}
BOX = {"$ref": "#/components/schemas/Box"}
DOWNGRADES = [
    ({"anyOf": [{"type": "string"}, NULL], "title": "Model"}, {"type": "string", "title": "Model", "nullable": True}),
    ({"anyOf": [BOX, NULL]}, {"allOf": [BOX], "nullable": True}),
    ({"type": ["integer", "null"]}, {"type": "integer", "nullable": True}),
    ({"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": 0, "exclusiveMinimum": True}),
    ({"const": "ready"}, {"enum": ["ready"]}),
    ({"type": "string", "examples": ["a", "b"]}, {"type": "string", "example": "a"}),
    ({"type": "string", "contentMediaType": "image/png"}, {"type": "string", "format": "binary"}),
    ({"items": {"anyOf": [{"type": "number"}, NULL]}}, {"items": {"type": "number", "nullable": True}}),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {"anyOf": [{"type": "string"}, {"type": "integer"}]}),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "expected"), DOWNGRADES)
def test_json_schema_2020_becomes_openapi_3_0(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert downgrade_schema(schema) == expected


def test_component_names_and_references_are_renamed_together() -> None:
    openapi = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1", "summary": "3.1 only"},
        "servers": [{"url": "/"}],
        "paths": {
            "/items/{id}": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Page_Item_"}}},
                        }
                    }
                }
            }
        },
        "components": {"schemas": {"Page_Item_": {"type": "object"}}},
    }
    document = to_api_gateway(openapi)
    assert "servers" not in document
    assert "summary" not in document["info"]
    assert list(document["components"]["schemas"]) == ["PageItem"]
    operation = document["paths"]["/items/{id}"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PageItem"
    }
    preflight = document["paths"]["/items/{id}"]["options"]
    assert preflight["parameters"] == [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert "security" not in preflight
