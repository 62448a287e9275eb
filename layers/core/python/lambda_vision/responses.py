"""HTTP responses: compact JSON, the error shape, and content negotiation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response

from lambda_vision.errors import ApiError, ErrorCode

JSON = "application/json"


def json_response(status: int, body: Any) -> Response[str]:
    return Response(status_code=int(status), content_type=JSON, body=json.dumps(body, separators=(",", ":")))


def error_response(error: ApiError, request_id: str | None) -> Response[str]:
    return json_response(error.status, error.to_body(request_id))


def negotiate(accept: str | None, offered: Sequence[str]) -> str:
    """The offered media type the client prefers (RFC 9110 Accept with q-values); the first offered type when
    Accept is absent. Raises 406 when nothing offered is acceptable."""
    if not accept or not accept.strip():
        return offered[0]
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
    best: tuple[float, int] | None = None  # (quality, -offer position)
    for offer_position, offer in enumerate(offered):
        offer_type = offer.split("/")[0]
        # The most specific matching range sets the offer's quality: type/subtype, then type/*, then */*.
        matches = [
            (2 if media_range == offer else 1 if media_range == f"{offer_type}/*" else 0, quality)
            for quality, _, media_range in ranges
            if media_range in (offer, f"{offer_type}/*", "*/*")
        ]
        if not matches:
            continue
        quality = max(matches)[1]
        if quality > 0 and (best is None or (quality, -offer_position) > best):
            best = (quality, -offer_position)
    if best is None:
        raise ApiError(
            HTTPStatus.NOT_ACCEPTABLE,
            ErrorCode.NOT_ACCEPTABLE,
            f"This route answers with {', '.join(offered)}; the request's Accept header ({accept}) allows none.",
        )
    return offered[-best[1]]
