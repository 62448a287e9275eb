"""Jobs from submission to summary against moto's S3, SQS and DynamoDB (moto's server, over real sockets: the
worker reads images with presigned GETs of its own), with the real models: the queues are drained the way
Lambda's SQS event source would, including redeliveries and dead letters."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.jobs.config import JobSettings
from lambda_vision.jobs.locations import parse_locations
from lambda_vision.jobs.messages import ChunkMessage, PlanMessage, decode
from lambda_vision.jobs.objects import ObjectReader, ObjectWriter
from lambda_vision.jobs.planner import Planner
from lambda_vision.jobs.service import JobService
from lambda_vision.jobs.store import ChunkCount, Counted, JobStatus, JobStore
from lambda_vision.jobs.webhooks import WebhookPendingError, WebhookSender, verify
from lambda_vision.jobs.worker import Worker
from lambda_vision.models import ModelStore
from lambda_vision.pipeline import Pipeline
from lambda_vision.registry import ModelRegistry
from lambda_vision.settings import Settings
from sample_images import encode, photo_image, rotated_page
from webhook_receiver import webhook_receiver

BUCKET = "jobs-bucket"
SECRET = "webhook-s3cret"
UPRIGHT = rotated_page(0, "JPEG")
TURNED = rotated_page(90, "JPEG")  # reads as 270
COFFEE = encode(photo_image("coffee"), "JPEG", quality=90)  # the default classifier: espresso


class Stack:
    """The batch resources in moto and the three parts of the job system wired to them."""

    def __init__(self, models_dir: Path, page_size: int = 1000, chunk_size: int = 8) -> None:
        self.skew = 0.0  # seconds the job store's clock is ahead of the wall clock (leases expire sooner)
        self.s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.create_bucket(Bucket="other-bucket")
        self.work = self.sqs.create_queue(QueueName="work")["QueueUrl"]
        self.plan = self.sqs.create_queue(QueueName="plan")["QueueUrl"]
        table = dynamodb.create_table(
            TableName="jobs",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        self.settings = JobSettings(
            table="jobs",
            work_queue_url=self.work,
            plan_queue_url=self.plan,
            jobs_bucket=BUCKET,
            webhook_secret=SECRET,
            page_size=page_size,
            chunk_size=chunk_size,
            webhook_backoff_seconds=0.01,
        )
        settings = Settings(models_dir=models_dir, url_allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
        fetcher = UrlFetcher(FetchPolicy.from_settings(settings))
        self.store = JobStore(table, clock=lambda: time.time() + self.skew)
        registry = ModelRegistry.load(models_dir / "models.toml")
        self.service = JobService(self.settings, registry, fetcher, self.store, s3=self.s3, sqs=self.sqs)
        self.planner = Planner(self.settings, self.store, self.s3, self.sqs)
        self.worker = Worker(
            self.settings,
            self.store,
            writer=ObjectWriter(self.s3),
            models=ModelStore(registry, settings),
            pipeline=Pipeline(fetcher, settings.max_image_pixels),
            webhooks=WebhookSender(fetcher, SECRET, attempts=4, backoff_seconds=0.01),
            reader=ObjectReader(self.s3, settings.url_max_bytes),
        )

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)

    def receive(self, queue: str) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        return [dict(message) for message in messages]

    def drain(self, limit: int = 500) -> int:
        """Deliver every message until both queues are empty, as the event sources would; messages handled."""
        handled = 0
        while handled < limit:
            batch = [(self.plan, m) for m in self.receive(self.plan)] + [
                (self.work, m) for m in self.receive(self.work)
            ]
            if not batch:
                return handled
            for queue, message in batch:
                if queue == self.plan:
                    plan = decode(message["Body"])
                    assert isinstance(plan, PlanMessage)
                    self.planner.plan(plan)
                else:
                    self.worker.handle(message["Body"])
                self.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                handled += 1
        raise AssertionError("the queues did not drain")

    def handle_batch(self, bodies: list[str]) -> list[str]:
        """Work messages handled as the worker function handles an SQS batch (reads ahead, results written in
        the background, counted at the end); the ids (positions) of the messages to be delivered again."""
        self.worker.begin(None)
        self.worker.prefetch(bodies)
        failed = []
        try:
            for position, body in enumerate(bodies):
                try:
                    self.worker.handle(body, deferred_id=str(position))
                except Exception:  # noqa: BLE001 - reported as the batch utility would
                    failed.append(str(position))
        finally:
            failed += [item for item in self.worker.flush() if item not in failed]
            self.worker.reader.forget()
        return failed

    def lines(self, job_output: str) -> list[dict[str, Any]]:
        prefix = job_output.removeprefix(f"s3://{BUCKET}/")
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        found = []
        for entry in listing:
            if entry["Key"].endswith(".jsonl"):
                body = self.s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read().decode()
                found += [json.loads(line) for line in body.splitlines()]
        return found

    def summary(self, job_output: str) -> dict[str, Any]:
        key = job_output.removeprefix(f"s3://{BUCKET}/") + "summary.json"
        summary: dict[str, Any] = json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        return summary


@pytest.fixture
def stack(models_dir: Path, aws_endpoint: str) -> Stack:
    return Stack(models_dir, page_size=7, chunk_size=3)


def top(line: dict[str, Any]) -> str:
    return str(line["predictions"][0]["label"])


def test_a_prefix_job_writes_one_line_per_image_and_counts_exactly(stack: Stack) -> None:
    for index in range(12):
        stack.put(f"scans/page-{index:02d}.jpg", TURNED if index % 3 == 0 else UPRIGHT)
    stack.put("scans/broken.jpg", b"\xff\xd8 not really a jpeg")
    stack.put("scans/empty.png", b"")
    stack.put("scans/", b"")  # a folder marker, not an image
    stack.put("elsewhere/page.jpg", UPRIGHT)
    job = stack.service.submit({"input": f"s3://{BUCKET}/scans/", "model": "orientation", "parameters": {"top_k": 2}})
    assert stack.service.get(job.job_id).status is JobStatus.QUEUED

    stack.drain()

    final = stack.service.get(job.job_id)
    assert final.status is JobStatus.SUCCEEDED
    assert (final.total, final.succeeded, final.failed, final.skipped) == (14, 12, 2, 0)
    lines = stack.lines(final.output)
    assert sorted(line["key"] for line in lines) == sorted(
        [f"scans/page-{index:02d}.jpg" for index in range(12)] + ["scans/broken.jpg", "scans/empty.png"]
    )
    by_key = {line["key"]: line for line in lines}
    assert by_key["scans/broken.jpg"]["error"]["code"] == "image_undecodable"
    assert by_key["scans/empty.png"]["error"]["code"] == "image_empty"
    for index in range(12):
        line = by_key[f"scans/page-{index:02d}.jpg"]
        assert line["status"] == "ok" and len(line["predictions"]) == 2
        assert top(line) == ("270" if index % 3 == 0 else "0")
        assert line["width"] > 0 and line["height"] > 0
    summary = stack.summary(final.output)
    assert summary["status"] == "succeeded"
    assert summary["counts"] == {"total": 14, "succeeded": 12, "failed": 2, "skipped": 0}
    assert summary["finished_at"] is not None


def test_redelivered_messages_add_no_line_and_no_count(stack: Stack) -> None:
    for index in range(5):
        stack.put(f"in/{index}.jpg", UPRIGHT)
    job = stack.service.submit({"input": f"s3://{BUCKET}/in/", "model": "orientation"})
    (plan,) = stack.receive(stack.plan)
    stack.planner.plan(decode(plan["Body"]))  # type: ignore[arg-type]
    stack.planner.plan(decode(plan["Body"]))  # type: ignore[arg-type]  # the same page, delivered twice
    chunks = stack.receive(stack.work)
    bodies = [message["Body"] for message in chunks]
    for body in bodies + bodies:  # each chunk twice: SQS is at-least-once
        stack.worker.handle(body)
    stack.drain()
    final = stack.service.get(job.job_id)
    assert (final.status, final.total, final.succeeded, final.failed) == (JobStatus.SUCCEEDED, 5, 5, 0)
    assert len(stack.lines(final.output)) == 5


def planned_chunks(stack: Stack, images: int) -> tuple[str, list[str]]:
    for index in range(images):
        stack.put(f"in/{index:02d}.jpg", TURNED if index % 2 else UPRIGHT)
    job = stack.service.submit({"input": f"s3://{BUCKET}/in/", "model": "orientation"})
    while plans := stack.receive(stack.plan):
        for plan in plans:
            stack.planner.plan(decode(plan["Body"]))  # type: ignore[arg-type]
            stack.sqs.delete_message(QueueUrl=stack.plan, ReceiptHandle=plan["ReceiptHandle"])
    bodies = []
    while messages := stack.receive(stack.work):
        bodies += [message["Body"] for message in messages]
    return job.job_id, bodies


def test_a_batch_of_chunks_is_written_and_counted_as_the_worker_function_does(stack: Stack) -> None:
    job_id, bodies = planned_chunks(stack, 14)  # chunks of 3: 5 messages

    assert stack.handle_batch(bodies) == []

    final = stack.service.get(job_id)
    assert (final.status, final.total, final.succeeded, final.failed) == (JobStatus.SUCCEEDED, 14, 14, 0)
    lines = stack.lines(final.output)
    assert sorted(line["key"] for line in lines) == [f"in/{index:02d}.jpg" for index in range(14)]
    assert all(top(line) == ("270" if int(line["key"][3:5]) % 2 else "0") for line in lines)
    assert stack.summary(final.output)["counts"] == {"total": 14, "succeeded": 14, "failed": 0, "skipped": 0}


def chunk_messages(bodies: list[str]) -> list[ChunkMessage]:
    messages = [decode(body) for body in bodies]
    return [message for message in messages if isinstance(message, ChunkMessage)]


def test_a_batch_that_leaves_images_to_count_does_not_end_the_job_and_the_last_one_does(stack: Stack) -> None:
    job_id, bodies = planned_chunks(stack, 14)
    first = sum(len(message.items) for message in chunk_messages(bodies[:3]))

    assert stack.handle_batch(bodies[:3]) == []
    running = stack.service.get(job_id)
    assert (running.status, running.succeeded, running.pending) == (JobStatus.RUNNING, first, 14 - first)

    assert stack.handle_batch(bodies[3:]) == []
    final = stack.service.get(job_id)
    assert (final.status, final.succeeded, final.pending) == (JobStatus.SUCCEEDED, 14, 0)
    assert stack.summary(final.output)["status"] == "succeeded"


def test_counting_chunks_at_once_says_whether_the_job_has_images_left(stack: Stack) -> None:
    job_id, bodies = planned_chunks(stack, 6)  # chunks of 3, 3
    first, second = (message.chunk_id for message in chunk_messages(bodies))

    assert stack.store.count_chunks(job_id, [ChunkCount("0-a", succeeded=2)]) is Counted.IMAGES_LEFT
    assert stack.store.count_chunks(job_id, [ChunkCount("0-a", succeeded=2), ChunkCount(first, failed=3)]) is (
        Counted.ALREADY
    )
    assert stack.store.count_chunks(job_id, [ChunkCount(first, failed=3), ChunkCount("0-b", succeeded=1)]) is (
        Counted.COUNTED
    )
    job = stack.store.get(job_id)
    assert job is not None and (job.succeeded, job.failed, job.pending) == (3, 3, 0)
    assert stack.store.count_chunks(job_id, [ChunkCount(second, succeeded=3)]) is Counted.COUNTED, "past the end"


def test_a_chunk_counted_by_another_worker_meanwhile_is_not_counted_twice(stack: Stack) -> None:
    job_id, bodies = planned_chunks(stack, 9)
    stack.worker.begin(None)
    stack.worker.prefetch(bodies)
    stack.worker.handle(bodies[0], deferred_id="0")  # by now, this batch's state is read: nothing counted
    raced = decode(bodies[1])
    assert isinstance(raced, ChunkMessage)
    # Its visibility timeout ran out: another worker processed and counted the same message.
    assert stack.store.count_chunk(job_id, raced.chunk_id, succeeded=len(raced.items))

    for position, body in enumerate(bodies[1:], start=1):
        stack.worker.handle(body, deferred_id=str(position))
    assert stack.worker.flush() == []

    final = stack.service.get(job_id)
    assert (final.status, final.total, final.succeeded, final.failed) == (JobStatus.SUCCEEDED, 9, 9, 0)
    assert len(stack.lines(final.output)) == 9


def test_a_message_delivered_twice_in_one_batch_is_counted_once(stack: Stack) -> None:
    job_id, bodies = planned_chunks(stack, 6)

    assert stack.handle_batch([bodies[0], *bodies, bodies[1]]) == []

    final = stack.service.get(job_id)
    assert (final.status, final.total, final.succeeded, final.failed) == (JobStatus.SUCCEEDED, 6, 6, 0)
    assert len(stack.lines(final.output)) == 6


def test_a_list_job_mixes_objects_urls_and_missing_objects(stack: Stack) -> None:
    stack.put("a/one.jpg", UPRIGHT)
    with webhook_receiver() as hooks:
        image_url = hooks.url.replace("/hooks/jobs?token=t0k3n", "/image.jpg")  # answers 204: no image
        job = stack.service.submit(
            {"input": [f"s3://{BUCKET}/a/one.jpg", f"s3://{BUCKET}/a/missing.jpg", image_url], "model": "orientation"}
        )
        stack.drain()
    final = stack.service.get(job.job_id)
    assert (final.total, final.succeeded, final.failed) == (3, 1, 2)
    by_key = {line["key"]: line for line in stack.lines(final.output)}
    assert top(by_key[f"s3://{BUCKET}/a/one.jpg"]) == "0"
    assert by_key[f"s3://{BUCKET}/a/missing.jpg"]["error"]["code"] == "object_not_found"
    assert by_key[image_url]["error"]["code"] == "url_http_error"


def check_signed(delivery: Any, job_id: str, attempt: int) -> dict[str, Any]:
    """What a receiver checks: the signature over the raw body, the delivery id; the document it carries."""
    expected = "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Signature-256"] == expected
    assert verify(SECRET, delivery.body, delivery.headers["X-Signature-256"])
    assert delivery.headers["X-Webhook-Id"] == job_id
    assert delivery.headers["X-Webhook-Attempt"] == str(attempt)
    assert delivery.headers["Content-Type"] == "application/json"
    document: dict[str, Any] = json.loads(delivery.body)
    assert document["job_id"] == job_id
    assert "webhook" not in document  # the body is the same bytes on every attempt
    return document


def test_the_webhook_is_sent_once_signed_after_retries(stack: Stack) -> None:
    for index in range(4):
        stack.put(f"w/{index}.jpg", UPRIGHT)
    with webhook_receiver(failures=2) as hooks:
        job = stack.service.submit({"input": f"s3://{BUCKET}/w/", "webhook": hooks.url})
        stack.drain()
        # A finish request delivered again later sends nothing more.
        stack.worker.complete(job.job_id, always=True)
    assert hooks.attempts == 3
    assert len({delivery.body for delivery in hooks.received}) == 1
    (delivery,) = hooks.deliveries
    assert delivery.path == "/hooks/jobs?token=t0k3n"
    document = check_signed(delivery, job.job_id, attempt=3)
    assert document["status"] == "succeeded"
    assert document["counts"] == {"total": 4, "succeeded": 4, "failed": 0, "skipped": 0}
    recorded = stack.service.get(job.job_id).document()["webhook"]
    assert recorded.pop("delivered_at").startswith(time.strftime("%Y-%m-%dT", time.gmtime()))
    assert recorded == {"id": job.job_id, "state": "delivered", "attempts": 3, "status_code": 204}


def test_a_webhook_receiver_that_keeps_failing_is_given_up_on(stack: Stack) -> None:
    stack.put("f/0.jpg", UPRIGHT)
    with webhook_receiver(failures=100) as hooks:
        job = stack.service.submit({"input": f"s3://{BUCKET}/f/", "webhook": hooks.url})
        stack.drain()
        stack.worker.complete(job.job_id, always=True)  # a later delivery does not start again
    assert hooks.attempts == 4 and not hooks.deliveries
    final = stack.service.get(job.job_id)
    assert final.status is JobStatus.SUCCEEDED  # the job's outcome is its images', not its webhook's
    recorded = final.document()["webhook"]
    assert recorded.pop("failed_at") is not None
    assert recorded == {"id": job.job_id, "state": "failed", "attempts": 4, "status_code": 503,
                        "last_error": "http_503"}  # fmt: skip


def test_a_webhook_refused_with_a_4xx_is_not_sent_again(stack: Stack) -> None:
    stack.put("g/0.jpg", UPRIGHT)
    with webhook_receiver(failures=100, failure_status=410) as hooks:
        job = stack.service.submit({"input": f"s3://{BUCKET}/g/", "webhook": hooks.url})
        stack.drain()
    assert hooks.attempts == 1
    recorded = stack.service.get(job.job_id).document()["webhook"]
    assert (recorded["state"], recorded["attempts"], recorded["last_error"]) == ("failed", 1, "http_410")


class Killed(BaseException):
    """The worker's process dying (killed, out of memory, timed out): nothing after it runs."""


