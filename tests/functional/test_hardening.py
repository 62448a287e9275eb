"""What a user sees when a request is large, malformed, slow or asks for an answer that could not be delivered."""

from __future__ import annotations

import base64
import copy
import dataclasses
import http.server
import io
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

import app
import make_events
import sample_images
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.settings import LAMBDA_PAYLOAD_LIMIT
from support import LambdaContext

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


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

    @property
    def picture(self) -> Image.Image:
        assert self.raw["isBase64Encoded"] is True
        return Image.open(io.BytesIO(base64.b64decode(self.raw["body"])))


def invoke(event: dict[str, Any], context: LambdaContext | None = None) -> Answer:
    response = app.lambda_handler(copy.deepcopy(event), context or LambdaContext())
    return Answer(int(response["statusCode"]), dict(response["multiValueHeaders"]), response)


def flat_png(side: int = 6000) -> bytes:
    """A single-colour PNG of side x side: 4.4 KB for 6000x6000, 108 MB once decoded to RGB."""
    image = Image.new("P", (side, side), 0)
    image.putpalette([200, 30, 30, 0, 0, 0])
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True, bits=1)
    return buffer.getvalue()


def page_png() -> bytes:
    return sample_images.rotated_page(0)


def with_query(event: dict[str, Any], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The event with this query string, as API Gateway lays it out (last value, and all of them)."""
    event = copy.deepcopy(event)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    event["queryStringParameters"] = single or None
    event["multiValueQueryStringParameters"] = multi or None
    return event


# -- Memory: the request pixel budget -------------------------------------------------------------------------


def test_images_past_the_request_pixel_budget_get_their_own_error_and_the_first_ones_are_answered() -> None:
    """Five 36-megapixel PNGs (22 KB in all): the default budget of 160 megapixels takes four of them."""
    png = flat_png()
    fields = [("image", (f"{index}.png", png, "image/png")) for index in range(5)]

    answer = invoke(make_events.post_multipart("budget", "/predict", fields))

    assert answer.status == 200
    body = answer.json
    assert (body["succeeded"], body["failed"]) == (4, 1)
    assert [r["status"] for r in body["results"]] == ["ok"] * 4 + ["error"]
    assert all((r["width"], r["height"]) == (6000, 6000) for r in body["results"][:4])
    error = body["results"][4]["error"]
    assert error["code"] == "pixel_budget_exceeded"
    assert error["message"] == (
        "The image is 6000x6000 = 36,000,000 pixels, and the images before it in this request already take"
        " 144,000,000 of the 160,000,000 pixels one request may decode (MAX_REQUEST_PIXELS)."
        " Send this image in another request."
    )


def test_the_budget_counts_in_request_order_so_a_small_image_after_a_refused_one_is_answered() -> None:
    png = flat_png()
    fields = [("image", (f"{index}.png", png, "image/png")) for index in range(5)]
    fields.append(("image", ("page.png", page_png(), "image/png")))

    event = make_events.post_multipart("budget_order", "/predict", fields, query=[("model", "orientation")])
    results = invoke(event).json["results"]

    assert [r["status"] for r in results] == ["ok"] * 4 + ["error", "ok"]
    assert results[5]["predictions"][0]["label"] == "0"


# -- Malformed requests answer 4xx --------------------------------------------------------------------------------

URL_AND_IMAGE = (
    b'--abc\r\nContent-Disposition: form-data; name="image"; filename="page.png"\r\nContent-Type: image/png\r\n\r\n'
)


def raw_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    return make_events.post("raw_multipart", "/predict", body, content_type, query=[("model", "orientation")])


@pytest.mark.parametrize("parameter", ["boundary = abc", "boundary*=utf-8''abc", 'boundary="abc"'])
def test_a_boundary_with_spaces_or_in_rfc_2231_form_is_read(parameter: str) -> None:
    body = URL_AND_IMAGE + page_png() + b"\r\n--abc--\r\n"

    answer = invoke(raw_multipart(f"multipart/form-data; {parameter}", body))

    assert answer.status == 200
    assert answer.json["results"][0]["predictions"][0]["label"] == "0"


def test_a_url_part_that_is_not_utf8_is_a_400() -> None:
    body = b'--abc\r\nContent-Disposition: form-data; name="url"\r\n\r\nhttps://example.com/\xe9.png\r\n--abc--\r\n'

    answer = invoke(raw_multipart("multipart/form-data; boundary=abc", body))

    assert (answer.status, answer.error_code) == (400, "invalid_multipart")
    assert answer.json["error"]["message"].startswith("Part 1 (`url`) is not UTF-8 text")


def test_deeply_nested_json_is_a_400() -> None:
    answer = invoke(make_events.post("nested", "/predict", b"[" * 1024, "application/json"))

    assert (answer.status, answer.error_code) == (400, "invalid_json")


# -- Browser forms and query parameters ----------------------------------------------------------------------------


def test_a_browser_form_with_nothing_chosen_is_no_images() -> None:
    fields = [("image", ("", b"", "application/octet-stream")), ("url", "")]

    answer = invoke(make_events.post_multipart("empty_form", "/predict", fields))

    assert (answer.status, answer.error_code) == (400, "no_images")


def test_an_empty_file_input_beside_a_chosen_file_is_skipped() -> None:
    fields = [("image", ("", b"", "application/octet-stream")), ("image", ("page.png", page_png(), "image/png"))]

    body = invoke(make_events.post_multipart("half_form", "/predict", fields)).json

    assert (body["succeeded"], body["failed"]) == (1, 0)
    assert [r["source"] for r in body["results"]] == ["page.png"]


@pytest.mark.parametrize("query", [[("model", "")], [("model", ""), ("top_k", "")]])
def test_empty_query_parameters_mean_the_defaults(query: list[tuple[str, str]]) -> None:
    event = with_query(make_events.post("empty_model", "/predict", page_png(), "image/png"), query)

    answer = invoke(event)

    assert answer.status == 200
    assert answer.json["model"]["name"] == "imagenet"  # the classification default
    assert answer.json["parameters"] == {"top_k": 5}


@pytest.mark.parametrize(("name", "values"), [("top_k", ["1", "2"]), ("model", ["nsfw", "orientation"])])
def test_a_repeated_query_parameter_is_refused_as_repeated(name: str, values: list[str]) -> None:
    event = with_query(
        make_events.post("repeated", "/predict", page_png(), "image/png"), [(name, value) for value in values]
    )

    answer = invoke(event)

    assert (answer.status, answer.error_code) == (422, "invalid_parameter")
    assert answer.json["error"]["details"] == [{"loc": f"query.{name}", "message": "repeated (2 values); give it once"}]


# -- Formats ----------------------------------------------------------------------------------------------------


def encoded(image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buffer, image_format)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning")
@pytest.mark.parametrize("image_format", ["DDS", "ICO", "PCX", "PPM", "QOI", "SGI", "TGA", "IM"])
def test_formats_the_api_does_not_document_are_refused_per_image(image_format: str) -> None:
    fields = [
        ("image", (f"a.{image_format.lower()}", encoded(image_format), "application/octet-stream")),
        ("image", ("page.png", page_png(), "image/png")),
    ]

    results = invoke(make_events.post_multipart("formats", "/predict", fields)).json["results"]

    assert results[0]["error"] == {
        "code": "image_unsupported_format",
        "message": f"The image is in {image_format} format, which this API does not read. Convert it to one of"
        " JPEG, PNG, WebP, GIF, BMP, TIFF.",
    }
    assert results[1]["status"] == "ok"


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_the_documented_formats_are_read(image_format: str) -> None:
    event = make_events.post("format", "/predict", encoded(image_format), "application/octet-stream")

    [result] = invoke(event).json["results"]

    assert (result["status"], result["width"], result["height"]) == ("ok", 64, 48)


def test_the_annotated_route_answers_422_with_the_images_own_code() -> None:
    event = make_events.post(
        "annotated_tga", "/object_detection", encoded("TGA"), "image/x-tga", headers={"Accept": "image/jpeg"}
    )

    answer = invoke(event)

    assert (answer.status, answer.error_code) == (422, "image_unsupported_format")


# -- One deadline per URL, and the request's ------------------------------------------------------------------------


class SlowHeadersHandler(http.server.BaseHTTPRequestHandler):
    """Sends its status line and headers a byte every 50 ms: never silent for long, never done in time."""

    def do_GET(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Padding: " + b"p" * 200 + b"\r\n\r\n"
        try:
            for byte in head:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client gave up, as it should

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHeadersHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slow.png"
    finally:
        server.shutdown()
        server.server_close()


def allow_loopback(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    policy = dataclasses.replace(FetchPolicy.from_settings(app.settings), allowed_networks=LOOPBACK, **changes)
    monkeypatch.setattr(app.pipeline, "fetcher", UrlFetcher(policy))


def test_a_url_sending_its_headers_slowly_is_a_url_timeout_and_the_other_image_is_answered(
    monkeypatch: pytest.MonkeyPatch, slow_server: str
) -> None:
    allow_loopback(monkeypatch, total_timeout=1.0)
    fields = [("url", slow_server), ("image", ("page.png", page_png(), "image/png"))]
    started = time.monotonic()

    answer = invoke(make_events.post_multipart("slow_url", "/predict", fields, query=[("model", "orientation")]))

    assert answer.status == 200
    first, second = answer.json["results"]
    assert first["error"]["code"] == "url_timeout"
    assert first["error"]["message"].startswith("127.0.0.1 did not send the image within 1 s")
    assert second["predictions"][0]["label"] == "0"
    assert time.monotonic() - started < 5.0


@dataclasses.dataclass
class ShortContext(LambdaContext):
    """A function with 5.5 s left: with the 4 s kept to answer, downloads get 1.5 s."""

    def get_remaining_time_in_millis(self) -> int:
        return 5_500


def test_downloads_stop_in_time_for_the_function_to_answer(monkeypatch: pytest.MonkeyPatch, slow_server: str) -> None:
    allow_loopback(monkeypatch)  # URL_TIMEOUT of 10 s: the request's own deadline comes first
    fields = [("url", slow_server), ("image", ("page.png", page_png(), "image/png"))]
    started = time.monotonic()

    answer = invoke(make_events.post_multipart("late_url", "/predict", fields), ShortContext())

    assert answer.status == 200
    first, second = answer.json["results"]
    assert first["error"]["code"] == "url_timeout"
    assert "this request had left for downloads" in first["error"]["message"]
    assert second["status"] == "ok"
    assert time.monotonic() - started < 4.0


# -- Annotated images always fit in a Lambda response ------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_2400x3000() -> bytes:
    """A photo-like 2400x3000 JPEG of about 1.6 MB: its PNG would be about 14 MB."""
    photo = Image.open(io.BytesIO(sample_images.photo())).convert("RGB").resize((2400, 3000), Image.Resampling.BICUBIC)
    grain = np.random.default_rng(7).normal(0, 6, (3000, 2400, 3))
    pixels = np.clip(np.asarray(photo, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def annotated(photo: bytes, accept: str) -> Answer:
    event = make_events.post("annotated_photo", "/object_detection", photo, "image/jpeg", headers={"Accept": accept})
    return invoke(event)


def assert_fits_in_a_lambda_response(answer: Answer) -> None:
    assert len(json.dumps(answer.raw).encode()) <= LAMBDA_PAYLOAD_LIMIT


def test_a_png_too_large_for_a_lambda_response_is_scaled_down_to_fit(photo_2400x3000: bytes) -> None:
    answer = annotated(photo_2400x3000, "image/png")

    assert answer.status == 200
    assert answer.content_type == "image/png"
    assert_fits_in_a_lambda_response(answer)
    scale = float(answer.headers["X-Image-Scale"][0])
    assert 0.3 < scale < 1.0
    picture = answer.picture
    assert picture.format == "PNG"
    assert abs(picture.width - 2400 * scale) <= 1
    assert abs(picture.height - 3000 * scale) <= 1


def test_a_client_that_also_accepts_jpeg_gets_the_full_size_jpeg(photo_2400x3000: bytes) -> None:
    answer = annotated(photo_2400x3000, "image/png, image/jpeg;q=0.5")

    assert answer.status == 200
    assert answer.content_type == "image/jpeg"
    assert "X-Image-Scale" not in answer.headers
    assert_fits_in_a_lambda_response(answer)
    assert answer.picture.size == (2400, 3000)


def test_a_png_that_fits_is_sent_at_full_size() -> None:
    answer = annotated(page_png(), "image/png")

    assert (answer.status, answer.content_type) == (200, "image/png")
    assert "X-Image-Scale" not in answer.headers
    assert answer.picture.size == (800, 1100)


# -- Negotiation: what is returned is what API Gateway delivers ------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("image/jpeg", "image/jpeg"),
        ("image/png", "image/png"),
        ("image/*", "image/jpeg"),
        ("image/webp, image/png;q=0.9, application/json;q=0.1", "image/png"),
        ("image/*;q=0.1, application/json", "application/json"),
        # API Gateway would deliver an image to these as base64 text: JSON instead.
        ("text/html;q=0.1, image/jpeg", "application/json"),
        ("application/json;q=0.1, image/jpeg", "application/json"),
        ("*/*", "application/json"),
        ("*/*, image/jpeg", "application/json"),
    ],
)
def test_an_image_is_answered_only_when_the_first_accept_type_is_an_image_type(accept: str, expected: str) -> None:
    answer = annotated(page_png(), accept)

    assert answer.status == 200
    assert answer.content_type == expected
    assert answer.raw["isBase64Encoded"] is (expected != "application/json")


def test_an_accept_header_allowing_nothing_offered_is_406() -> None:
    answer = annotated(page_png(), "text/html")

    assert (answer.status, answer.error_code) == (406, "not_acceptable")


def test_an_annotated_image_that_cannot_fit_even_scaled_down_is_a_406_saying_what_to_ask_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "ANNOTATED_IMAGE_MAX_BYTES", 50)  # less than any picture

    png_only = annotated(page_png(), "image/png")
    both = annotated(page_png(), "image/jpeg, image/png")

    assert (png_only.status, png_only.error_code) == (406, "response_too_large")
    assert png_only.json["error"]["message"] == (
        "The annotated image does not fit in Lambda's 6 MB response as image/png, even scaled down."
        " Ask for image/jpeg, or for application/json to get the boxes."
    )
    assert (both.status, both.error_code) == (406, "response_too_large")
    assert both.json["error"]["message"].endswith(
        "as image/jpeg or image/png, even scaled down. Ask for application/json to get the boxes."
    )
