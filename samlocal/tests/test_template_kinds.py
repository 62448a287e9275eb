"""Given templates of every kind the emulator reads, these functions, APIs and routes are served, and what is
not served is listed with what happens instead."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samlocal.events import MalformedProxyResponseError
from samlocal.http_events import http_proxy_response, is_text_like
from samlocal.intrinsics import TemplateError
from samlocal.language_extensions import expand_for_each
from samlocal.routing import RouteTable
from samlocal.template import DEFAULT_ROUTE, HTTP, IMPLICIT_HTTP_API, Route, read_stack
from test_template import FUNCTION, folder, write

__all__ = ["folder"]  # the fixture, shared with test_template


def test_a_template_with_unsupported_pieces_lists_each_with_what_happens_instead(folder: Path) -> None:
    template = write(
        folder,
        "template.yaml",
        """\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Machine:
            Type: AWS::Serverless::StateMachine
            Properties: {Definition: {}}
          Queue:
            Type: AWS::SQS::Queue
          Topic:
            Type: AWS::SNS::Topic
          Sockets:
            Type: AWS::ApiGatewayV2::Api
            Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
          RemoteFunction:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: s3://bucket/code.zip, Handler: app.handler, Runtime: python3.13}
          NodeFunction:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: code/, Handler: app.handler, Runtime: nodejs22.x}
          ImageFunction:
            Type: AWS::Serverless::Function
            Properties: {PackageType: Image, ImageUri: repo/image:1}
        """,
        FUNCTION,
        "      ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 2}\n",
        "      AutoPublishAlias: live\n",
        "      Tracing: Active\n",
        "      Environment:\n",
        "        Variables:\n",
        "          VPC: !ImportValue shared-vpc\n",
        "          TOPIC_NAME: !GetAtt Topic.TopicName\n",
        "      Events:\n",
        "        Nightly: {Type: Schedule, Properties: {Schedule: rate(1 day)}}\n",
        "        Jobs: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn}}\n",
        "        Stream: {Type: Kinesis, Properties: {Stream: arn:aws:kinesis:us-east-1:123456789012:stream/s}}\n",
        "        Hello: {Type: Api, Properties: {Path: /hello, Method: get}}\n",
    )

    stack = read_stack(template)

    assert list(stack.functions) == ["HelloFunction"]
    assert stack.functions["HelloFunction"].environment == {
        "VPC": '{"Fn::ImportValue": "shared-vpc"}',
        "TOPIC_NAME": "Topic.TopicName",
    }
    assert [(route.method, route.resource_path) for route in stack.routes] == [("GET", "/hello")]
    assert stack.not_served == [
        "RemoteFunction: not served: CodeUri 's3://bucket/code.zip' is not local (a directory or a .zip)",
        "NodeFunction: not served: runtime nodejs22.x; only python runtimes are",
        "ImageFunction: not served: image functions (PackageType: Image) need Docker",
        "ProvisionedConcurrencyConfig (HelloFunction): ignored: environments start on demand",
        "AutoPublishAlias (HelloFunction): ignored: the current code is served",
        "Tracing (HelloFunction): ignored: no X-Ray tracing locally",
        "Sockets: not served: ProtocolType WEBSOCKET; only HTTP APIs are",
        "HelloFunction.Events.Nightly: Type Schedule: not served (no scheduler): invoke the function yourself",
        "HelloFunction.Events.Stream: Type Kinesis: not served (no stream polling locally)",
        "AWS::Serverless::StateMachine (Machine): not served (no Step Functions locally)",
        "AWS::SNS::Topic (Topic): not served",
        "Fn::ImportValue shared-vpc: no local value: its JSON text is used instead",
        "Fn::GetAtt Topic.TopicName: no local value: the placeholder text 'Topic.TopicName' is used",
    ]


def test_the_implicit_http_api_and_an_openapi_default_route(folder: Path) -> None:
    uri = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/${HelloFunction.Arn}/invocations"
    template = write(
        folder,
        "template.yaml",
        f"""\
        Globals:
          HttpApi:
            StageVariables: {{tier: free}}
        Resources:
          Documented:
            Type: AWS::Serverless::HttpApi
            Properties:
              StageName: live
              DefinitionBody:
                openapi: 3.0.1
                paths:
                  $default:
                    x-amazon-apigateway-any-method:
                      x-amazon-apigateway-integration:
                        type: aws_proxy
                        uri: !Sub "{uri}"
                        payloadFormatVersion: "1.0"
        """,
        FUNCTION,
        "      Events:\n",
        "        Root: {Type: HttpApi, Properties: {Path: /, Method: GET, TimeoutInMillis: 5000}}\n",
        "        Any: {Type: HttpApi}\n",
    )

    stack = read_stack(template)

    implicit = stack.apis[IMPLICIT_HTTP_API]
    assert (implicit.kind, implicit.stage_name, implicit.stage_variables) == (HTTP, "$default", {"tier": "free"})
    assert [(r.method, r.resource_path, r.payload_format_version, r.timeout_ms) for r in implicit.routes] == [
        ("GET", "/", "2.0", 5000),
        ("ANY", DEFAULT_ROUTE, "2.0", None),
    ]
    documented = stack.apis["Documented"]
    assert documented.stage_name == "live"
    assert [(r.method, r.resource_path, r.payload_format_version) for r in documented.routes] == [
        ("ANY", DEFAULT_ROUTE, "1.0")
    ]


def test_a_zip_with_a_member_outside_its_root_is_refused(folder: Path) -> None:
    with zipfile.ZipFile(folder / "evil.zip", "w") as bundle:
        bundle.writestr("../outside.py", "x = 1\n")
    template = write(folder, "template.yaml", "Resources:\n", FUNCTION.replace("CodeUri: code/", "CodeUri: evil.zip"))

    with pytest.raises(TemplateError, match="outside its root"):
        read_stack(template)


def test_a_nested_stack_that_names_itself_is_refused(folder: Path) -> None:
    template = write(
        folder,
        "template.yaml",
        "Resources:\n  Self: {Type: AWS::CloudFormation::Stack, Properties: {TemplateURL: template.yaml}}\n",
        FUNCTION,
    )

    with pytest.raises(TemplateError, match="nested stacks deeper than"):
        read_stack(template)


def test_for_each_expands_nested_loops_and_alphanumeric_keys() -> None:
    document = {
        "Fn::ForEach::Outer": [
            "Env",
            ["dev", "prod"],
            {
                "Fn::ForEach::Inner": [
                    "Size",
                    {"Ref": "Sizes"},
                    {"&{Env}${Size}": {"Name": {"Fn::Sub": "${Env}-${Size}"}, "Size": {"Ref": "Size"}}},
                ]
            },
        ]
    }

    expanded = expand_for_each(document, lambda value: ["s", "l"] if value == {"Ref": "Sizes"} else value)

    assert expanded == {
        "devs": {"Name": {"Fn::Sub": "dev-s"}, "Size": "s"},
        "devl": {"Name": {"Fn::Sub": "dev-l"}, "Size": "l"},
        "prods": {"Name": {"Fn::Sub": "prod-s"}, "Size": "s"},
        "prodl": {"Name": {"Fn::Sub": "prod-l"}, "Size": "l"},
    }


def test_a_for_each_that_produces_a_key_twice_is_refused() -> None:
    with pytest.raises(TemplateError, match="produced twice"):
        expand_for_each({"Fn::ForEach::Loop": ["X", ["a-b", "ab"], {"&{X}": {}}]}, lambda value: value)


class TestHttpApiRouting:
    @staticmethod
    def table(*routes: tuple[str, str], default: bool = False) -> RouteTable:
        every = [Route(method, path, f"{method} {path}", "Http") for method, path in routes]
        if default:
            every.append(Route("ANY", DEFAULT_ROUTE, "default", "Http"))
        return RouteTable(every, {"Http"})

    def test_a_more_specific_path_without_the_method_falls_through_to_a_greedy_one(self) -> None:
        table = self.table(("GET", "/items/{id}"), ("ANY", "/{proxy+}"))

        match = table.match("POST", "/items/1")

        assert match is not None
        assert match.route.function_id == "ANY /{proxy+}"
        assert match.path_parameters == {"proxy": "items/1"}

    def test_no_route_is_404_not_found_unless_a_default_route_exists(self) -> None:
        table = self.table(("GET", "/items"))

        assert table.match("GET", "/other") is None
        assert table.no_route.status == 404
        assert table.no_route.body == b'{"message":"Not Found"}'
        defaulted = self.table(("GET", "/items"), default=True).match("GET", "/other")
        assert defaulted is not None
        assert defaulted.route.function_id == "default"

    def test_a_rest_api_beside_keeps_403(self) -> None:
        table = RouteTable([Route("GET", "/a", "f", "Rest"), Route("GET", "/b", "f", "Http")], {"Http"})

        assert table.no_route.status == 403
        match = table.match("GET", "/b")
        assert match is not None
        assert match.route.api_id == "Http"


class TestV2Results:
    def test_a_list_result_is_200_json(self) -> None:
        response = http_proxy_response(b"[1, 2]", "2.0")

        assert (response.status, response.body) == (200, b"[1,2]")
        assert ("Content-Type", "application/json") in response.headers

    @pytest.mark.parametrize("status", ["600", "teapot", True])
    def test_a_status_code_that_is_no_http_status_is_malformed(self, status: object) -> None:
        with pytest.raises(MalformedProxyResponseError):
            http_proxy_response(json.dumps({"statusCode": status}).encode(), "2.0")

    def test_payload_1_0_results_keep_rest_rules_for_unknown_keys(self) -> None:
        with pytest.raises(MalformedProxyResponseError, match="unknown keys"):
            http_proxy_response(json.dumps({"statusCode": 200, "cookies": ["a=1"]}).encode(), "1.0")


@given(
    st.sampled_from(["text", "application", "image", "multipart"]), st.from_regex(r"[a-z0-9.+-]{1,12}", fullmatch=True)
)
def test_only_text_like_media_types_are_passed_as_text(main: str, sub: str) -> None:
    expected = (
        main == "text"
        or f"{main}/{sub}" in {"application/json", "application/xml", "application/javascript"}
        or (main == "application" and sub.endswith(("+json", "+xml")))
    )
    if f"{main}/{sub}" in {
        "application/x-javascript",
        "application/ecmascript",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/yaml",
    }:
        expected = True
    assert is_text_like(f"{main}/{sub}; charset=utf-8") is expected
