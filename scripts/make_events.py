"""Generate the API Gateway REST (v1) proxy events in events/ from real images.

Each event is what API Gateway hands the function for one HTTP request, so it works with
`sam local invoke -e events/<name>.json` and with the pytest fixtures. Multipart bodies are built with
requests-toolbelt's MultipartEncoder; bodies whose Content-Type is one of the API's binaryMediaTypes are
base64-encoded with isBase64Encoded true, as API Gateway does. Output is deterministic.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from requests_toolbelt import MultipartEncoder

import sample_images

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
BINARY_MEDIA_TYPES = ("multipart/form-data", "image/*", "application/octet-stream")
BOUNDARY = "lambda-vision-fixture-boundary"
METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
REQUEST_TIME_EPOCH = 1795305600000  # fixed, so regenerating gives the same files


def is_binary(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";")[0].strip().lower()
    return any(fnmatch.fnmatchcase(media_type, pattern) for pattern in BINARY_MEDIA_TYPES)


def api_gateway_event(
    name: str,
    method: str,
    path: str,
    *,
    resource: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    query: Sequence[tuple[str, str]] = (),
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    headers = {
        "Accept": "*/*",
        "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    if body is not None:
        headers["Content-Length"] = str(len(body))
    binary = is_binary(headers.get("Content-Type"))
    multi_query: dict[str, list[str]] = {}
    for key, value in query:
        multi_query.setdefault(key, []).append(value)
    request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"lambda-vision/events/{name}"))
    resource = resource or path
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "queryStringParameters": {key: values[-1] for key, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "a1b2c3",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id[:16],
            "requestTime": "21/Nov/2026:00:00:00 +0000",
            "path": f"/v1{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "v1",
            "domainPrefix": "abcdef1234",
            "requestTimeEpoch": REQUEST_TIME_EPOCH,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": "203.0.113.7",
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": "curl/8.5.0",
                "user": None,
            },
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "apiId": "abcdef1234",
        },
        "body": None if body is None else base64.b64encode(body).decode() if binary else body.decode("utf-8"),
        "isBase64Encoded": binary and body is not None,
    }


def multipart(fields: Sequence[tuple[str, Any]]) -> tuple[bytes, str]:
    encoder = MultipartEncoder(fields=list(fields), boundary=BOUNDARY)
    return encoder.to_string(), encoder.content_type


def post(name: str, path: str, body: bytes, content_type: str, **options: Any) -> dict[str, Any]:
    headers = {"Content-Type": content_type, **options.pop("headers", {})}
    return api_gateway_event(name, "POST", path, body=body, headers=headers, **options)


def post_multipart(name: str, path: str, fields: Sequence[tuple[str, Any]], **options: Any) -> dict[str, Any]:
    body, content_type = multipart(fields)
    return post(name, path, body, content_type, **options)


def post_json(name: str, path: str, document: Any, **options: Any) -> dict[str, Any]:
    return post(name, path, json.dumps(document).encode(), "application/json", **options)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build_events() -> dict[str, dict[str, Any]]:
    page_0 = sample_images.rotated_page(0)
    layout_page = sample_images.encode(sample_images.render_page()[0])
    layout_page_180 = sample_images.encode(sample_images.render_page()[0].rotate(180), "JPEG", quality=90)
    page_90_jpeg = sample_images.rotated_page(90, "JPEG")
    page_180_jpeg = sample_images.rotated_page(180, "JPEG")
    page_270 = sample_images.rotated_page(270)
    photo = sample_images.photo()
    tiny = sample_images.encode(Image.new("RGB", (8, 8), "white"))
    huge = sample_images.encode(Image.new("1", (10_000, 5_000)))  # 50 megapixels, a few kilobytes
    truncated = page_0[: len(page_0) // 2]
    return {
        # Classification
        "predict_multipart": post_multipart(
            "predict_multipart",
            "/predict",
            [
                ("image", ("page.png", page_0, "image/png")),
                ("image", ("page_turned_left.jpg", page_90_jpeg, "image/jpeg")),
                ("url", METADATA_URL),
                ("image", ("page_upside_down.jpg", page_180_jpeg, "image/jpeg")),
            ],
            query=[("top_k", "2")],
        ),
        "predict_json": post_json(
            "predict_json",
            "/predict",
            {"images": [{"base64": b64(page_270), "name": "page_turned_right.png"}, {"url": "http://localhost/a.png"}]},
        ),
        "predict_raw": post("predict_raw", "/predict", page_90_jpeg, "image/jpeg"),
        "predict_nsfw": post("predict_nsfw", "/predict", photo, "image/jpeg", query=[("model", "nsfw")]),
        # Detection
        "detect_multipart": post_multipart(
            "detect_multipart",
            "/object_detection",
            [
                ("image", ("page.png", layout_page, "image/png")),
                ("image", ("page_upside_down.jpg", layout_page_180, "image/jpeg")),
            ],
        ),
        "detect_raw": post(
            "detect_raw", "/object_detection", layout_page, "application/octet-stream", query=[("threshold", "0.4")]
        ),
        "detect_annotated": post(
            "detect_annotated", "/object_detection", layout_page, "image/png", headers={"Accept": "image/jpeg"}
        ),
        # Models and health
        "models": api_gateway_event("models", "GET", "/models"),
        "model_layout": api_gateway_event(
            "model_layout", "GET", "/models/layout", resource="/models/{name}", path_parameters={"name": "layout"}
        ),
        "health": api_gateway_event("health", "GET", "/health"),
        # Bad input: whole-request errors
        "bad_multipart_no_boundary": post("bad_multipart_no_boundary", "/predict", b"--x\r\n", "multipart/form-data"),
        "bad_multipart_body": post(
            "bad_multipart_body",
            "/predict",
            b"this is not a multipart body",
            f"multipart/form-data; boundary={BOUNDARY}",
        ),
        "bad_json": post("bad_json", "/predict", b'{"images": [', "application/json"),
        "bad_json_shape": post_json("bad_json_shape", "/predict", {"pictures": [{"url": "https://example.com/a.jpg"}]}),
        "bad_base64_item": post_json("bad_base64_item", "/predict", {"images": [{"base64": "not base64!"}]}),
        "unsupported_media_type": post("unsupported_media_type", "/predict", b"hello", "text/plain"),
        "no_images": post_multipart("no_images", "/predict", []),
        "too_many_images": post_multipart(
            "too_many_images", "/predict", [("image", (f"{i}.png", tiny, "image/png")) for i in range(17)]
        ),
        "unknown_model": post("unknown_model", "/predict", tiny, "image/png", query=[("model", "resnet")]),
        "wrong_task": post("wrong_task", "/predict", tiny, "image/png", query=[("model", "layout")]),
        "invalid_top_k": post("invalid_top_k", "/predict", tiny, "image/png", query=[("top_k", "0")]),
        "invalid_threshold": post(
            "invalid_threshold", "/object_detection", tiny, "image/png", query=[("threshold", "high")]
        ),
        "not_acceptable": post("not_acceptable", "/predict", tiny, "image/png", headers={"Accept": "text/html"}),
        "annotated_two_images": post_multipart(
            "annotated_two_images",
            "/object_detection",
            [("image", ("a.png", tiny, "image/png")), ("image", ("b.png", tiny, "image/png"))],
            headers={"Accept": "image/jpeg"},
        ),
        # Bad input: per-image errors next to a good image
        "bad_images": post_multipart(
            "bad_images",
            "/predict",
            [
                ("image", ("notes.txt", b"these are notes, not an image", "text/plain")),
                ("image", ("truncated.png", truncated, "image/png")),
                ("image", ("huge.png", huge, "image/png")),
                ("image", ("empty.jpg", b"", "image/jpeg")),
                ("image", ("page.png", page_0, "image/png")),
            ],
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EVENTS_DIR)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, event in build_events().items():
        (args.out / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n")
        print(f"events/{name}.json")


if __name__ == "__main__":
    main()