class DyingFetcher:
    """The worker's URL fetcher, whose process dies at its first webhook POST."""

    def __init__(self, fetcher: UrlFetcher) -> None:
        self.fetcher = fetcher
        self.deaths = 1

    def post(self, url: str, body: bytes, headers: Any, deadline: float | None = None) -> int:
        if self.deaths:
            self.deaths -= 1
            raise Killed
        return self.fetcher.post(url, body, headers, deadline)


def test_a_worker_dying_after_claiming_the_webhook_leaves_it_to_the_redelivered_message(stack: Stack) -> None:
    for index in range(5):
        stack.put(f"k/{index}.jpg", UPRIGHT)
    sender = stack.worker.webhooks.sender
    sender.fetcher = DyingFetcher(sender.fetcher)  # type: ignore[assignment]
    with webhook_receiver() as hooks:
        job = stack.service.submit({"input": f"s3://{BUCKET}/k/", "webhook": hooks.url})
        (plan,) = stack.receive(stack.plan)
        stack.planner.plan(decode(plan["Body"]))  # type: ignore[arg-type]
        *earlier, last = sorted(stack.receive(stack.work), key=lambda message: '"chunk"' in message["Body"])
        assert '"chunk"' in last["Body"] and len(earlier) == 2  # the planner's finish request, the first chunk
        for message in earlier:
            stack.worker.handle(message["Body"])
            stack.sqs.delete_message(QueueUrl=stack.work, ReceiptHandle=message["ReceiptHandle"])
        with pytest.raises(Killed):
            stack.worker.handle(last["Body"])  # counts the last images, finishes the job, claims, dies
        # Its message is not deleted; the job is final with its webhook leased to the dead worker.
        dying = stack.service.get(job.job_id)
        assert dying.status is JobStatus.SUCCEEDED
        assert dying.document()["webhook"] == {"id": job.job_id, "state": "sending", "attempts": 1}

        # Another delivery while the lease runs sends nothing: the sender might still be alive.
        stack.worker.complete(job.job_id, always=True)
        assert hooks.attempts == 0

        # SQS delivers the message again after its visibility timeout, by which time the lease has expired.
        stack.skew += 61
        stack.sqs.change_message_visibility(QueueUrl=stack.work, ReceiptHandle=last["ReceiptHandle"],
                                            VisibilityTimeout=0)  # fmt: skip
        assert stack.drain() == 1
        (delivery,) = hooks.deliveries
        document = check_signed(delivery, job.job_id, attempt=2)
        assert (document["status"], document["counts"]["succeeded"]) == ("succeeded", 5)

        # The message delivered yet again, and the finish request of a planner, send nothing more.
        stack.worker.handle(last["Body"])
        stack.worker.handle(json.dumps({"kind": "finish", "job_id": job.job_id}))
    assert hooks.attempts == 1
    recorded = stack.service.get(job.job_id).document()["webhook"]
    assert (recorded["state"], recorded["attempts"], recorded["status_code"]) == ("delivered", 2, 204)
    assert len(stack.lines(document["output"])) == 5


