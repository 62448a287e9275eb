"""Errors as values: a stable code, an HTTP status and a message a person can act on.

`ApiError` fails a whole request (it becomes the HTTP response); `InputError` fails one image of a
request and is reported in that image's result while the other images are still processed.
"""

from __future__ import annotations

from enum import StrEnum
from http import HTTPStatus
from typing import Any


class ErrorCode(StrEnum):
    # Whole-request errors
    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    INVALID_MULTIPART = "invalid_multipart"
    INVALID_BASE64 = "invalid_base64"
    NO_IMAGES = "no_images"
    TOO_MANY_IMAGES = "too_many_images"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID_PARAMETER = "invalid_parameter"
    MODEL_NOT_FOUND = "model_not_found"
    WRONG_MODEL_TASK = "wrong_model_task"
    NOT_ACCEPTABLE = "not_acceptable"
    RESPONSE_TOO_LARGE = "response_too_large"
    ROUTE_NOT_FOUND = "route_not_found"
    MODEL_UNAVAILABLE = "model_unavailable"
    NO_EMBEDDING = "no_embedding"
    INVALID_REGION = "invalid_region"
    REGION_EMPTY = "region_empty"
    REGION_OUTSIDE_IMAGE = "region_outside_image"
    TOO_MANY_REGIONS = "too_many_regions"
    INTERNAL_ERROR = "internal_error"
    # Job requests (POST /jobs, GET and DELETE /jobs/{job_id})
    INVALID_JOB = "invalid_job"
    INVALID_URI = "invalid_uri"
    LOCATION_FORBIDDEN = "location_forbidden"
    LOCATION_NOT_FOUND = "location_not_found"
    EMPTY_INPUT = "empty_input"
    TOO_MANY_INPUTS = "too_many_inputs"
    WEBHOOK_FORBIDDEN = "webhook_forbidden"
    WEBHOOK_NOT_CONFIGURED = "webhook_not_configured"
    JOB_NOT_FOUND = "job_not_found"
    JOB_FINISHED = "job_finished"
    JOBS_UNAVAILABLE = "jobs_unavailable"
    # Per-image errors
    IMAGE_UNDECODABLE = "image_undecodable"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_EMPTY = "image_empty"
    IMAGE_UNSUPPORTED_FORMAT = "image_unsupported_format"
    PIXEL_BUDGET_EXCEEDED = "pixel_budget_exceeded"
    URL_INVALID = "url_invalid"
    URL_FORBIDDEN = "url_forbidden"
    URL_UNREACHABLE = "url_unreachable"
    URL_TIMEOUT = "url_timeout"
    URL_TOO_LARGE = "url_too_large"
    URL_HTTP_ERROR = "url_http_error"
    URL_TOO_MANY_REDIRECTS = "url_too_many_redirects"
    OBJECT_NOT_FOUND = "object_not_found"
    OBJECT_UNREADABLE = "object_unreadable"
    OBJECT_TOO_LARGE = "object_too_large"
    MESSAGE_FAILED = "message_failed"


class ApiError(Exception):
    """A failure of the whole request, answered with `status` and a JSON error body."""

    def __init__(self, status: HTTPStatus, code: ErrorCode, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def to_body(self, request_id: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        if request_id:
            error["request_id"] = request_id
        return {"error": error}


class InputError(Exception):
    """A failure of one input image; the request goes on with the others."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_body(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}
