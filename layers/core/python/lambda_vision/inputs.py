"""Reading the images of a request, whatever way they were sent.

- multipart/form-data: any number of `image` file parts and `url` text parts, kept in order; a `regions`
  text part (JSON boxes) applies to the image part or URL just before it;
- application/json: {"images": [{"url": "..."} | {"base64": "...", "regions": [[x1, y1, x2, y2], ...]}]};
- a raw body: image/* or application/octet-stream.
API Gateway's `isBase64Encoded` is honoured whatever it says, and header names are case-insensitive.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.message import Message
from http import HTTPStatus
from typing import Any

from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.regions import Box, parse_regions, parse_regions_text

FILE_FIELDS = frozenset({"image", "images", "file", "files"})
URL_FIELDS = frozenset({"url", "urls"})
REGIONS_FIELD = "regions"
QUOTED_FILENAME = re.compile(r'(?:^|;)\s*filename="([^"]*)"', re.IGNORECASE)
SUPPORTED_TYPES = "multipart/form-data, application/json, image/* or application/octet-stream"
# RFC 2046: 1 to 70 of these characters, not ending with a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]")


@dataclass(frozen=True)
class ImageInput:
    index: int
    source: str  # file name, URL, or where in the body the image was
    data: bytes | None = None
    url: str | None = None
    regions: tuple[Box, ...] | None = None  # boxes to classify on their own, in original pixels


def parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """'Multipart/Form-Data; boundary="x"' -> ('multipart/form-data', {'boundary': 'x'})"""
    if not value:
        return "", {}
    message = Message()
    message["content-type"] = value
    params = {key.lower(): val for key, val in message.get_params(failobj=[])[1:]}
    return message.get_content_type() if "/" in value else value.strip().lower(), params


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup (API Gateway passes header names as the client wrote them)."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def body_bytes(body: str | None, is_base64_encoded: bool) -> bytes:
    if not body:
        return b""
    if is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                ErrorCode.INVALID_BASE64,
                "The request is marked isBase64Encoded but its body is not valid base64.",
            ) from None
    return body.encode("utf-8", errors="surrogateescape")


def read_images(
    headers: Mapping[str, str] | None,
    body: str | None,
    is_base64_encoded: bool,
    *,
    max_body_bytes: int,
    max_images: int,
) -> list[ImageInput]:
    """The images of a request, in the order they were sent. Raises ApiError for a malformed request."""
    received = len(body or "")
    if received > max_body_bytes:
        raise ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            ErrorCode.BODY_TOO_LARGE,
            f"The request body is {received:,} bytes as received by the function; the limit is {max_body_bytes:,}."
            " Lambda's 6 MB limit applies after API Gateway base64-encodes binary bodies (+33%), so about"
            f" {max_body_bytes * 3 // 4:,} bytes of raw image data fit in one request. Send large images by URL.",
            details={"limit_bytes": max_body_bytes, "received_bytes": received},
        )
    media_type, _ = parse_content_type(header(headers, "content-type"))
    raw = body_bytes(body, is_base64_encoded)
    if media_type == "multipart/form-data":
        images = _from_multipart(raw, header(headers, "content-type") or "")
    elif media_type == "application/json" or media_type.endswith("+json"):
        images = _from_json(raw)
    elif media_type.startswith("image/") or media_type == "application/octet-stream":
        images = [ImageInput(index=0, source="body", data=raw)] if raw else []
    elif not media_type and not raw:
        images = []
    else:
        shown = media_type or "none"
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {shown} is not supported. Send {SUPPORTED_TYPES}.",
        )
    if not images:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            ErrorCode.NO_IMAGES,
            "The request has no image. Send `image` file parts or `url` fields (multipart/form-data),"
            ' {"images": [{"url": ...} | {"base64": ...}]} (JSON), or the image itself as the body.',
        )
    if len(images) > max_images:
        raise ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorCode.TOO_MANY_IMAGES,
            f"The request has {len(images)} images; the limit is {max_images} per request. Split it up.",
            details={"limit": max_images, "received": len(images)},
        )
    return images


def _from_multipart(raw: bytes, content_type: str) -> list[ImageInput]:
    boundary = _boundary(content_type)
    if raw.strip() in (b"", f"--{boundary}--".encode()):
        return []  # a form with no fields
    # Imported on the first multipart request: requests-toolbelt brings requests with it, a cold-start cost.
    from requests_toolbelt.multipart.decoder import (  # noqa: PLC0415
        ImproperBodyPartContentException,
        MultipartDecoder,
        NonMultipartContentTypeException,
    )

    try:
        # The boundary as parsed above (quoted, spaced or RFC 2231 forms), in the one form the decoder reads.
        parts = MultipartDecoder(raw, f"multipart/form-data; boundary={boundary}").parts
    except (
        ImproperBodyPartContentException,
        NonMultipartContentTypeException,
        ValueError,
        IndexError,
    ) as error:
        reason = "a header of a part is not UTF-8" if isinstance(error, UnicodeDecodeError) else str(error)
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            ErrorCode.INVALID_MULTIPART,
            f"The multipart/form-data body could not be parsed: {reason}",
        ) from None
    if not parts and f"--{boundary}".encode() not in raw:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            ErrorCode.INVALID_MULTIPART,
            "The multipart/form-data body has no part delimited by its boundary.",
        )
    images: list[ImageInput] = []
    for number, part in enumerate(parts):
        disposition = Message()
        disposition["content-disposition"] = part.headers.get(b"content-disposition", b"").decode("utf-8", "replace")
        name = disposition.get_param("name", header="content-disposition")
        filename = _filename(disposition, disposition["content-disposition"] or "")
        if not isinstance(name, str):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                ErrorCode.INVALID_MULTIPART,
                f"Part {number + 1} of the multipart body has no Content-Disposition name.",
            )
        if name == REGIONS_FIELD and filename is None:
            location = f"part {number + 1} (regions)"
            if not images or images[-1].regions is not None:
                raise ApiError(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    ErrorCode.INVALID_REGION,
                    f"The multipart {location} follows no image, or another regions part: send one regions part"
                    " right after the image or URL it applies to.",
                    details=[{"loc": location}],
                )
            images[-1] = replace(
                images[-1], regions=parse_regions_text(part.content.decode("utf-8", "replace"), location)
            )
        elif name in URL_FIELDS and filename is None:
            try:
                text = part.content.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    ErrorCode.INVALID_MULTIPART,
                    f"Part {number + 1} (`{name}`) is not UTF-8 text; send image URLs as UTF-8"
                    " (non-ASCII characters percent-encoded).",
                ) from None
            for url in text.split():
                images.append(ImageInput(index=len(images), source=url, url=url))
        elif name in FILE_FIELDS or filename is not None:
            if not part.content and not filename:
                continue  # a file input left empty in a browser form: nothing was chosen
            images.append(ImageInput(index=len(images), source=filename or name, data=part.content))
        else:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                ErrorCode.INVALID_PARAMETER,
                f"Unknown form field {name!r}: send images as `image` file parts and image URLs as `url` fields."
                " Boxes go in a `regions` field after their image; options such as model and top_k go in the"
                " query string.",
            )
    return images


def _boundary(content_type: str) -> str:
    """The boundary of a multipart Content-Type, however it is written; 400 when missing or invalid."""
    message = Message()
    message["content-type"] = content_type
    try:
        boundary = message.get_boundary()
    except (LookupError, UnicodeError, ValueError):
        boundary = None
    if not boundary:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            ErrorCode.INVALID_MULTIPART,
            "The multipart/form-data Content-Type has no boundary parameter.",
        )
    if not _BOUNDARY.fullmatch(boundary):
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            ErrorCode.INVALID_MULTIPART,
            "The multipart/form-data boundary is not valid: it must be 1 to 70 letters, digits or '()+_,-./:=?"
            " characters (RFC 2046).",
        )
    return boundary


def _filename(disposition: Message, header_value: str) -> str | None:
    """The part's file name as the client sent it. Browsers (HTML5) percent-encode `"` in file names and do not
    backslash-escape anything, so a quoted name is taken literally (email's parser would unescape `\\`);
    RFC 2231 names (filename*=) are decoded by email."""
    quoted = QUOTED_FILENAME.search(header_value)
    if quoted is not None:
        return quoted.group(1)
    return disposition.get_filename()


def _from_json(raw: bytes) -> list[ImageInput]:
    try:
        document: Any = json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_JSON, f"The body is not valid JSON: {error}") from None
    except RecursionError:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            ErrorCode.INVALID_JSON,
            'The JSON body is nested too deeply; send {"images": [...]}, three levels deep.',
        ) from None

    def invalid(message: str, location: str) -> ApiError:
        return ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.INVALID_PARAMETER, message, details=[{"loc": location}]
        )

    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise invalid('The JSON body must be an object {"images": [...]}.', "body.images")
    images: list[ImageInput] = []
    for position, item in enumerate(document["images"]):
        location = f"body.images[{position}]"
        if not isinstance(item, dict) or len(item.keys() & {"url", "base64"}) != 1:
            raise invalid(f'{location} must be {{"url": "https://..."}} or {{"base64": "..."}}.', location)
        regions = parse_regions(item["regions"], f"{location}.regions") if "regions" in item else None
        if "url" in item:
            url = item["url"]
            if not isinstance(url, str) or not url:
                raise invalid(f"{location}.url must be a non-empty string.", f"{location}.url")
            images.append(ImageInput(index=position, source=url, url=url, regions=regions))
            continue
        encoded = item["base64"]
        if not isinstance(encoded, str):
            raise invalid(f"{location}.base64 must be a string.", f"{location}.base64")
        if encoded.startswith("data:") and "," in encoded:  # a data: URI as a browser's FileReader gives it
            encoded = encoded.split(",", 1)[1]
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                ErrorCode.INVALID_BASE64,
                f"{location}.base64 is not valid base64.",
                details=[{"loc": f"{location}.base64"}],
            ) from None
        name = item.get("name")
        source = name if isinstance(name, str) else f"images[{position}]"
        images.append(ImageInput(index=position, source=source, data=data, regions=regions))
    return images
