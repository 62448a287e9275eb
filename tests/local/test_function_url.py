"""The project's inference function behind a Lambda Function URL, served by `python -m samlocal`: the same
routes answer Function URL events (Powertools' LambdaFunctionUrlResolver) with the real models.

The template is template.yaml with a `FunctionUrlConfig` added to InferenceFunction, written at test time so
it follows the project's template as it changes (its relative paths made absolute)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from samlocal.intrinsics import load_document
from samlocal.testing import LocalApi
from sample_images import rotated_page
from support import ROOT

_LOCAL_PATHS = frozenset({"CodeUri", "ContentUri", "Location", "DefinitionUri"})


def _rebased(value: Any) -> Any:
    """The template's local paths (code, layers, included files) made absolute, everything else as it is."""
    if isinstance(value, dict):
        return {
            key: str(ROOT / item)
            if key in _LOCAL_PATHS and isinstance(item, str) and "://" not in item and (ROOT / item).exists()
            else _rebased(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_rebased(item) for item in value]
    return value


def template_with_function_url(folder: Path) -> Path:
    document = _rebased(load_document(ROOT / "template.yaml"))
    properties = document["Resources"]["InferenceFunction"]["Properties"]
    properties["FunctionUrlConfig"] = {"AuthType": "NONE", "Cors": {"AllowOrigins": ["https://app.example"]}}
    path = folder / "template.json"
    path.write_text(json.dumps(document, indent=1, default=str))
    return path


@pytest.fixture(scope="module")
def function_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalApi, str]]:
    folder = tmp_path_factory.mktemp("function_url")
    local_api = LocalApi(template_with_function_url(folder), folder / "console.log", "--warm-containers", "eager")
    try:
        yield local_api, local_api.function_urls["InferenceFunction"]
    finally:
        local_api.close()


def test_a_raw_image_is_classified_through_the_function_url(function_url: tuple[LocalApi, str]) -> None:
    _, url = function_url
    response = requests.post(
        f"{url}/predict?model=orientation",
        data=rotated_page(90, "JPEG"),
        headers={"Content-Type": "image/jpeg", "Origin": "https://app.example"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["status"] == "ok"
    assert result["predictions"][0]["label"] == "270"
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-amz-apigw-id" not in response.headers


def test_a_multipart_upload_is_classified_through_the_function_url(function_url: tuple[LocalApi, str]) -> None:
    _, url = function_url
    form = MultipartEncoder(
        fields=[
            ("image", ("upright.png", rotated_page(0), "image/png")),
            ("image", ("turned.jpg", rotated_page(90, "JPEG"), "image/jpeg")),
        ]
    )
    response = requests.post(
        f"{url}/predict?model=orientation",
        data=form.to_string(),
        headers={"Content-Type": form.content_type},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["predictions"][0]["label"] for result in results] == ["0", "270"]


def test_the_api_and_the_function_url_answer_alike(function_url: tuple[LocalApi, str]) -> None:
    local_api, url = function_url
    through_url = requests.get(f"{url}/models", timeout=60)
    through_api = local_api.get("/models")
    assert through_url.status_code == through_api.status_code == 200
    assert through_url.json() == through_api.json()
    unknown = requests.get(f"{url}/no-such-route", timeout=60)
    assert unknown.status_code == 404  # the function's own answer: a Function URL routes every path to it
    assert unknown.json()["error"]["code"]
