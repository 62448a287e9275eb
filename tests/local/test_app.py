"""The project's own API (template.yaml, the inference function, its layers and the real models) served by
`python -m samlocal`, called over HTTP the way the README's curl examples do."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from requests_toolbelt import MultipartEncoder

from samlocal.testing import LocalApi
from sample_images import rotated_page
from support import ROOT, serve_directory

ORIENTATIONS = {"0", "90", "180", "270"}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    (folder / "upright.png").write_bytes(rotated_page(0))
    (folder / "turned.jpg").write_bytes(rotated_page(90, "JPEG"))
    return folder


@pytest.fixture(scope="module")
def image_server(images: Path) -> Iterator[str]:
    with serve_directory(images) as url:
        yield url


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("app") / "console.log"
    # Loopback URLs are refused unless allowed: the test image server listens on 127.0.0.1.
    env_vars = {"InferenceFunction": {"URL_ALLOWED_NETWORKS": "127.0.0.0/8"}}
    local_api = LocalApi(ROOT / "template.yaml", log, "--warm-containers", "eager", env_vars=env_vars)
    try:
        yield local_api
    finally:
        local_api.close()


def top_label(result: dict[str, object]) -> str:
    predictions = result["predictions"]
    assert isinstance(predictions, list)
    return str(predictions[0]["label"])


def test_health(app: LocalApi) -> None:
    response = app.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_models_are_listed(app: LocalApi) -> None:
    response = app.get("/models")
    assert response.status_code == 200
    assert {"orientation", "layout"} <= {model["name"] for model in response.json()["models"]}


def test_multipart_with_several_images_and_a_url(app: LocalApi, images: Path, image_server: str) -> None:
    form = MultipartEncoder(
        fields=[
            ("image", ("upright.png", (images / "upright.png").read_bytes(), "image/png")),
            ("image", ("turned.jpg", (images / "turned.jpg").read_bytes(), "image/jpeg")),
            ("url", f"{image_server}/turned.jpg"),
        ]
    )
    response = app.post(
        "/predict?model=orientation", data=form.to_string(), headers={"Content-Type": form.content_type}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["status"] for result in results] == ["ok", "ok", "ok"]
    assert [result["index"] for result in results] == [0, 1, 2]
    assert all({p["label"] for p in result["predictions"]} <= ORIENTATIONS for result in results)
    assert top_label(results[0]) == "0"
    assert top_label(results[1]) == top_label(results[2]) == "270"


def test_json_with_base64_and_a_url(app: LocalApi, images: Path, image_server: str) -> None:
    document = {
        "images": [
            {"base64": base64.b64encode((images / "upright.png").read_bytes()).decode()},
            {"url": f"{image_server}/upright.png"},
        ]
    }
    response = app.post("/predict?model=orientation", json=document)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [top_label(result) for result in results] == ["0", "0"]


def test_a_raw_image_body(app: LocalApi, images: Path) -> None:
    response = app.post(
        "/predict?model=orientation",
        data=(images / "turned.jpg").read_bytes(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    assert top_label(response.json()["results"][0]) == "270"


def test_object_detection_answers_boxes(app: LocalApi, images: Path) -> None:
    response = app.post(
        "/object_detection?model=layout",
        data=(images / "upright.png").read_bytes(),
        headers={"Content-Type": "image/png"},
    )
    assert response.status_code == 200, response.text
    detections = response.json()["results"][0]["detections"]
    assert detections
    assert {"label", "score", "box"} <= set(detections[0])


def test_object_detection_returns_a_jpeg_when_asked(app: LocalApi, images: Path) -> None:
    response = app.post(
        "/object_detection?model=layout",
        data=(images / "upright.png").read_bytes(),
        headers={"Content-Type": "image/png", "Accept": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "JPEG"
    assert picture.size == (800, 1100)


def test_the_allowed_networks_setting_comes_from_env_vars_only(app: LocalApi) -> None:
    # --env-vars allowed 127.0.0.0/8 (the test image server); other private addresses stay refused.
    response = app.post("/predict", json={"images": [{"url": "http://10.0.0.1/x.jpg"}]})
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result["status"] == "error"
    assert result["error"]["code"] == "url_forbidden"


def test_unknown_routes_are_api_gateways_403(app: LocalApi) -> None:
    response = app.get("/nothing-here")
    assert response.status_code == 403
    # the API's gateway responses (swagger.yaml) give API Gateway's own errors the project's error shape
    assert response.json() == {
        "error": {
            "code": "MISSING_AUTHENTICATION_TOKEN",
            "message": "Missing Authentication Token",
            "request_id": response.headers["x-amzn-RequestId"],
        }
    }


def test_a_preflight_is_the_mock_integrations_answer_without_cors_headers_by_default(app: LocalApi) -> None:
    response = app.request("OPTIONS", "/predict", headers={"Origin": "https://app.example.com"})
    assert response.status_code == 204
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def test_a_preflight_carries_the_configured_origin(tmp_path: Path) -> None:
    origin = "https://app.example.com"
    local_api = LocalApi(
        ROOT / "template.yaml", tmp_path / "console.log", "--parameter-overrides", f"CorsAllowOrigin={origin}"
    )
    try:
        response = local_api.request("OPTIONS", "/predict", headers={"Origin": origin})
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "[InferenceFunction] START" not in local_api.output()
        # the gateway's own errors carry the origin too (DEFAULT_4XX's response parameters)
        missing = local_api.get("/nothing-here", headers={"Origin": origin})
        assert missing.status_code == 403
        assert missing.headers["Access-Control-Allow-Origin"] == origin
        assert missing.headers["Access-Control-Expose-Headers"] == "X-Detections"
    finally:
        local_api.close()
