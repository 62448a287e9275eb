"""Templates beyond SAM's own resources, over real sockets: a CDK-synthesized cdk.out (Lambda functions and
layers from asset directories, inline code, a REST API built from Resource/Method resources, a nested stack
with an ApiGatewayV2 HTTP API), and a SAM parent with Fn::ForEach functions and a nested application."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from samlocal.testing import LocalApi

TEMPLATES = Path(__file__).resolve().parent / "templates"


@pytest.fixture(scope="module")
def cdk_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("cdk") / "console.log"
    local_api = LocalApi(TEMPLATES / "cdk.out" / "CdkStack.template.json", log)
    try:
        yield local_api
    finally:
        local_api.close()


@pytest.fixture(scope="module")
def nested_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("nested") / "console.log"
    local_api = LocalApi(TEMPLATES / "nested" / "parent.yaml", log)
    try:
        yield local_api
    finally:
        local_api.close()


class TestCdkApp:
    def test_a_method_on_a_resource_tree_reaches_the_asset_function_with_its_layer(self, cdk_api: LocalApi) -> None:
        response = cdk_api.get("/items/42?x=1")

        assert response.status_code == 200
        body = response.json()
        assert body["shared"] == "from the CDK layer"
        assert body["table"] == "items"
        event = body["event"]
        assert event["resource"] == "/items/{id}"
        assert event["pathParameters"] == {"id": "42"}
        assert event["requestContext"]["stage"] == "prod"
        assert event["requestContext"]["path"] == "/prod/items/42"
        assert event["stageVariables"] == {"flavour": "cdk"}

    def test_the_rest_api_keeps_its_binary_media_types(self, cdk_api: LocalApi) -> None:
        response = cdk_api.request("GET", "/items", headers={"Content-Type": "image/png"}, data=b"\x89PNG")

        event = response.json()["event"]
        assert event["resource"] == "/items"
        assert event["isBase64Encoded"] is True

    def test_inline_code_answers_on_the_root_resource(self, cdk_api: LocalApi) -> None:
        for method in ("GET", "DELETE"):
            response = cdk_api.request(method, "/")
            assert response.status_code == 200
            assert response.text == f"inline {method} /"

    def test_the_nested_stacks_http_api_is_served_with_the_parameter_passed_down(self, cdk_api: LocalApi) -> None:
        response = cdk_api.get("/greet/ada")

        assert response.status_code == 200
        assert response.json() == {"greeting": "Hello from the parent stack, ada", "route": "GET /greet/{name}"}

    def test_a_route_no_resource_declares_is_missing_authentication_token(self, cdk_api: LocalApi) -> None:
        response = cdk_api.request("OPTIONS", "/items")

        assert response.status_code == 403
        assert response.json() == {"message": "Missing Authentication Token"}

    def test_the_console_says_what_is_not_served(self, cdk_api: LocalApi) -> None:
        output = cdk_api.output()

        assert "Not served (and what happens instead):" in output
        assert "ItemsApiitemsOPTIONS2B3C4D5E (OPTIONS /items): not served: integration MOCK" in output
        assert "AWS::Events::Rule (Nightly5E6F7A8B): not served" in output
        assert "AWS::CDK::Metadata (CDKMetadata): ignored (CDK bookkeeping)" in output
        assert (
            "AWS::IAM::Role (HandlerServiceRoleFCDC14AE, InlineHandlerServiceRole1A2B3C4D): "
            "not applied: functions run with your own AWS credentials" in output
        )
        assert "Greetings/GreetFn4B2A6C8D: greet.handler in " in output


class TestNestedSamStack:
    @pytest.mark.parametrize(("word", "function"), [("Hello", "HelloFunction"), ("Good-bye", "GoodbyeFunction")])
    def test_each_function_of_a_for_each_loop_is_served(self, nested_api: LocalApi, word: str, function: str) -> None:
        response = nested_api.get(f"/say/{word}")

        assert response.status_code == 200
        body = response.json()
        assert body["function"] == function
        assert body["greeting"] == word
        assert body["event"]["resource"] == f"/say/{word}"

    def test_the_nested_applications_http_api_is_served(self, nested_api: LocalApi) -> None:
        response = nested_api.get("/child/ada")

        assert response.status_code == 200
        body = response.json()
        assert body["function"] == "Child/ChildFunction"
        assert body["greeting"] == "Welcome to us-east-1"
        assert body["event"]["version"] == "2.0"
        assert body["event"]["routeKey"] == "GET /child/{name}"
