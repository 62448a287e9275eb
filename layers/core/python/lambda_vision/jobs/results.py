"""Result lines (JSON Lines, one per input image) and where a job's result objects live."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from lambda_vision.errors import ErrorCode
from lambda_vision.jobs.locations import S3Location
from lambda_vision.pipeline import ImageResult

CONTENT_TYPE = "application/x-ndjson"
SUMMARY_NAME = "summary.json"
# The per-image fields of the synchronous API that describe the image rather than the request.
_SKIPPED_FIELDS = ("index", "source", "timings_ms")


def result_line(key: str, result: ImageResult) -> dict[str, Any]:
    body = result.to_json()
    return {"key": key, **{name: value for name, value in body.items() if name not in _SKIPPED_FIELDS}}


def error_line(key: str, code: ErrorCode, message: str) -> dict[str, Any]:
    return {"key": key, "status": "error", "error": {"code": code.value, "message": message}}


def json_lines(lines: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode("utf-8") + b"\n" for line in lines)


def job_prefix(output: S3Location, job_id: str) -> S3Location:
    return output.as_prefix().child(f"{job_id}/")


def part_location(job_output: S3Location, chunk: str) -> S3Location:
    """The object holding one chunk's lines: written whole, so a redelivered chunk replaces it."""
    return job_output.child(f"part-{chunk}.jsonl")


def summary_location(job_output: S3Location) -> S3Location:
    return job_output.child(SUMMARY_NAME)
