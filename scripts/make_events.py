"""Generate the API Gateway REST (v1) proxy events in events/ from real images.

Each event is what API Gateway hands the function for one HTTP request, so it works with
`sam local invoke -e events/<name>.json` and with the pytest fixtures. Multipart bodies are built with
requests-toolbelt's MultipartEncoder; the events themselves are built by the local API's own event
construction (samlocal/), from template.yaml: its routes, stage and binary media types decide
`resource`, `pathParameters` and whether a body arrives base64-encoded. Output is deterministic.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from PIL import Image
from requests_toolbelt import MultipartEncoder

import sample_images
from samlocal.events import RequestIds
from samlocal.offline import EventFactory

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"
BOUNDARY = "lambda-vision-fixture-boundary"
METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
REQUEST_EPOCH = 1795305600.0  # fixed, so regenerating gives the same files
CLIENT = {"Host": "abcdef1234.execute-api.us-east-1.amazonaws.com", "User-Agent": "curl/8.5.0", "Accept": "*/*"}


@functools.cache
def event_factory() -> EventFactory:
    """Events as the API of template.yaml receives them (routes, stage, binary media types)."""
    return EventFactory(ROOT / "template.yaml")


def fixed_ids(name: str) -> RequestIds:
    digest = hashlib.sha256(f"lambda-vision/events/{name}".encode()).hexdigest()
    request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"lambda-vision/events/{name}"))
    return RequestIds(request_id, f"{digest[:11]}=", f"Root=1-{int(REQUEST_EPOCH):08x}-{digest[:24]}", REQUEST_EPOCH)


def api_gateway_event(
    name: str,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    query: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The event API Gateway hands the function for this request, from a client on the internet over HTTPS."""
    header_pairs = {**CLIENT, **(headers or {})}
    if body:
        header_pairs["Content-Length"] = str(len(body))
    target = f"{path}?{urlencode(query)}" if query else path
    return event_factory().event(
        method,
        target,
        list(header_pairs.items()),
        body,
        ids=fixed_ids(name),
        source_ip="203.0.113.7",
        port=443,
        scheme="https",
    )


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
    cat, coffee, astronaut = (
        sample_images.encode(sample_images.photo_image(name), "JPEG", quality=85)
        for name in ("chelsea", "coffee", "astronaut")
    )
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
            query=[("model", "orientation"), ("top_k", "2")],
        ),
        "predict_json": post_json(
            "predict_json",
            "/predict",
            {"images": [{"base64": b64(page_270), "name": "page_turned_right.png"}, {"url": "http://localhost/a.png"}]},
            query=[("model", "orientation")],
        ),
        "predict_raw": post("predict_raw", "/predict", page_90_jpeg, "image/jpeg", query=[("model", "orientation")]),
        "predict_nsfw": post("predict_nsfw", "/predict", photo, "image/jpeg", query=[("model", "nsfw")]),
        # Detection
        "detect_multipart": post_multipart(
            "detect_multipart",
            "/object_detection",
            [
                ("image", ("page.png", layout_page, "image/png")),
                ("image", ("page_upside_down.jpg", layout_page_180, "image/jpeg")),
            ],
            query=[("model", "layout")],
        ),
        "detect_raw": post(
            "detect_raw",
            "/object_detection",
            layout_page,
            "application/octet-stream",
            query=[("model", "layout"), ("threshold", "0.4")],
        ),
        "detect_annotated": post(
            "detect_annotated",
            "/object_detection",
            layout_page,
            "image/png",
            headers={"Accept": "image/jpeg"},
            query=[("model", "layout")],
        ),
        # Photos: the default models
        "predict_photo": post("predict_photo", "/predict", cat, "image/jpeg"),
        "detect_faces": post("detect_faces", "/object_detection", astronaut, "image/jpeg"),
        "predict_regions": post_json(
            "predict_regions",
            "/predict",
            {
                "images": [
                    {"base64": b64(cat), "name": "chelsea.jpg", "regions": [[140, 20, 360, 280], [0, 0, 120, 80]]}
                ]
            },
            query=[("top_k", "3")],
        ),
        "predict_regions_multipart": post_multipart(
            "predict_regions_multipart",
            "/predict",
            [("image", ("chelsea.jpg", cat, "image/jpeg")), ("regions", "[[140, 20, 360, 280]]")],
        ),
        "predict_detector": post(
            "predict_detector", "/predict", astronaut, "image/jpeg", query=[("detector", "faces")]
        ),
        "embed": post_multipart(
            "embed",
            "/embed",
            [("image", ("chelsea.jpg", cat, "image/jpeg")), ("image", ("coffee.jpg", coffee, "image/jpeg"))],
        ),
        "page": api_gateway_event("page", "GET", "/", headers={"Accept": "text/html"}),
        # Models and health
        "models": api_gateway_event("models", "GET", "/models"),
        "model_layout": api_gateway_event("model_layout", "GET", "/models/layout"),
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
        "region_outside": post_json(
            "region_outside", "/predict", {"images": [{"base64": b64(tiny), "regions": [[0, 0, 4, 4], [4, 4, 9, 8]]}]}
        ),
        "embed_no_embedding": post("embed_no_embedding", "/embed", tiny, "image/png", query=[("model", "orientation")]),
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
            query=[("model", "orientation")],
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