def test_a_dead_lettered_finish_request_still_sends_a_webhook_left_open(stack: Stack) -> None:
    stack.put("o/0.jpg", UPRIGHT)
    sender = stack.worker.webhooks.sender
    sender.fetcher = DyingFetcher(sender.fetcher)  # type: ignore[assignment]
    with webhook_receiver() as hooks:
        job = stack.service.submit({"input": [f"s3://{BUCKET}/o/0.jpg"], "webhook": hooks.url})
        (chunk,) = stack.receive(stack.work)
        with pytest.raises(Killed):
            stack.worker.handle(chunk["Body"])
        stack.skew += 61  # the dead worker's lease has expired
        stack.worker.dead_letter(json.dumps({"kind": "finish", "job_id": job.job_id}))
    (delivery,) = hooks.deliveries
    check_signed(delivery, job.job_id, attempt=2)
    assert stack.service.get(job.job_id).document()["webhook"]["state"] == "delivered"


def test_a_worker_out_of_time_hands_the_webhook_to_the_next_delivery(stack: Stack) -> None:
    stack.put("t/0.jpg", UPRIGHT)
    sender = stack.worker.webhooks.sender
    sender.backoff_seconds, sender.timeout_seconds = 5.0, 10.0
    with webhook_receiver(failures=1) as hooks:
        job = stack.service.submit({"input": [f"s3://{BUCKET}/t/0.jpg"], "webhook": hooks.url})
        (chunk,) = stack.receive(stack.work)
        stack.worker.begin(
            remaining_seconds=10.0
        )  # time for one POST (5 s and 2 to record it), not a backoff of 5 s too
        with pytest.raises(WebhookPendingError):
            stack.worker.handle(chunk["Body"])
        waiting = stack.service.get(job.job_id).document()["webhook"]
        assert waiting == {"id": job.job_id, "state": "sending", "attempts": 1, "status_code": 503,
                           "last_error": "http_503"}  # fmt: skip
        # The lease was ended, not left to expire: the redelivered message goes on at once.
        stack.worker.begin(remaining_seconds=120.0)
        stack.worker.handle(chunk["Body"])
    assert hooks.attempts == 2
    check_signed(hooks.deliveries[0], job.job_id, attempt=2)
    final = stack.service.get(job.job_id).document()
    assert (final["status"], final["webhook"]["state"], final["webhook"]["attempts"]) == ("succeeded", "delivered", 2)


