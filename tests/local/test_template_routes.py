"""The project's template as the local API reads it: its routes, function and binary media types."""

from __future__ import annotations

from pathlib import Path

from samlocal.template import read_stack

ROOT = Path(__file__).resolve().parents[2]


def test_the_project_template_serves_the_inference_function() -> None:
    stack = read_stack(ROOT / "template.yaml")
    routes = {(route.method, route.resource_path) for route in stack.routes}
    assert {("POST", "/predict"), ("POST", "/object_detection"), ("GET", "/models")} <= routes
    assert {route.function_id for route in stack.routes if route.integration is None} == {"InferenceFunction"}
    function = stack.functions["InferenceFunction"]
    assert function.handler == "app.lambda_handler"
    assert function.environment["MODELS_DIR"] == "/opt/models"
    api = next(iter(stack.apis.values()))
    assert {"multipart/form-data", "image/*"} <= set(api.binary_media_types)
    assert not any(route.api_key_required for route in stack.routes)


def test_the_project_template_with_api_keys_requires_them_and_leaves_preflights_to_api_gateway() -> None:
    stack = read_stack(ROOT / "template.yaml", {"ApiKeyRequired": "true"})
    at_predict = [route for route in stack.routes if route.resource_path == "/predict"]
    assert {route.method: route.api_key_required for route in at_predict} == {"POST": True, "OPTIONS": False}
    # OPTIONS is a mock integration, answered by API Gateway (and the local API) itself: the function never
    # sees a preflight.
    preflight = next(route for route in at_predict if route.method == "OPTIONS")
    assert preflight.integration is not None
    assert preflight.integration["type"] == "mock"
