"""HTTP responses: compact JSON, the error shape, and content negotiation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response

from lambda_vision.errors import ApiError, ErrorCode

JSON = "application/json"
# API Gateway sends a base64 answer as bytes only when the FIRST type of the request's Accept header matches one
# of the API's binaryMediaTypes (template.yaml: image/*, multipart/form-data, application/octet-stream); for
# any other Accept the client would get the base64 text.
BINARY_MEDIA_TYPES = ("image/*", "multipart/form-data", "application/octet-stream")


def json_response(status: int, body: Any) -> Response[str]:
    return Response(status_code=int(status), content_type=JSON, body=json.dumps(body, separators=(",", ":")))


def error_response(error: ApiError, request_id: str | None) -> Response[str]:
    return json_response(error.status, error.to_body(request_id))


def _media_ranges(accept: str) -> list[tuple[float, int, str]]:
    """(quality, position, media range) of each entry of an Accept header, in the order written."""
    ranges: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept.split(",")):
        media_range, *params = (piece.strip() for piece in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media_range:
            ranges.append((quality, position, media_range.lower()))
    return ranges


def acceptable(accept: str | None, offered: Sequence[str]) -> list[str]:
    """The offered media types that `accept` allows (RFC 9110, q-values), most preferred first; ties keep the
    order of `offered`. Without an Accept header, every offered type in order."""
    if not accept or not accept.strip():
        return list(offered)
    ranges = _media_ranges(accept)
    ranked: list[tuple[float, int, str]] = []
    for offer_position, offer in enumerate(offered):
        offer_type = offer.split("/")[0]
        # The most specific matching range sets the offer's quality: type/subtype, then type/*, then */*.
        matches = [
            (2 if media_range == offer else 1 if media_range == f"{offer_type}/*" else 0, quality)
            for quality, _, media_range in ranges
            if media_range in (offer, f"{offer_type}/*", "*/*")
        ]
        if matches and max(matches)[1] > 0:
            ranked.append((-max(matches)[1], offer_position, offer))
    return [offer for _, _, offer in sorted(ranked)]


def negotiate(accept: str | None, offered: Sequence[str]) -> str:
    """The offered media type the client prefers (RFC 9110 Accept with q-values); the first offered type when
    Accept is absent. Raises 406 when nothing offered is acceptable."""
    allowed = acceptable(accept, offered)
    if not allowed:
        raise ApiError(
            HTTPStatus.NOT_ACCEPTABLE,
            ErrorCode.NOT_ACCEPTABLE,
            f"This route answers with {', '.join(offered)}; the request's Accept header ({accept}) allows none.",
        )
    return allowed[0]


def delivered_as_binary(accept: str | None) -> bool:
    """Whether API Gateway would deliver a base64 answer to this Accept header as bytes (its first type)."""
    ranges = _media_ranges(accept or "")
    if not ranges:
        return False
    first = ranges[0][2]
    return any(
        first.startswith(binary[:-1]) if binary.endswith("/*") else first == binary for binary in BINARY_MEDIA_TYPES
    )
