"""S3 URIs, queue messages and POST /jobs bodies: parsed exactly, refused with a stable code."""

from __future__ import annotations

from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.jobs.config import JobSettings
from lambda_vision.jobs.locations import LocationError, S3Location, parse_locations
from lambda_vision.jobs.messages import (
    ChunkMessage,
    DroppedObjects,
    FinishMessage,
    MessageError,
    PlanMessage,
    WorkItem,
    decode,
    encode,
)
from lambda_vision.jobs.submission import parse_job_request
from lambda_vision.registry import ModelRegistry

buckets = st.from_regex(r"[a-z0-9][a-z0-9-]{1,40}[a-z0-9]", fullmatch=True)
keys = st.text(st.characters(min_codepoint=0x20, exclude_characters="\x7f", exclude_categories=["Cs"]), max_size=80)

SETTINGS = JobSettings(
    table="jobs",
    work_queue_url="http://queue/work",
    plan_queue_url="http://queue/plan",
    jobs_bucket="jobs-bucket",
    webhook_secret="s3cret",
    input_locations=parse_locations("photos-in, s3://shared/scans/"),
    output_locations=parse_locations("s3://photos-out/results"),
    max_input_uris=3,
)


@given(buckets, keys)
def test_an_s3_uri_round_trips(bucket: str, key: str) -> None:
    location = S3Location.parse(f"s3://{bucket}/{key}")
    assert (location.bucket, location.key) == (bucket, key)
    assert S3Location.parse(location.uri) == location


@pytest.mark.parametrize(
    "uri",
    ["", "photos/a.jpg", "https://x/y", "s3://", "s3://UPPER/a", "s3://ab/a", "s3://a..b/x", "s3://ok-bucket/\x01"],
)
def test_malformed_s3_uris_are_refused(uri: str) -> None:
    with pytest.raises(LocationError):
        S3Location.parse(uri)


def test_the_policy_reads_and_writes_only_inside_its_locations() -> None:
    policy = SETTINGS.policy
    assert policy.may_read(S3Location("jobs-bucket", "anything/a.png"))
    assert policy.may_read(S3Location("photos-in", "x.jpg"))
    assert policy.may_read(S3Location("shared", "scans/2026/a.png"))
    assert not policy.may_read(S3Location("shared", "private/a.png"))
    assert not policy.may_read(S3Location("other", "a.png"))
    assert policy.may_write(S3Location("jobs-bucket", "results/x/"))
    assert not policy.may_write(S3Location("jobs-bucket", "incoming/"))
    assert policy.may_write(S3Location("photos-out", "results/run1/"))
    assert not policy.may_write(S3Location("photos-out", "resultsX/"))


items = st.builds(
    WorkItem,
    key=keys,
    s3=st.builds(S3Location, bucket=buckets, key=keys),
) | st.builds(lambda key: WorkItem(key, url=f"https://example.com/{key}"), keys)


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=20), st.lists(items, min_size=1, max_size=8))
def test_chunk_messages_round_trip(job_id: str, chunk: str, work: list[WorkItem]) -> None:
    message = ChunkMessage(job_id, chunk, tuple(work))
    assert decode(encode(message)) == message


@given(st.text(min_size=1), st.integers(min_value=0, max_value=10**6), st.none() | st.text())
def test_plan_messages_round_trip(job_id: str, page: int, token: str | None) -> None:
    assert decode(encode(PlanMessage(job_id, page, token))) == PlanMessage(job_id, page, token)
    assert decode(encode(FinishMessage(job_id))) == FinishMessage(job_id)


def test_an_s3_notification_names_the_created_objects_with_their_keys_decoded() -> None:
    body = (
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "jobs-bucket"}, '
        '"object": {"key": "incoming/my+scan%C3%A9.png", "size": 10}}}, '
        '{"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "jobs-bucket"}, "object": {"key": "x"}}}]}'
    )
    assert decode(body) == DroppedObjects((S3Location("jobs-bucket", "incoming/my scané.png"),))
    assert decode('{"Service": "Amazon S3", "Event": "s3:TestEvent"}') is None


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '{"kind": "chunk"}', '{"kind": "chunk", "job_id": "j", "chunk": "c", "items": []}',
     '{"kind": "nope", "job_id": "j"}', '{"kind": "plan", "job_id": "j", "page": -1, "token": null}',
     '{"kind": "chunk", "job_id": "j", "chunk": "c", "items": [{"key": "k"}]}'],
)  # fmt: skip
def test_foreign_messages_are_refused(body: str) -> None:
    with pytest.raises(MessageError):
        decode(body)


# POST /jobs bodies


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry.load(Path(__file__).resolve().parents[2] / "layers/models/models/models.toml")


FETCHER = UrlFetcher(FetchPolicy(connect_timeout=1, read_timeout=1, max_bytes=100, max_redirects=0))