def test_cancel_skips_work_not_started(stack: Stack) -> None:
    for index in range(9):
        stack.put(f"c/{index}.jpg", UPRIGHT)
    job = stack.service.submit({"input": f"s3://{BUCKET}/c/"})
    (plan,) = stack.receive(stack.plan)
    stack.planner.plan(decode(plan["Body"]))  # type: ignore[arg-type]
    stack.sqs.delete_message(QueueUrl=stack.plan, ReceiptHandle=plan["ReceiptHandle"])
    first, *rest = stack.receive(stack.work)
    stack.worker.handle(first["Body"])
    stack.sqs.delete_message(QueueUrl=stack.work, ReceiptHandle=first["ReceiptHandle"])
    assert stack.service.get(job.job_id).status is JobStatus.RUNNING
    cancelled = stack.service.cancel(job.job_id)
    assert cancelled.status is JobStatus.CANCELLED
    for message in rest:
        stack.sqs.change_message_visibility(QueueUrl=stack.work, ReceiptHandle=message["ReceiptHandle"],
                                            VisibilityTimeout=0)  # fmt: skip
    stack.drain()
    final = stack.service.get(job.job_id)
    assert final.status is JobStatus.CANCELLED
    # Pages of 7 keys: the second page is never listed once the job is cancelled, the first page's rest is skipped.
    assert (final.total, final.succeeded, final.skipped) == (7, 3, 4)
    assert len(stack.lines(final.output)) == 3
    assert stack.summary(final.output)["counts"]["skipped"] == 4
    with pytest.raises(ApiError) as again:
        stack.service.cancel(job.job_id)
    assert (again.value.status, again.value.code) == (409, ErrorCode.JOB_FINISHED)


