"""The inference API as API Gateway calls it: events from events/ (or built the same way), real models."""

from __future__ import annotations

import base64
import copy
import dataclasses
import importlib
import io
import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import app
import init_phase
import make_events
import sample_images
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.models import ModelStore
from support import LambdaContext, load_event, serve_directory


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    raw: dict[str, Any]

    @property
    def json(self) -> Any:
        assert self.raw["isBase64Encoded"] is False
        return json.loads(self.raw["body"])

    @property
    def error_code(self) -> str:
        code: str = self.json["error"]["code"]
        return code

    @property
    def content_type(self) -> str:
        return self.headers["Content-Type"][0]


def invoke(event: dict[str, Any]) -> Answer:
    response = app.lambda_handler(copy.deepcopy(event), LambdaContext())
    return Answer(int(response["statusCode"]), dict(response["multiValueHeaders"]), response)


def labels(result: dict[str, Any]) -> list[str]:
    return [prediction["label"] for prediction in result["predictions"]]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def box(detection: dict[str, Any]) -> tuple[float, float, float, float]:
    b = detection["box"]
    return (b["x1"], b["y1"], b["x2"], b["y2"])


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the function logs during the test (the JSON lines CloudWatch would get)."""
    stream = io.StringIO()
    handler = app.logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    handler.setStream(previous)  # type: ignore[attr-defined]


# -- Classification -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("turned_counter_clockwise", "expected"), [(0, "0"), (90, "270"), (180, "180"), (270, "90")])
def test_a_rendered_page_turned_by_a_quarter_is_classified_by_its_orientation(
    turned_counter_clockwise: int, expected: str
) -> None:
    body = sample_images.rotated_page(turned_counter_clockwise)
    answer = invoke(make_events.post("orientation", "/predict", body, "image/png", query=[("model", "orientation")]))

    assert answer.status == 200
    (result,) = answer.json["results"]
    assert result["status"] == "ok"
    assert labels(result)[0] == expected
    assert result["predictions"][0]["score"] > 0.5


def test_multipart_results_keep_the_order_of_the_parts_with_per_part_errors() -> None:
    answer = invoke(load_event("predict_multipart"))

    assert answer.status == 200
    body = answer.json
    assert body["model"]["name"] == "orientation"
    assert body["parameters"] == {"top_k": 2}
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["source"] for r in results] == [
        "page.png",
        "page_turned_left.jpg",
        make_events.METADATA_URL,
        "page_upside_down.jpg",
    ]
    assert [r["status"] for r in results] == ["ok", "ok", "error", "ok"]
    assert labels(results[0])[0] == "0"
    assert labels(results[1])[0] == "270"
    assert results[2]["error"]["code"] == "url_forbidden"
    assert labels(results[3])[0] == "180"
    assert all(len(r["predictions"]) == 2 for r in results if r["status"] == "ok")
    assert (results[0]["width"], results[0]["height"]) == (800, 1100)
    assert (results[1]["width"], results[1]["height"]) == (1100, 800)
    assert body["succeeded"] == 3
    assert body["failed"] == 1


def test_json_body_with_base64_image_and_a_forbidden_url() -> None:
    answer = invoke(load_event("predict_json"))

    results = answer.json["results"]
    assert answer.status == 200
    assert results[0]["source"] == "page_turned_right.png"
    assert labels(results[0])[0] == "90"
    assert results[1]["status"] == "error"
    assert results[1]["error"]["code"] == "url_forbidden"


def test_raw_jpeg_body() -> None:
    answer = invoke(load_event("predict_raw"))

    (result,) = answer.json["results"]
    assert result["source"] == "body"
    assert labels(result)[0] == "270"
    assert len(result["predictions"]) == 4  # top_k defaults to 5; the model has 4 labels


def test_the_photo_classifier_reads_nhwc_bgr_input() -> None:
    answer = invoke(load_event("predict_nsfw"))

    assert answer.status == 200
    assert answer.json["model"]["name"] == "nsfw"
    (result,) = answer.json["results"]
    assert labels(result) == ["sfw", "nsfw"]
    assert result["predictions"][0]["score"] > 0.9
    assert (result["width"], result["height"]) == (512, 600)


def test_header_names_and_base64_flag_are_honoured_whatever_they_say() -> None:
    event = load_event("predict_json")
    event["headers"] = {"CONTENT-TYPE": "application/json"}
    event["multiValueHeaders"] = {"CONTENT-TYPE": ["application/json"]}
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True

    answer = invoke(event)

    assert answer.status == 200
    assert labels(answer.json["results"][0])[0] == "90"


# -- Detection ------------------------------------------------------------------------------------------------


def test_a_rendered_page_yields_title_text_and_figure_in_their_regions() -> None:
    _, layout = sample_images.render_page()
    answer = invoke(load_event("detect_raw"))

    assert answer.status == 200
    body = answer.json
    assert body["model"]["name"] == "layout"
    assert body["parameters"] == {"threshold": 0.4, "iou": 0.5, "max_detections": 100}
    detections = body["results"][0]["detections"]
    by_label: dict[str, list[tuple[float, float, float, float]]] = {}
    for detection in detections:
        by_label.setdefault(detection["label"], []).append(box(detection))
    assert max(iou(b, layout.title) for b in by_label["title"]) > 0.5
    assert max(iou(b, layout.figure) for b in by_label["figure"]) > 0.7
    for block in layout.text_blocks:
        assert max(iou(b, block) for b in by_label["text"]) > 0.7
    scores = [d["score"] for d in detections]
    assert scores == sorted(scores, reverse=True)


def test_boxes_are_in_original_pixels_of_each_image() -> None:
    _, layout = sample_images.render_page()
    answer = invoke(load_event("detect_multipart"))

    upright, upside_down = answer.json["results"]
    assert [upright["source"], upside_down["source"]] == ["page.png", "page_upside_down.jpg"]
    figure_upright = next(box(d) for d in upright["detections"] if d["label"] == "figure")
    figure_turned = next(box(d) for d in upside_down["detections"] if d["label"] == "figure")
    x1, y1, x2, y2 = layout.figure
    turned = (800 - x2, 1100 - y2, 800 - x1, 1100 - y1)  # the same region after a half turn
    assert iou(figure_upright, layout.figure) > 0.7
    assert iou(figure_turned, turned) > 0.7


def test_detection_takes_json_bodies_too() -> None:
    page, layout = sample_images.render_page()
    document = {"images": [{"base64": base64.b64encode(sample_images.encode(page)).decode(), "name": "page.png"}]}
    event = make_events.post_json("detect_json", "/object_detection", document, query=[("model", "layout")])

    answer = invoke(event)

    assert answer.status == 200
    (result,) = answer.json["results"]
    assert result["source"] == "page.png"
    figure = next(box(d) for d in result["detections"] if d["label"] == "figure")
    assert iou(figure, layout.figure) > 0.7


def test_accept_image_jpeg_returns_the_picture_with_its_boxes() -> None:
    answer = invoke(load_event("detect_annotated"))

    assert answer.status == 200
    assert answer.content_type == "image/jpeg"
    assert answer.raw["isBase64Encoded"] is True
    picture = Image.open(io.BytesIO(base64.b64decode(answer.raw["body"])))
    assert picture.format == "JPEG"
    assert picture.size == (800, 1100)
    assert int(answer.headers["X-Detections"][0]) >= 4
    # The figure's outline is drawn in colour where the page was white.
    x1, y1 = (round(v) for v in sample_images.render_page()[1].figure[:2])
    outline = [picture.getpixel((x, y1 - 8)) for x in range(x1 - 10, x1 + 10)]
    assert any(pixel != (255, 255, 255) for pixel in outline)


def test_detection_parameters_narrow_the_results() -> None:
    event = load_event("detect_raw")
    event["queryStringParameters"] = {"model": "layout", "threshold": "0.9", "max_detections": "1"}
    event["multiValueQueryStringParameters"] = {"model": ["layout"], "threshold": ["0.9"], "max_detections": ["1"]}

    detections = invoke(event).json["results"][0]["detections"]

    assert len(detections) == 1
    assert detections[0]["score"] >= 0.9


# -- Models and health ----------------------------------------------------------------------------------------


def test_models_are_listed_with_their_defaults() -> None:
    answer = invoke(load_event("models"))

    assert answer.status == 200
    body = answer.json
    assert {m["name"]: m["task"] for m in body["models"]} == {
        "imagenet": "classification",
        "faces": "detection",
        "orientation": "classification",
        "layout": "detection",
        "nsfw": "classification",
    }
    assert body["defaults"] == {"classification": "imagenet", "detection": "faces"}
    assert all(len(m["sha256"]) == 64 for m in body["models"])


def test_a_model_is_described_with_input_spec_and_labels() -> None:
    answer = invoke(load_event("model_layout"))

    assert answer.status == 200
    body = answer.json
    assert body["task"] == "detection"
    assert body["input"]["shape"] == [None, 3, 800, 608]
    assert body["input"]["name"] == "image"
    assert body["labels"][:3] == ["text", "title", "figure"]
    assert len(body["labels"]) == 10
    assert body["sha256"] == "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c"
    assert body["defaults"] == {"threshold": 0.5, "iou": 0.5, "max_detections": 100}


def test_health_is_ready_when_the_default_models_load() -> None:
    answer = invoke(load_event("health"))

    assert answer.status == 200
    assert answer.json["status"] == "ready"
    assert answer.json["models"] == {"imagenet": "loaded", "faces": "loaded"}


# -- Bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_name", "status", "code"),
    [
        ("bad_multipart_no_boundary", 400, "invalid_multipart"),
        ("bad_multipart_body", 400, "invalid_multipart"),
        ("bad_json", 400, "invalid_json"),
        ("bad_json_shape", 422, "invalid_parameter"),
        ("bad_base64_item", 400, "invalid_base64"),
        ("unsupported_media_type", 415, "unsupported_media_type"),
        ("no_images", 400, "no_images"),
        ("too_many_images", 422, "too_many_images"),
        ("unknown_model", 404, "model_not_found"),
        ("wrong_task", 422, "wrong_model_task"),
        ("invalid_top_k", 422, "invalid_parameter"),
        ("invalid_threshold", 422, "invalid_parameter"),
        ("not_acceptable", 406, "not_acceptable"),
        ("annotated_two_images", 406, "not_acceptable"),
    ],
)
def test_bad_requests_get_a_documented_status_and_code(event_name: str, status: int, code: str) -> None:
    event = load_event(event_name)
    answer = invoke(event)

    assert answer.status == status
    assert answer.content_type == "application/json"
    assert answer.error_code == code
    assert len(answer.json["error"]["message"]) > 20
    assert answer.json["error"]["request_id"] == event["requestContext"]["requestId"]


def test_a_body_marked_base64_that_is_not_is_a_400() -> None:
    event = load_event("predict_raw")
    event["body"] = "%%% not base64 %%%"

    answer = invoke(event)

    assert answer.status == 400
    assert answer.error_code == "invalid_base64"


def test_a_body_over_the_limit_is_a_413_that_states_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "settings", dataclasses.replace(app.settings, max_body_bytes=100_000))

    answer = invoke(load_event("predict_multipart"))

    assert answer.status == 413
    assert answer.error_code == "body_too_large"
    assert "100,000" in answer.json["error"]["message"]
    assert answer.json["error"]["details"]["limit_bytes"] == 100_000


def test_undecodable_oversized_and_empty_images_fail_alone() -> None:
    answer = invoke(load_event("bad_images"))

    assert answer.status == 200
    results = answer.json["results"]
    assert [r["status"] for r in results] == ["error", "error", "error", "error", "ok"]
    assert [r.get("error", {}).get("code") for r in results[:4]] == [
        "image_undecodable",
        "image_undecodable",
        "image_too_large",
        "image_empty",
    ]
    assert "10,000x5,000" in results[2]["error"]["message"] or "10000x5000" in results[2]["error"]["message"]
    assert labels(results[4])[0] == "0"
    assert answer.json["failed"] == 4


def test_an_unexpected_failure_is_a_500_with_the_request_id_and_no_trace(
    monkeypatch: pytest.MonkeyPatch, logs: io.StringIO
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(app.pipeline, "classify", explode)
    event = load_event("predict_raw")

    answer = invoke(event)

    assert answer.status == 500
    assert answer.error_code == "internal_error"
    assert answer.json["error"]["request_id"] == event["requestContext"]["requestId"]
    assert "internal detail" not in answer.raw["body"]
    assert "Traceback" not in answer.raw["body"]
    assert "internal detail" in logs.getvalue()  # logged for the operator


def test_logs_carry_the_request_id_and_never_the_image(logs: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    event = load_event("predict_raw")
    capsys.readouterr()

    invoke(event)

    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert lines
    assert all(line["correlation_id"] == event["requestContext"]["requestId"] for line in lines)
    assert event["body"][1000:1100] not in logs.getvalue()
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("Images") == [1.0] and m.get("Model") == "orientation" for m in metrics)


# -- URL inputs -----------------------------------------------------------------------------------------------


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "page.png").write_bytes(sample_images.rotated_page(180))
    with serve_directory(tmp_path) as url:
        yield url


def test_url_parts_are_fetched_and_keep_their_place(monkeypatch: pytest.MonkeyPatch, image_server: str) -> None:
    policy = dataclasses.replace(
        FetchPolicy.from_settings(app.settings), allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    monkeypatch.setattr(app.pipeline, "fetcher", UrlFetcher(policy))
    event = make_events.post_multipart(
        "urls",
        "/predict",
        [
            ("url", f"{image_server}/page.png"),
            ("image", ("page.png", sample_images.rotated_page(0), "image/png")),
            ("url", f"{image_server}/missing.png"),
        ],
        query=[("model", "orientation")],
    )

    results = invoke(event).json["results"]

    assert [r["source"] for r in results] == [f"{image_server}/page.png", "page.png", f"{image_server}/missing.png"]
    assert labels(results[0])[0] == "180"
    assert labels(results[1])[0] == "0"
    assert results[2]["error"]["code"] == "url_http_error"


# -- Health and CORS ------------------------------------------------------------------------------------------


def test_health_is_503_while_a_default_model_cannot_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    models = app.model_store()
    broken = {
        name: dataclasses.replace(spec, sha256="0" * 64) if name == "faces" else spec
        for name, spec in models.registry.specs.items()
    }
    registry = dataclasses.replace(models.registry, specs=broken)
    monkeypatch.setattr(app, "store", ModelStore(registry, app.settings))

    answer = invoke(load_event("health"))

    assert answer.status == 503
    assert answer.json["status"] == "unavailable"
    assert answer.json["error"]["code"] == "model_unavailable"
    assert "faces" in answer.json["error"]["message"]
    detect = invoke(load_event("detect_faces"))
    assert detect.status == 503
    assert detect.error_code == "model_unavailable"


@pytest.fixture
def app_with_cors(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CORS_ALLOW_ORIGIN", "https://app.example.com")
    monkeypatch.setenv("PRELOAD_MODELS", "false")
    importlib.reload(init_phase)  # the settings are read there, first thing in the function's init
    importlib.reload(app)
    yield app
    monkeypatch.undo()
    importlib.reload(init_phase)
    importlib.reload(app)


def from_origin(event: dict[str, Any], origin: str) -> dict[str, Any]:
    event["headers"]["Origin"] = origin
    event["multiValueHeaders"]["Origin"] = [origin]
    return event


def test_cors_headers_come_from_settings(app_with_cors: Any) -> None:
    answer = invoke(from_origin(load_event("models"), "https://app.example.com"))

    assert answer.status == 200
    assert answer.headers["Access-Control-Allow-Origin"] == ["https://app.example.com"]
    refused = invoke(from_origin(load_event("unknown_model"), "https://app.example.com"))
    assert refused.status == 404
    assert refused.headers["Access-Control-Allow-Origin"] == ["https://app.example.com"]
    other = invoke(from_origin(load_event("models"), "https://evil.example.net"))
    assert "Access-Control-Allow-Origin" not in other.headers


def test_no_cors_headers_unless_configured() -> None:
    answer = invoke(from_origin(load_event("models"), "https://app.example.com"))

    assert "Access-Control-Allow-Origin" not in answer.headers


def test_an_annotated_jpeg_that_was_decoded_reduced_is_drawn_at_full_size() -> None:
    page = sample_images.large_jpeg()  # 1224x1632: decoded at 1/2 for the 608x800 network
    event = make_events.post(
        "annotated_large", "/object_detection", page, "image/jpeg", headers={"Accept": "image/png"}
    )

    answer = invoke(event)

    assert answer.status == 200
    assert answer.content_type == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(answer.raw["body"]))).size == (1224, 1632)
