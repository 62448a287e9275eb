"""Generated API Gateway events, valid and not, against the handler: never a 5xx, always the documented shape.

Events are built the way API Gateway builds them (the local API's event construction, from template.yaml),
then mutated as clients and attackers mutate requests: random and truncated bodies, multipart and JSON bodies
with bytes flipped or cut, boundaries written every way, odd and broken images, content types, header names
in any case, `isBase64Encoded` saying the opposite of the body, and query strings with repeated, empty and
unknown keys. `FUZZ_EXAMPLES` sets how many events run (default 400).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from requests_toolbelt import MultipartEncoder

import app
import make_events
from lambda_vision import schemas
from lambda_vision.errors import ErrorCode
from support import LambdaContext

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
settings.register_profile(
    "generated-events",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same events on every run: a failure is reproducible as it is
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

ERROR_CODES = {code.value for code in ErrorCode}
ROUTES = ["/predict", "/object_detection", "/embed"]
OTHER_PATHS = ["/models", "/models/layout", "/models/nope", "/health", "/", "/predict/extra", "/%2e%2e/etc"]
PARAMETERS = ["model", "top_k", "threshold", "iou", "max_detections", "junk"]
PARAMETER_VALUES = ["", "1", "0", "-1", "0.5", "2", "1e309", "nan", "layout", "orientation", "nsfw", "a b", "%00"]
CONTENT_TYPES = [
    "image/png",
    "image/jpeg",
    "image/x-weird",
    "application/octet-stream",
    "application/json",
    "application/json; charset=latin-1",
    "application/problem+json",
    "text/plain",
    "multipart/form-data",
    "multipart/mixed; boundary=b",
    "",
    ";;;",
    "image",
]
ACCEPTS = [
    None,
    None,
    None,
    "*/*",
    "*/*",
    "image/jpeg",
    "image/png",
    "image/*",
    "application/json",
    "text/html;q=0.1, image/jpeg",
    "image/webp, image/png;q=0.5",
    "text/html",
    "image/jpeg;q=abc",
    ",,;q=",
]


def small_image(kind: str) -> bytes:
    """Small images in the forms clients send, several of them unusual."""
    buffer = io.BytesIO()
    if kind == "png":
        Image.new("RGB", (40, 30), (250, 250, 250)).save(buffer, "PNG")
    elif kind == "jpeg":
        Image.new("RGB", (33, 47), (20, 90, 200)).save(buffer, "JPEG")
    elif kind == "gif":
        Image.new("P", (16, 16), 3).save(buffer, "GIF", transparency=3)
    elif kind == "rgba":
        Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(buffer, "PNG")
    elif kind == "grey16":
        Image.new("I;16", (24, 24), 40000).save(buffer, "PNG")
    elif kind == "cmyk":
        Image.new("CMYK", (24, 24), (0, 50, 100, 0)).save(buffer, "JPEG")
    elif kind == "one_pixel":
        Image.new("L", (1, 1), 0).save(buffer, "BMP")
    elif kind == "tiff":
        Image.new("RGB", (12, 9), (1, 2, 3)).save(buffer, "TIFF")
    elif kind == "webp":
        Image.new("RGB", (12, 9), (1, 2, 3)).save(buffer, "WEBP")
    elif kind == "rotated":
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.new("RGB", (30, 20), (9, 9, 9)).save(buffer, "JPEG", exif=exif)
    elif kind == "ico":
        Image.new("RGB", (16, 16), (1, 2, 3)).save(buffer, "ICO")
    return buffer.getvalue()


IMAGE_KINDS = ["png", "jpeg", "gif", "rgba", "grey16", "cmyk", "one_pixel", "tiff", "webp", "rotated", "ico"]
IMAGES = {kind: small_image(kind) for kind in IMAGE_KINDS}


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    data = IMAGES[draw(st.sampled_from(IMAGE_KINDS))]
    mutation = draw(st.sampled_from(["none", "none", "truncate", "flip", "prefix", "empty"]))
    if mutation == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if mutation == "flip":
        position = draw(st.integers(0, len(data) - 1))
        return data[:position] + bytes([data[position] ^ draw(st.integers(1, 255))]) + data[position + 1 :]
    if mutation == "prefix":
        return draw(st.binary(max_size=8)) + data
    if mutation == "empty":
        return b""
    return data


def mutated(data: bytes, draw: st.DrawFn) -> bytes:
    """The body with a few bytes changed, cut short, or a slice repeated."""
    if not data:
        return data
    for _ in range(draw(st.integers(0, 3))):
        operation = draw(st.sampled_from(["flip", "cut", "repeat", "delete"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if operation == "flip" and data:
            data = data[:position] + bytes([draw(st.integers(0, 255))]) + data[position + 1 :]
        elif operation == "cut":
            data = data[:position]
        elif operation == "repeat":
            data = data[:position] + data[position : position + 40] * 2 + data[position + 40 :]
        else:
            data = data[:position] + data[position + draw(st.integers(1, 20)) :]
    return data


@st.composite
def multipart_body(draw: st.DrawFn) -> tuple[bytes, str]:
    fields: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["image", "image", "url", "empty_file", "unknown", "url_bytes"]))
        if kind == "image":
            fields.append(("image", (draw(st.sampled_from(["a.png", "", "é.jpg"])), draw(image_bytes()), "image/png")))
        elif kind == "url":
            url = draw(st.sampled_from(["", "http://169.254.169.254/", "ftp://x/y", "https://", "not a url", "%"]))
            fields.append(("url", url))
        elif kind == "empty_file":
            fields.append(("image", ("", b"", "application/octet-stream")))
        elif kind == "unknown":
            fields.append(("top_k", "3"))
        else:
            fields.append(("url", (None, draw(st.binary(max_size=20)), None)))
    boundary = draw(st.sampled_from(["fuzz-boundary", "a b", "x" * 70, "----WebKitFormBoundary7MA4YWxk"]))
    body = MultipartEncoder(fields=fields, boundary=boundary).to_string()
    parameter = draw(
        st.sampled_from(
            [
                f"boundary={boundary}",
                f'boundary="{boundary}"',
                f"boundary = {boundary}",
                f"boundary*=utf-8''{boundary.replace(' ', '%20')}",
                f"BOUNDARY={boundary}; charset=utf-8",
                "boundary=",
                "boundary=other",
                "",
            ]
        )
    )
    return mutated(body, draw), f"multipart/form-data; {parameter}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


@st.composite
def json_body(draw: st.DrawFn) -> tuple[bytes, str]:
    shape = draw(st.sampled_from(["images", "images", "random", "nested", "broken"]))
    if shape == "nested":
        depth = draw(st.sampled_from([10, 500, 1024, 5000]))
        text = "[" * depth + "]" * draw(st.sampled_from([0, depth]))
        return text.encode(), "application/json"
    if shape == "random":
        return json.dumps(draw(json_values)).encode(), "application/json"
    items: list[Any] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["base64", "data_uri", "url", "junk", "bad_base64"]))
        if kind == "base64":
            items.append({"base64": base64.b64encode(draw(image_bytes())).decode(), "name": "x"})
        elif kind == "data_uri":
            items.append({"base64": "data:image/png;base64," + base64.b64encode(draw(image_bytes())).decode()})
        elif kind == "url":
            items.append({"url": draw(st.sampled_from(["", "http://[::1]/", "https://", "javascript:alert(1)"]))})
        elif kind == "bad_base64":
            items.append({"base64": draw(st.text(max_size=12))})
        else:
            items.append(draw(json_values))
    body = json.dumps({"images": items}).encode()
    if shape == "broken":
        body = mutated(body, draw)
    return body, draw(st.sampled_from(["application/json", "application/vnd.x+json", "application/json; a=b"]))


@st.composite
def request_body(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["multipart", "multipart", "json", "json", "image", "image", "random"]))
    if kind == "multipart":
        return draw(multipart_body())
    if kind == "json":
        return draw(json_body())
    if kind == "image":
        return draw(image_bytes()), draw(st.sampled_from(["image/png", "image/jpeg", "application/octet-stream"]))
    return draw(st.binary(max_size=300)), draw(st.sampled_from(CONTENT_TYPES))


def recase(name: str, draw: st.DrawFn) -> str:
    style = draw(st.sampled_from(["as is", "lower", "upper", "mixed"]))
    if style == "lower":
        return name.lower()
    if style == "upper":
        return name.upper()
    if style == "mixed":
        return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(name))
    return name


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    inference = draw(st.booleans()) or draw(st.booleans())
    method = "POST" if inference else draw(st.sampled_from(["GET", "GET", "POST", "PUT", "OPTIONS", "DELETE"]))
    path = draw(st.sampled_from(ROUTES if inference else ROUTES + OTHER_PATHS))
    body, content_type = draw(request_body()) if method in ("POST", "PUT") else (b"", "")
    headers = {"Content-Type": content_type} if content_type else {}
    accept = draw(st.sampled_from(ACCEPTS))
    if accept is not None:
        headers["Accept"] = accept
    query = draw(
        st.lists(st.tuples(st.sampled_from(PARAMETERS), st.sampled_from(PARAMETER_VALUES)), max_size=3),
    )
    try:
        event = make_events.api_gateway_event("generated", method, path, body=body, headers=headers, query=query)
    except ValueError:  # no such route in template.yaml: the event of a route that has, pointed elsewhere
        event = make_events.api_gateway_event("generated", "POST", "/predict", body=body, headers=headers, query=query)
        event["httpMethod"], event["path"] = method, path
    cased = {name: recase(name, draw) for name in event["headers"]}
    event["headers"] = {cased[name]: value for name, value in event["headers"].items()}
    event["multiValueHeaders"] = {cased[name]: values for name, values in event["multiValueHeaders"].items()}
    if body and draw(st.integers(0, 5)) == 0:  # the flag says the opposite of what the body is
        event["isBase64Encoded"] = not event["isBase64Encoded"]
    return event


def assert_documented_shape(event: dict[str, Any], response: dict[str, Any]) -> None:
    status = int(response["statusCode"])
    assert status < 500, response["body"][:500]
    headers = {name.lower(): values for name, values in response["multiValueHeaders"].items()}
    content_type = headers["content-type"][0]
    if response.get("isBase64Encoded"):
        assert (status, content_type) in {(200, "image/jpeg"), (200, "image/png")}
        Image.open(io.BytesIO(base64.b64decode(response["body"]))).verify()
        return
    if (event["httpMethod"], event["path"], status) == ("GET", "/", 200):
        assert content_type == "text/html; charset=utf-8"  # the page
        assert response["body"].startswith("<!doctype html>")
        return
    assert content_type == "application/json"
    body = json.loads(response["body"])
    if status >= 400:
        error = body["error"]
        assert set(error) <= {"code", "message", "details", "request_id"}
        assert error["code"] in ERROR_CODES
        assert isinstance(error["message"], str)
        assert error["message"]
        assert error["request_id"] == event["requestContext"]["requestId"]
        return
    if event["httpMethod"] == "POST":
        answer = schemas.InferenceResponse.model_validate(body)
        assert answer.succeeded + answer.failed == len(answer.results)
        assert [result.index for result in answer.results] == sorted(result.index for result in answer.results)
        for result in answer.results:
            assert (result.status == "error") == (result.error is not None)
            if result.error is not None:
                assert result.error.code in ERROR_CODES
                assert result.error.message


def test_generated_events_never_answer_5xx_and_always_have_the_documented_shape(
    capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    statuses: Counter[int] = Counter()

    @settings(settings.get_profile("generated-events"))
    @given(event=events())
    def check(event: dict[str, Any]) -> None:
        response = app.lambda_handler(copy.deepcopy(event), LambdaContext())
        statuses[int(response["statusCode"])] += 1
        assert_documented_shape(event, response)

    check()

    cases = sum(statuses.values())
    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    summary = f"{cases} generated events, {server_errors} answered 5xx; statuses {dict(sorted(statuses.items()))}"
    record_property("generated_events", summary)
    with capsys.disabled():
        print(f"\n{summary}")
    assert server_errors == 0
    assert cases >= min(EXAMPLES, 100)
    assert {200, 400}.issubset(statuses), "the generator should reach both answered and refused requests"
