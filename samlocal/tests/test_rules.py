"""The rules the emulator applies, each on its own: route resolution, media types, proxy responses, and
what an execution environment sees instead of /opt."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samlocal.cli import _parameter_overrides
from samlocal.events import (
    MalformedProxyResponseError,
    encode_event,
    first_accept,
    matches_media_type,
    proxy_response,
)
from samlocal.routing import RouteTable
from samlocal.sandbox import EnvVarsError, build_opt_dir, read_env_vars, rewrite_opt, worker_environment
from samlocal.template import Function, Layer, Route


def table(*routes: tuple[str, str]) -> RouteTable:
    return RouteTable(Route(method, path, f"{method} {path}", "Api") for method, path in routes)


class TestRouting:
    routes = table(
        ("GET", "/"),
        ("GET", "/models"),
        ("GET", "/models/{name}"),
        ("GET", "/models/special"),
        ("POST", "/models/{name}/versions/{version}"),
        ("ANY", "/files/{proxy+}"),
        ("GET", "/files/{proxy+}"),
        ("ANY", "/{proxy+}"),
    )

    @pytest.mark.parametrize(
        ("method", "path", "route", "parameters"),
        [
            ("GET", "/", "GET /", {}),
            ("GET", "/models", "GET /models", {}),
            ("GET", "/models/", "GET /models", {}),
            ("GET", "/models/special", "GET /models/special", {}),
            ("GET", "/models/layout", "GET /models/{name}", {"name": "layout"}),
            ("POST", "/models/a/versions/2", "POST /models/{name}/versions/{version}", {"name": "a", "version": "2"}),
            ("GET", "/files/a/b.txt", "GET /files/{proxy+}", {"proxy": "a/b.txt"}),
            ("DELETE", "/files/a/b.txt", "ANY /files/{proxy+}", {"proxy": "a/b.txt"}),
            ("POST", "/anything/else", "ANY /{proxy+}", {"proxy": "anything/else"}),
            ("GET", "/models/a%2Fb", "GET /models/{name}", {"name": "a%2Fb"}),
        ],
    )
    def test_the_most_specific_resource_then_its_method(
        self, method: str, path: str, route: str, parameters: dict[str, str]
    ) -> None:
        match = self.routes.match(method, path)
        assert match is not None
        assert match.route.function_id == route
        assert match.path_parameters == parameters

    @pytest.mark.parametrize(("method", "path"), [("POST", "/models"), ("DELETE", "/models/layout"), ("POST", "/")])
    def test_a_resource_without_the_method_does_not_match(self, method: str, path: str) -> None:
        assert self.routes.match(method, path) is None

    def test_a_greedy_parameter_needs_at_least_one_segment(self) -> None:
        assert table(("ANY", "/{proxy+}")).match("GET", "/") is None
        assert table(("GET", "/files/{proxy+}")).match("GET", "/files") is None


class TestMediaTypes:
    @pytest.mark.parametrize(
        ("value", "patterns", "expected"),
        [
            ("image/png", ["image/*"], True),
            ("IMAGE/PNG; q=1", ["image/png"], True),
            ("multipart/form-data; boundary=x", ["multipart/form-data"], True),
            ("application/json", ["*/*"], True),
            ("application/json", ["image/*", "application/octet-stream"], False),
            ("*/*", ["image/*"], False),
            (None, ["*/*"], False),
        ],
    )
    def test_matching(self, value: str | None, patterns: list[str], expected: bool) -> None:
        assert matches_media_type(value, patterns) is expected

    def test_only_the_first_accept_type_is_considered(self) -> None:
        assert first_accept("image/jpeg, application/json;q=0.9") == "image/jpeg"
        assert first_accept(None) is None


def result(**fields: object) -> bytes:
    return json.dumps(fields).encode()


class TestProxyResponse:
    def test_a_minimal_result(self) -> None:
        response = proxy_response(result(statusCode=204), None, [])
        assert response.status == 204
        assert response.body == b""
        assert response.headers == [("Content-Type", "application/json")]

    def test_a_status_code_may_be_a_string(self) -> None:
        assert proxy_response(result(statusCode="404", body="no"), None, []).status == 404

    def test_headers_and_multi_value_headers_merge_without_duplicates(self) -> None:
        response = proxy_response(
            result(
                statusCode=200,
                headers={"Set-Cookie": "a=1", "X-One": 1},
                multiValueHeaders={"Set-Cookie": ["a=1", "b=2"]},
            ),
            None,
            [],
        )
        assert response.headers[:3] == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-One", "1")]

    def test_base64_is_decoded_only_when_accept_is_binary(self) -> None:
        encoded = result(statusCode=200, body=base64.b64encode(b"\xff\xd8").decode(), isBase64Encoded=True)
        assert proxy_response(encoded, "image/jpeg", ["image/*"]).body == b"\xff\xd8"
        assert proxy_response(encoded, "application/json", ["image/*"]).body == b"/9g="
        assert proxy_response(encoded, None, ["image/*"]).body == b"/9g="

    @pytest.mark.parametrize(
        "payload",
        [
            b"not json",
            b"[1, 2]",
            result(statusCode=200, body={"a": 1}),
            result(statusCode=200, extra=True),
            result(body="no status"),
            result(statusCode=99),
            result(statusCode=200, headers={"X": ["a"]}),
            result(statusCode=200, multiValueHeaders={"X": "a"}),
            result(statusCode=200, isBase64Encoded="maybe"),
        ],
    )
    def test_a_malformed_result_is_refused(self, payload: bytes) -> None:
        with pytest.raises(MalformedProxyResponseError):
            proxy_response(payload, None, [])


@given(st.binary(max_size=2048), st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4))
def test_a_spliced_base64_event_is_the_json_of_the_event(body: bytes, extra: dict[str, str]) -> None:
    event = {"resource": "/x", "extra": extra, "body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    assert json.loads(encode_event(event)) == event


class TestSandbox:
    def test_opt_paths_are_rewritten_to_the_functions_opt_directory(self) -> None:
        opt = Path("/tmp/samlocal-opt/Fn")
        assert rewrite_opt("/opt/models", opt) == "/tmp/samlocal-opt/Fn/models"
        assert rewrite_opt("/opt", opt) == "/tmp/samlocal-opt/Fn"
        assert rewrite_opt("/optional", opt) == "/optional"
        assert rewrite_opt("s3://bucket/opt/x", opt) == "s3://bucket/opt/x"

    def test_layers_are_merged_into_one_opt_directory(self, tmp_path: Path) -> None:
        first, second = tmp_path / "first", tmp_path / "second"
        for layer, name in ((first, "a"), (second, "b")):
            (layer / "python").mkdir(parents=True)
            (layer / "python" / f"{name}.py").write_text(name)
            (layer / "Makefile").write_text("ignored")
        (first / "models").mkdir()
        (first / "models" / "m.onnx").write_text("model")
        (second / "models").mkdir()
        (second / "models" / "n.onnx").write_text("other")
        opt = build_opt_dir((Layer("First", first, False), Layer("Second", second, False)), tmp_path / "opt")
        assert sorted(path.name for path in opt.iterdir()) == ["models", "python"]
        assert (opt / "python" / "a.py").read_text() == "a"
        assert (opt / "python" / "b.py").read_text() == "b"
        assert sorted(path.name for path in (opt / "models").iterdir()) == ["m.onnx", "n.onnx"]

    def test_a_requirements_layer_contributes_no_python_directory(self, tmp_path: Path) -> None:
        deps = tmp_path / "deps"
        (deps / "python" / "numpy").mkdir(parents=True)
        (deps / "requirements.txt").write_text("numpy\n")
        opt = build_opt_dir((Layer("Deps", deps, True),), tmp_path / "opt")
        assert list(opt.iterdir()) == []

    def test_variables_in_order_of_precedence(self, tmp_path: Path) -> None:
        function = Function(
            logical_id="Fn",
            name="fn-name",
            handler="app.handler",
            runtime="python3.13",
            code_dir=tmp_path,
            layers=(),
            timeout=3,
            memory_size=1024,
            architecture="arm64",
            environment={
                "A": "template",
                "B": "template",
                "MODELS_DIR": "/opt/models",
                "AWS_LAMBDA_FUNCTION_NAME": "x",
            },
        )
        env_vars = {"Parameters": {"B": "all", "C": "all"}, "fn-name": {"C": "by name"}, "Fn": {"D": "by id"}}
        variables = worker_environment(function, tmp_path / "opt", "127.0.0.1:9001", env_vars, "stream")
        assert (variables["A"], variables["B"], variables["C"], variables["D"]) == (
            "template",
            "all",
            "by name",
            "by id",
        )
        assert variables["MODELS_DIR"] == str(tmp_path / "opt" / "models")
        assert variables["AWS_LAMBDA_FUNCTION_NAME"] == "fn-name"  # reserved: the template cannot set it
        assert variables["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
        assert variables["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
        assert variables["PYTHONPATH"] == str(tmp_path)

    def test_env_vars_files_in_sams_format(self, tmp_path: Path) -> None:
        path = tmp_path / "env.json"
        path.write_text('{"Parameters": {"N": 1, "B": true}, "Fn": {"X": null}}')
        assert read_env_vars(path) == {"Parameters": {"N": "1", "B": "true"}, "Fn": {"X": ""}}
        path.write_text('{"Fn": "not a map"}')
        with pytest.raises(EnvVarsError):
            read_env_vars(path)
        assert read_env_vars(None) == {}


@pytest.mark.parametrize(
    "values",
    [["Stage=prod Memory=512"], ["Stage=prod", "Memory=512"], ["ParameterKey=Stage,ParameterValue=prod Memory=512"]],
)
def test_parameter_overrides_in_both_of_sams_spellings(values: list[str]) -> None:
    assert _parameter_overrides(values) == {"Stage": "prod", "Memory": "512"}