def test_a_dead_lettered_chunk_counts_its_images_failed_and_the_job_finishes(stack: Stack) -> None:
    for index in range(6):
        stack.put(f"d/{index}.jpg", UPRIGHT)
    job = stack.service.submit({"input": f"s3://{BUCKET}/d/"})
    (plan,) = stack.receive(stack.plan)
    stack.planner.plan(decode(plan["Body"]))  # type: ignore[arg-type]
    stack.sqs.delete_message(QueueUrl=stack.plan, ReceiptHandle=plan["ReceiptHandle"])
    poison, healthy = stack.receive(stack.work)[:2]
    stack.worker.handle(healthy["Body"])
    stack.worker.dead_letter(poison["Body"])
    stack.worker.dead_letter(poison["Body"])  # the dead-letter queue delivers at least once too
    final = stack.service.get(job.job_id)
    assert final.status is JobStatus.FAILED
    assert (final.total, final.succeeded, final.failed) == (6, 3, 3)
    assert "dead-lettered" in (final.error or "")
    lines = stack.lines(final.output)
    assert len(lines) == 6
    assert sum(line.get("error", {}).get("code") == "message_failed" for line in lines) == 3


def test_unknown_and_malformed_job_ids_are_not_found(stack: Stack) -> None:
    for job_id in ("0" * 32, "../../etc", "JOB#x"):
        with pytest.raises(ApiError) as missing:
            stack.service.get(job_id)
        assert (missing.value.status, missing.value.code) == (404, ErrorCode.JOB_NOT_FOUND)


