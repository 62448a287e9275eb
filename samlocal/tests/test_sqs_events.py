"""SQS event source mappings against the local AWS endpoint: real queues on moto's server, real Lambda runtime
workers, messages sent with boto3 over HTTP. The test function records each record it receives in a bucket."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from samlocal.testing import LocalApi

TEMPLATES = Path(__file__).resolve().parent / "templates"
WAIT = 60.0


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("samlocal-aws") / "console.log"
    # One environment for LargeBatchFunction: one poller, so its 10 s batching window gathers every message.
    local_api = LocalApi(
        TEMPLATES / "aws.yaml", log, "--warm-containers", "eager", "--pool-size", "LargeBatchFunction=1"
    )
    try:
        yield local_api
    finally:
        local_api.close()


def client(local: LocalApi, service: str) -> Any:
    assert local.aws_url is not None
    session: Any = boto3.session.Session()
    return session.client(
        service,
        endpoint_url=local.aws_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def function_environment(local: LocalApi) -> dict[str, str]:
    response = local.get("/env")
    assert response.status_code == 200, response.text
    environment: dict[str, str] = response.json()
    return environment


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Records:
    """What the test function recorded: {message id: {receive count: document}}."""

    def __init__(self, local: LocalApi) -> None:
        self.s3 = client(local, "s3")
        self.bucket = function_environment(local)["RECORDS_BUCKET"]

    def of(self, message_id: str) -> dict[int, dict[str, Any]]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"sqs/{message_id}/")
        found = {}
        for item in listing.get("Contents", []):
            body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
            found[int(item["Key"].rsplit("/", 1)[1])] = json.loads(body)
        return found


def queue_url(local: LocalApi, variable: str) -> str:
    return function_environment(local)[variable]


def send(sqs: Any, url: str, *bodies: dict[str, Any]) -> None:
    response = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(number), "MessageBody": json.dumps(body)} for number, body in enumerate(bodies)],
    )
    assert not response.get("Failed")


def queue_is_empty(sqs: Any, url: str) -> bool:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return bool(
        attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


def ids(prefix: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"{prefix}-{run}-{number}" for number in range(count)]


def test_the_console_prints_the_endpoint_its_resources_and_mappings(local: LocalApi) -> None:
    output = local.output()
    assert f"AWS endpoint (S3, SQS, DynamoDB) on {local.aws_url}" in output
    assert "-> PartialBatchFunction (batch size 3, batching window 1 s, up to 2 batch(es) at once" in output
    assert "WholeBatchFunction.Stream: DynamoDB stream events are not served" in output
    assert "WholeBatchFunction.Ordered: the mapping is disabled" in output


def test_functions_see_the_endpoint_and_the_physical_names_of_refs(local: LocalApi) -> None:
    environment = function_environment(local)
    sqs, s3, dynamodb = client(local, "sqs"), client(local, "s3"), client(local, "dynamodb")
    assert environment["AWS_ENDPOINT_URL"] == local.aws_url
    assert (environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]) == ("testing", "testing")
    name = environment["WORK_QUEUE_NAME"]
    assert name.startswith("local-WorkQueue-")
    assert environment["WORK_QUEUE_URL"] == sqs.get_queue_url(QueueName=name)["QueueUrl"]
    assert environment["WORK_QUEUE_ARN"] == f"arn:aws:sqs:us-east-1:123456789012:{name}"
    assert environment["PLAIN_QUEUE_URL"] == f"{local.aws_url}/123456789012/local-plain"
    assert environment["UPLOADS_BUCKET"] == "local-uploads"
    assert environment["UPLOADS_ARN"] == "arn:aws:s3:::local-uploads/*"
    buckets = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    assert {environment["RECORDS_BUCKET"], "local-uploads"} <= buckets
    assert environment["RECORDS_BUCKET"].startswith("local-recordsbucket-")
    table = dynamodb.describe_table(TableName=environment["JOBS_TABLE"])["Table"]
    assert table["TableArn"] == environment["JOBS_TABLE_ARN"]


def test_resources_have_the_properties_of_the_template(local: LocalApi) -> None:
    environment = function_environment(local)
    sqs, s3, dynamodb = client(local, "sqs"), client(local, "s3"), client(local, "dynamodb")
    attributes = sqs.get_queue_attributes(QueueUrl=environment["WORK_QUEUE_URL"], AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "5"
    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["maxReceiveCount"] == 2
    assert policy["deadLetterTargetArn"].split(":")[-1].startswith("local-DeadLetterQueue-")
    ordered = [url for url in sqs.list_queues()["QueueUrls"] if "OrderedQueue" in url]
    assert len(ordered) == 1 and ordered[0].endswith(".fifo")
    fifo = sqs.get_queue_attributes(QueueUrl=ordered[0], AttributeNames=["All"])["Attributes"]
    assert (fifo["FifoQueue"], fifo["ContentBasedDeduplication"]) == ("true", "true")
    assert s3.get_bucket_versioning(Bucket="local-uploads")["Status"] == "Enabled"
    table = dynamodb.describe_table(TableName=environment["JOBS_TABLE"])["Table"]
    assert {(key["AttributeName"], key["KeyType"]) for key in table["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=environment["JOBS_TABLE"])["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    counters = dynamodb.describe_table(TableName=environment["COUNTERS_TABLE"])["Table"]
    assert counters["KeySchema"] == [{"AttributeName": "counter", "KeyType": "HASH"}]


def test_batches_respect_the_batch_size_and_carry_the_sqs_event_shape(local: LocalApi) -> None:
    sqs, records = client(local, "sqs"), Records(local)
    url = queue_url(local, "WORK_QUEUE_URL")
    names = ids("size", 7)
    send(sqs, url, *({"id": name} for name in names))
    seen = wait_for(
        lambda: [records.of(name) for name in names] if all(records.of(name) for name in names) else None, "7 records"
    )
    assert all(list(attempts) == [1] for attempts in seen), "every message is processed once"
    batch_sizes = {len(attempts[1]["batch"]) for attempts in seen}
    assert max(batch_sizes) == 3
    record = seen[0][1]["record"]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == function_environment(local)["WORK_QUEUE_ARN"]
    assert record["awsRegion"] == "us-east-1"
    assert json.loads(record["body"])["id"] == names[0] or json.loads(record["body"])["id"] in names
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert seen[0][1]["function"] == "PartialBatchFunction"
    wait_for(lambda: queue_is_empty(sqs, url), "an empty queue")


def test_message_attributes_reach_the_function_as_lambda_spells_them(local: LocalApi) -> None:
    sqs, records = client(local, "sqs"), Records(local)
    (name,) = ids("attributes", 1)
    sqs.send_message(
        QueueUrl=queue_url(local, "WORK_QUEUE_URL"),
        MessageBody=json.dumps({"id": name}),
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "scan"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    record = wait_for(lambda: records.of(name), "the record")[1]["record"]
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "scan",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="
    assert "md5OfMessageAttributes" in record


def test_a_partial_batch_failure_redelivers_only_the_failed_message(local: LocalApi) -> None:
    sqs, records = client(local, "sqs"), Records(local)
    url = queue_url(local, "WORK_QUEUE_URL")
    first, failing, last = ids("partial", 3)
    send(sqs, url, {"id": first}, {"id": failing, "action": "fail", "until": 1}, {"id": last})
    retried = wait_for(lambda: records.of(failing).get(2), "the failed message's second delivery")
    assert retried["record"]["attributes"]["ApproximateReceiveCount"] == "2"
    wait_for(lambda: queue_is_empty(sqs, url), "an empty queue")
    assert list(records.of(first)) == [1]
    assert list(records.of(last)) == [1]
    assert list(records.of(failing)) == [1, 2]
    assert "left on the queue (batchItemFailures)" in local.output()


def test_a_message_that_keeps_failing_lands_in_the_dead_letter_queue(local: LocalApi) -> None:
    sqs, records = client(local, "sqs"), Records(local)
    url = queue_url(local, "WORK_QUEUE_URL")
    (poison,) = ids("poison", 1)
    send(sqs, url, {"id": poison, "action": "fail"})
    dead_letter_url = next(url for url in sqs.list_queues()["QueueUrls"] if "DeadLetterQueue" in url)

    def in_dead_letter_queue() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=dead_letter_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        return [message for message in messages.get("Messages", []) if json.loads(message["Body"])["id"] == poison]

    (message,) = wait_for(in_dead_letter_queue, "the message in the dead-letter queue")
    assert sorted(records.of(poison)) == [1, 2], "maxReceiveCount 2: two deliveries, then the DLQ"
    assert json.loads(message["Body"]) == {"id": poison, "action": "fail"}


@pytest.mark.parametrize("action", ["crash", "raise", "sleep"])
def test_a_function_error_or_timeout_redelivers_the_whole_batch(local: LocalApi, action: str) -> None:
    sqs, records = client(local, "sqs"), Records(local)
    url = queue_url(local, "PLAIN_QUEUE_URL")
    culprit, bystander = ids(action, 2)
    # The function's timeout is 2 s: a 5 s sleep times out.
    send(sqs, url, {"id": culprit, "action": action, "until": 1, "seconds": 5}, {"id": bystander})
    wait_for(lambda: records.of(culprit).get(2), "the second delivery")
    wait_for(lambda: queue_is_empty(sqs, url), "an empty queue")
    first, second = records.of(culprit)[1], records.of(culprit)[2]
    assert sorted(records.of(culprit)) == [1, 2]
    # A message that shared the failed batch comes back with it: nothing of that batch was deleted.
    bystander_records = records.of(bystander)
    bystander_id = bystander_records[max(bystander_records)]["record"]["messageId"]
    shared = bystander_id in first["batch"]
    assert max(bystander_records) == (2 if shared else 1)
    assert second["record"]["messageId"] == first["record"]["messageId"]
    expected = {
        "crash": "Runtime.ExitError",
        "raise": "function error RuntimeError: message",
        "sleep": "Sandbox.Timedout",
    }
    assert expected[action] in local.output()


def test_messages_matching_no_filter_pattern_are_deleted_without_an_invocation(local: LocalApi) -> None:
    sqs, records = client(local, "sqs"), Records(local)
    url = queue_url(local, "FILTERED_QUEUE_URL")
    scan, photo, urgent, wrong_kind, too_many_pages, no_pages, plain = ids("filter", 7)
    send(
        sqs,
        url,
        {"id": scan, "kind": "scan", "pages": 3},
        {"id": photo, "kind": "photo-raw", "pages": 10},
        {"id": urgent, "urgent": False},
        {"id": wrong_kind, "kind": "fax", "pages": 3},
        {"id": too_many_pages, "kind": "scan", "pages": 11},
        {"id": no_pages, "kind": "scan"},
    )
    sqs.send_message(QueueUrl=url, MessageBody=f"{plain} is not JSON")
    wait_for(lambda: all(records.of(name) for name in (scan, photo, urgent)), "the matching messages' records")
    # The message that is not JSON would fail the function forever (no DLQ): an empty queue shows it was dropped.
    wait_for(lambda: queue_is_empty(sqs, url), "an empty queue")
    assert [list(records.of(name)) for name in (scan, photo, urgent)] == [[1], [1], [1]]
    assert [records.of(name) for name in (wrong_kind, too_many_pages, no_pages)] == [{}, {}, {}]
    assert records.of(scan)[1]["function"] == "LargeBatchFunction"
    assert "matching no FilterCriteria pattern deleted without an invocation" in local.output()


def test_a_batch_over_six_megabytes_is_split_into_invocations_under_the_limit(local: LocalApi) -> None:
    sqs, records = client(local, "sqs"), Records(local)
    url = queue_url(local, "LARGE_QUEUE_URL")
    names = ids("large", 8)
    padding = "x" * 900_000
    for name in names:  # one by one: a SendMessageBatch request is limited to 1 MiB
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": name, "padding": padding}))
    seen = wait_for(
        lambda: [records.of(name) for name in names] if all(records.of(name) for name in names) else None, "8 records"
    )
    wait_for(lambda: queue_is_empty(sqs, url), "an empty queue")
    assert all(list(attempts) == [1] for attempts in seen), "every message is processed once"
    # 6 records of 900 kB fit in 6 MB, 7 do not.
    assert max(len(attempts[1]["batch"]) for attempts in seen) <= 6
    assert "exceeds Lambda's 6 MB payload, split into 2 invocations" in local.output()
