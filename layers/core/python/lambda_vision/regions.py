"""Regions of an image to classify on their own: boxes [x1, y1, x2, y2] in pixels of the original image.

A request names them per image (JSON `"regions"`, or a multipart `regions` part after the image it applies
to). Their form is checked when the request is read; whether they lie inside the image, once it is decoded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from lambda_vision.errors import ApiError, ErrorCode

Box = tuple[float, float, float, float]


def _invalid(code: ErrorCode, message: str, location: str) -> ApiError:
    return ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, code, message, details=[{"loc": location}])


def parse_regions(value: Any, location: str) -> tuple[Box, ...]:
    """A JSON list of boxes -> boxes; raises 422 naming the first box that is not four numbers or is empty."""
    if not isinstance(value, list):
        raise _invalid(
            ErrorCode.INVALID_REGION, f"{location} must be a list of boxes [[x1, y1, x2, y2], ...].", location
        )
    boxes: list[Box] = []
    for position, box in enumerate(value):
        where = f"{location}[{position}]"
        if not (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        ):
            raise _invalid(
                ErrorCode.INVALID_REGION,
                f"{where} must be four numbers [x1, y1, x2, y2] in pixels of the image, got {json.dumps(box)}.",
                where,
            )
        x1, y1, x2, y2 = (float(v) for v in box)
        if x2 <= x1 or y2 <= y1:
            raise _invalid(
                ErrorCode.REGION_EMPTY,
                f"{where} {json.dumps(box)} is empty: x2 must be greater than x1 and y2 greater than y1.",
                where,
            )
        boxes.append((x1, y1, x2, y2))
    if not boxes:
        raise _invalid(
            ErrorCode.INVALID_REGION, f"{location} is empty: give at least one box or leave it out.", location
        )
    return tuple(boxes)


def parse_regions_text(text: str, location: str) -> tuple[Box, ...]:
    """The JSON text of a multipart `regions` part."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _invalid(
            ErrorCode.INVALID_REGION,
            f"{location} must be JSON such as [[10, 20, 110, 140]]: {error}.",
            location,
        ) from None
    return parse_regions(value, location)


def check_count(counts: Sequence[int], limit: int) -> None:
    """Raises 422 when a request names more regions (all images together) than the limit."""
    total = sum(counts)
    if total > limit:
        raise ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorCode.TOO_MANY_REGIONS,
            f"The request names {total} regions; the limit is {limit} per request (MAX_REGIONS). Split it up.",
            details={"limit": limit, "received": total},
        )


def check_inside(boxes: Sequence[Box], width: int, height: int, location: str) -> None:
    """Raises 422 naming the first box that reaches outside a width x height image."""
    for position, (x1, y1, x2, y2) in enumerate(boxes):
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            where = f"{location}[{position}]"
            shown = json.dumps([_compact(v) for v in (x1, y1, x2, y2)])
            raise _invalid(
                ErrorCode.REGION_OUTSIDE_IMAGE,
                f"{where} {shown} reaches outside the image, which is {width}x{height} pixels:"
                f" x must be within 0..{width} and y within 0..{height}.",
                where,
            )


def _compact(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def refuse_regions(counts: Sequence[int], route: str) -> None:
    """Raises 422 when a request sends regions to a route that does not read them."""
    if any(counts):
        raise ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorCode.INVALID_REGION,
            f"{route} does not read regions: send images with regions to POST /predict.",
        )