def test_submission_checks_the_buckets(stack: Stack) -> None:
    with pytest.raises(ApiError) as empty:
        stack.service.submit({"input": f"s3://{BUCKET}/nothing-here/"})
    assert (empty.value.status, empty.value.code) == (422, ErrorCode.EMPTY_INPUT)
    stack.put("x/a.jpg", UPRIGHT)
    stack.service.settings = replace(stack.settings, output_locations=parse_locations("gone-bucket"))
    with pytest.raises(ApiError) as gone:
        stack.service.submit({"input": f"s3://{BUCKET}/x/", "output": "s3://gone-bucket/out/"})
    assert (gone.value.status, gone.value.code) == (422, ErrorCode.LOCATION_NOT_FOUND)


def test_images_dropped_under_incoming_are_classified_into_results(stack: Stack) -> None:
    stack.put("incoming/batch 1/turned.jpg", COFFEE)
    notification = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": "incoming/batch+1/turned.jpg"}},
            }
        ]
    }
    stack.worker.handle(json.dumps(notification))
    body = stack.s3.get_object(Bucket=BUCKET, Key="results/incoming/batch 1/turned.jpg.jsonl")["Body"].read()
    (line,) = [json.loads(text) for text in body.decode().splitlines()]
    assert line["key"] == "incoming/batch 1/turned.jpg"
    assert line["model"] == "imagenet"
    assert top(line) == "espresso"
