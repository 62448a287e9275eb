"""S3 notifications to functions against the local AWS endpoint: objects put with boto3 over HTTP invoke the
function asynchronously with Lambda's S3 event; a failing invocation is retried twice, then sent to the
function's OnFailure queue. The test function records each S3 record under `s3/<key>/<time>`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samlocal.event_sources import EventSourceError
from samlocal.s3_notifications import AsyncInvokeConfig, async_invoke_config, lambda_record
from samlocal.testing import LocalApi
from test_sqs_events import client, wait_for

TEMPLATES = Path(__file__).resolve().parent / "templates"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("samlocal-s3") / "console.log"
    local_api = LocalApi(TEMPLATES / "aws.yaml", log, "--warm-containers", "eager")
    try:
        yield local_api
    finally:
        local_api.close()


def function_environment(local: LocalApi, path: str = "/env") -> dict[str, str]:
    response = local.get(path)
    assert response.status_code == 200, response.text
    environment: dict[str, str] = response.json()
    return environment


@given(st.text(min_size=1, max_size=60))
def test_event_keys_are_form_encoded_with_their_slashes(key: str) -> None:
    from urllib.parse import quote_plus, unquote_plus  # noqa: PLC0415

    record = lambda_record({"s3": {"object": {"key": quote_plus(key)}}}, "0")
    encoded = record["s3"]["object"]["key"]
    assert unquote_plus(encoded) == key
    assert " " not in encoded
    assert encoded.count("/") == key.count("/")


def test_event_invoke_config_reads_retries_and_sqs_destinations() -> None:
    assert async_invoke_config("F", {}) == (AsyncInvokeConfig(), [])
    config, warnings = async_invoke_config(
        "F",
        {
            "MaximumRetryAttempts": 0,
            "MaximumEventAgeInSeconds": 60,
            "DestinationConfig": {
                "OnFailure": {"Type": "SQS", "Destination": "arn:aws:sqs:us-east-1:123456789012:failed"},
                "OnSuccess": {"Type": "SNS", "Destination": "arn:aws:sns:us-east-1:123456789012:done"},
            },
        },
    )
    assert config == AsyncInvokeConfig(0, 60.0, "failed", None)
    assert warnings == [
        "F.EventInvokeConfig: the OnSuccess destination SNS arn:aws:sns:us-east-1:123456789012:done is not served "
        "(only SQS queues given by ARN)"
    ]
    with pytest.raises(EventSourceError, match="MaximumRetryAttempts must be 0, 1 or 2, got 3"):
        async_invoke_config("F", {"MaximumRetryAttempts": 3})


def deliveries(local: LocalApi, encoded_key: str) -> list[dict[str, Any]]:
    """What the function recorded for an object, first delivery first."""
    s3 = client(local, "s3")
    bucket = function_environment(local)["RECORDS_BUCKET"]
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"s3/{encoded_key}/")
    keys = sorted(item["Key"] for item in listing.get("Contents", []))
    return [json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]


def test_the_console_lists_the_s3_notifications(local: LocalApi) -> None:
    output = local.output()
    assert "S3 local-uploads s3:ObjectCreated:* prefix=incoming/ suffix=.jpg -> UploadFunction (asynchronous" in output
    assert "s3:ObjectCreated:Put suffix=.png -> UploadFunction" in output


def test_an_object_under_the_prefix_invokes_the_function_with_the_s3_event(local: LocalApi) -> None:
    s3 = client(local, "s3")
    run = uuid.uuid4().hex[:8]
    key = f"incoming/{run}/a photo.jpg"
    body = b"\xff\xd8 not really a jpeg"
    put = s3.put_object(Bucket="local-uploads", Key=key, Body=body)
    # Neither outside the prefix nor with another suffix: no invocation.
    s3.put_object(Bucket="local-uploads", Key=f"elsewhere/{run}/b.jpg", Body=b"x")
    s3.put_object(Bucket="local-uploads", Key=f"incoming/{run}/c.txt", Body=b"x")
    encoded = f"incoming/{run}/a+photo.jpg"  # S3 URL-encodes keys in events
    (seen,) = wait_for(lambda: deliveries(local, encoded), "the S3 event")
    record = seen["record"]
    assert seen["function"] == "UploadFunction"
    assert record["eventSource"] == "aws:s3"
    assert record["eventVersion"] == "2.1"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["awsRegion"] == "us-east-1"
    assert record["eventTime"].endswith("Z")
    assert record["userIdentity"]["principalId"]
    assert set(record["responseElements"]) == {"x-amz-request-id", "x-amz-id-2"}
    assert record["s3"]["bucket"]["name"] == "local-uploads"
    assert record["s3"]["bucket"]["arn"] == "arn:aws:s3:::local-uploads"
    obj = record["s3"]["object"]
    assert obj["key"] == encoded
    assert obj["size"] == len(body)
    assert obj["eTag"] == put["ETag"].strip('"')
    assert len(obj["sequencer"]) >= 16
    # The other objects stay unseen (their events, had they matched, are delivered by now too).
    s3.put_object(Bucket="local-uploads", Key=f"incoming/{run}/marker.jpg", Body=b"x")
    wait_for(lambda: deliveries(local, f"incoming/{run}/marker.jpg"), "the marker's event")
    assert deliveries(local, f"elsewhere/{run}/b.jpg") == []
    assert deliveries(local, f"incoming/{run}/c.txt") == []


def test_a_bucket_lambda_configuration_invokes_the_function(local: LocalApi) -> None:
    s3 = client(local, "s3")
    inbox = function_environment(local, "/upload-env")["INBOX_BUCKET"]
    key = f"{uuid.uuid4().hex[:8]}.png"
    s3.put_object(Bucket=inbox, Key=key, Body=b"png")
    (seen,) = wait_for(lambda: deliveries(local, key), "the S3 event")
    assert seen["record"]["s3"]["bucket"]["name"] == inbox
    assert seen["record"]["s3"]["object"]["key"] == key


def test_a_failing_invocation_is_retried_twice_then_sent_to_the_on_failure_queue(local: LocalApi) -> None:
    s3, sqs = client(local, "s3"), client(local, "sqs")
    key = f"incoming/fail-{uuid.uuid4().hex[:8]}.jpg"
    s3.put_object(Bucket="local-uploads", Key=key, Body=b"x")
    failed_url = next(url for url in sqs.list_queues()["QueueUrls"] if "FailedEventsQueue" in url)

    def in_failed_queue() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=failed_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        documents = [json.loads(message["Body"]) for message in messages.get("Messages", [])]
        return [
            document for document in documents if document["requestPayload"]["Records"][0]["s3"]["object"]["key"] == key
        ]

    (document,) = wait_for(in_failed_queue, "the invocation record in the OnFailure queue")
    attempts = deliveries(local, key)
    assert len(attempts) == 3, "one invocation and two retries"
    assert len({attempt["request"] for attempt in attempts}) == 1, "retries keep the request id"
    assert document["requestContext"]["condition"] == "RetriesExhausted"
    assert document["requestContext"]["approximateInvokeCount"] == 3
    assert document["requestContext"]["requestId"] == attempts[0]["request"]
    assert document["requestContext"]["functionArn"].endswith(":function:UploadFunction:$LATEST")
    assert document["responseContext"]["functionError"] == "Unhandled"
    assert document["responsePayload"]["errorType"] == "RuntimeError"
    assert "attempt 3 failed (RuntimeError: object" in local.output()
    assert "RetriesExhausted, the event is sent to local-FailedEventsQueue-" in local.output()