def refused(body: Any, registry: ModelRegistry, settings: JobSettings = SETTINGS) -> ApiError:
    with pytest.raises(ApiError) as raised:
        parse_job_request(body, settings, registry, FETCHER)
    return raised.value


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("s3://jobs-bucket/x/", 422, ErrorCode.INVALID_JOB),
        ({}, 422, ErrorCode.INVALID_JOB),
        ({"input": "s3://jobs-bucket/x/", "colour": "red"}, 422, ErrorCode.INVALID_JOB),
        ({"input": 12}, 422, ErrorCode.INVALID_JOB),
        ({"input": "jobs-bucket/x/"}, 422, ErrorCode.INVALID_URI),
        ({"input": "s3://Bad_Bucket/x/"}, 422, ErrorCode.INVALID_URI),
        ({"input": ["s3://jobs-bucket/a.png", "ftp://host/a.png"]}, 422, ErrorCode.INVALID_URI),
        ({"input": ["s3://jobs-bucket/folder/"]}, 422, ErrorCode.INVALID_URI),
        ({"input": []}, 422, ErrorCode.EMPTY_INPUT),
        ({"input": ["https://example.com/a.png"] * 4}, 422, ErrorCode.TOO_MANY_INPUTS),
        ({"input": "s3://someone-elses/x/"}, 403, ErrorCode.LOCATION_FORBIDDEN),
        ({"input": ["s3://shared/private/a.png"]}, 403, ErrorCode.LOCATION_FORBIDDEN),
        ({"input": "s3://jobs-bucket/x/", "output": "s3://jobs-bucket/incoming/"}, 403, ErrorCode.LOCATION_FORBIDDEN),
        ({"input": "s3://jobs-bucket/x/", "output": "s3://elsewhere/"}, 403, ErrorCode.LOCATION_FORBIDDEN),
        ({"input": "s3://jobs-bucket/x/", "output": 5}, 422, ErrorCode.INVALID_JOB),
        ({"input": "s3://jobs-bucket/x/", "model": "resnet"}, 404, ErrorCode.MODEL_NOT_FOUND),
        ({"input": "s3://jobs-bucket/x/", "task": "segmentation"}, 422, ErrorCode.INVALID_PARAMETER),
        ({"input": "s3://jobs-bucket/x/", "model": "layout", "task": "classification"}, 422,
         ErrorCode.WRONG_MODEL_TASK),
        ({"input": "s3://jobs-bucket/x/", "parameters": {"top_k": 0}}, 422, ErrorCode.INVALID_PARAMETER),
        ({"input": "s3://jobs-bucket/x/", "parameters": {"top_k": 2.5}}, 422, ErrorCode.INVALID_PARAMETER),
        ({"input": "s3://jobs-bucket/x/", "parameters": {"threshold": 0.5}}, 422, ErrorCode.INVALID_PARAMETER),
        ({"input": "s3://jobs-bucket/x/", "task": "detection", "parameters": {"iou": 2}}, 422,
         ErrorCode.INVALID_PARAMETER),
        ({"input": "s3://jobs-bucket/x/", "parameters": []}, 422, ErrorCode.INVALID_PARAMETER),
        ({"input": "s3://jobs-bucket/x/", "webhook": "http://127.0.0.1:9/hook"}, 422, ErrorCode.WEBHOOK_FORBIDDEN),
        ({"input": "s3://jobs-bucket/x/", "webhook": "http://169.254.169.254/"}, 422, ErrorCode.WEBHOOK_FORBIDDEN),
        ({"input": "s3://jobs-bucket/x/", "webhook": "gopher://example.com/"}, 422, ErrorCode.INVALID_URI),
        ({"input": "s3://jobs-bucket/x/", "webhook": 1}, 422, ErrorCode.INVALID_URI),
    ],
)  # fmt: skip
def test_every_bad_job_is_refused_with_its_status_and_code(
    body: Any, status: int, code: ErrorCode, registry: ModelRegistry
) -> None:
    error = refused(body, registry)
    assert (error.status, error.code) == (HTTPStatus(status), code), error.message
    assert error.message


def test_a_webhook_needs_a_secret_to_sign_with(registry: ModelRegistry) -> None:
    unsigned = replace(SETTINGS, webhook_secret="")
    error = refused({"input": "s3://jobs-bucket/x/", "webhook": "https://example.com/h"}, registry, unsigned)
    assert error.code is ErrorCode.WEBHOOK_NOT_CONFIGURED


def test_a_good_job_is_parsed_with_defaults(registry: ModelRegistry) -> None:
    request = parse_job_request(
        {"input": ["s3://photos-in/a.png", "https://example.com/b.jpg"], "task": "detection",
         "parameters": {"threshold": 0.3, "max_detections": 5}},
        SETTINGS, registry, FETCHER,
    )  # fmt: skip
    assert request.model.name == "faces"
    assert request.parameters == {"threshold": 0.3, "max_detections": 5}
    assert request.output == S3Location("jobs-bucket", "results/")
    assert request.items == (
        WorkItem("s3://photos-in/a.png", s3=S3Location("photos-in", "a.png")),
        WorkItem("https://example.com/b.jpg", url="https://example.com/b.jpg"),
    )
    prefix = parse_job_request({"input": "s3://shared/scans/2026/", "output": "s3://photos-out/results/run"},
                               SETTINGS, registry, FETCHER)  # fmt: skip
    assert prefix.prefix == S3Location("shared", "scans/2026/")
    assert prefix.output == S3Location("photos-out", "results/run/")
    assert prefix.model.name == "imagenet"
