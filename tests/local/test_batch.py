"""Batch jobs end to end on the local stack: `samlocal start-api` on template.yaml with its local AWS endpoint
(moto server: the jobs bucket, the queues, the table), the planner, worker and dead-letter functions driven by
their SQS event sources, the real models, and a webhook receiver, all over sockets on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from samlocal.testing import LocalApi
from sample_images import encode, photo_image, rotated_page
from support import ROOT
from webhook_receiver import Receiver, webhook_receiver

SECRET = "local-webhook-secret"
UPRIGHT = rotated_page(0, "JPEG")
TURNED = rotated_page(90, "JPEG")  # reads as 270
COFFEE = encode(photo_image("coffee"), "JPEG", quality=90)  # the default classifier: espresso
WORKER_TIMEOUT = 20  # seconds: a chunk takes well under it even on a busy machine; /stall/ outlasts it
LOCAL_URLS = {"URL_ALLOWED_NETWORKS": "127.0.0.0/8"}


class Gate:
    """An image server on 127.0.0.1 whose /gate/ and /stall/ paths hold the request: /gate/ until opened,
    /stall/ for longer than the worker may run (a message that fails on every delivery)."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.hits: dict[str, int] = {}
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.hits[self.path] = gate.hits.get(self.path, 0) + 1
                if self.path.startswith("/gate/"):
                    gate.entered.set()
                    gate.opened.wait(timeout=60)
                elif self.path.startswith("/stall/"):
                    time.sleep(WORKER_TIMEOUT + 4)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(UPRIGHT)))
                self.end_headers()
                self.wfile.write(UPRIGHT)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def gate() -> Iterator[Gate]:
    server = Gate()
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, hooks: Receiver, gate: Gate) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("batch") / "console.log"
    overrides = (
        f"WebhookSecret={SECRET} WorkerTimeout={WORKER_TIMEOUT} WorkQueueVisibilityTimeout={WORKER_TIMEOUT + 5} "
        "MaxReceiveCount=2 WorkerBatchSize=1"
    )
    worker = {**LOCAL_URLS, "URL_READ_TIMEOUT": "60", "URL_TIMEOUT": "60", "WEBHOOK_BACKOFF_SECONDS": "0.2"}
    env_vars = {"InferenceFunction": LOCAL_URLS, "WorkerFunction": worker, "DeadLetterFunction": worker}
    local = LocalApi(
        ROOT / "template.yaml", log, "--warm-containers", "eager", "--parameter-overrides", overrides,
        env_vars=env_vars,
    )  # fmt: skip
    try:
        assert local.aws_url, local.output()
        yield local
    finally:
        local.close()


@pytest.fixture(scope="module")
def s3(stack: LocalApi) -> Any:
    return boto3.client(
        "s3", endpoint_url=stack.aws_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    names = [entry["Name"] for entry in s3.list_buckets()["Buckets"] if "jobsbucket" in entry["Name"]]
    assert len(names) == 1, names
    return str(names[0])


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s")


def finished(stack: LocalApi, job_id: str, timeout: float = 300) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        document: dict[str, Any] = stack.get(f"/jobs/{job_id}").json()
        return document if document["status"] in {"succeeded", "failed", "cancelled"} else None

    document: dict[str, Any] = wait_for(final, timeout, f"job {job_id} finished\n{stack.output()[-3000:]}")
    return document


def result_lines(s3: Any, output: str) -> list[dict[str, Any]]:
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    lines = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            if entry["Key"].endswith(".jsonl"):
                body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read().decode()
                lines += [json.loads(line) for line in body.splitlines()]
    return lines


def submit(stack: LocalApi, job: dict[str, Any]) -> str:
    response = stack.post("/jobs", json=job)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["status_url"] == f"{stack.url}/jobs/{body['job_id']}"
    return str(body["job_id"])


def deliveries_for(hooks: Receiver, job_id: str) -> list[Any]:
    return [delivery for delivery in hooks.deliveries if json.loads(delivery.body)["job_id"] == job_id]


def test_a_job_of_300_images_with_corrupt_ones(stack: LocalApi, s3: Any, bucket: str, hooks: Receiver) -> None:
    expected: dict[str, str | None] = {}
    for index in range(300):
        key = f"big/{index:03d}.jpg"
        if index % 30 == 7:
            s3.put_object(Bucket=bucket, Key=key, Body=b"\xff\xd8\xff corrupt " + bytes([index % 256]))
            expected[key] = None
        else:
            s3.put_object(Bucket=bucket, Key=key, Body=TURNED if index % 4 == 0 else UPRIGHT)
            expected[key] = "270" if index % 4 == 0 else "0"
    job_id = submit(
        stack,
        {"input": f"s3://{bucket}/big/", "model": "orientation", "webhook": hooks.url, "parameters": {"top_k": 1}},
    )
    document = finished(stack, job_id, timeout=600)
    corrupt = sum(1 for label in expected.values() if label is None)
    assert document["status"] == "succeeded"
    assert document["counts"] == {"total": 300, "succeeded": 300 - corrupt, "failed": corrupt, "skipped": 0}
    lines = result_lines(s3, document["output"])
    assert len(lines) == 300
    by_key = {line["key"]: line for line in lines}
    assert set(by_key) == set(expected)
    for key, label in expected.items():
        if label is None:
            assert by_key[key]["error"]["code"] == "image_undecodable", by_key[key]
        else:
            assert [p["label"] for p in by_key[key]["predictions"]] == [label], key
    summary_key = document["output"].removeprefix(f"s3://{bucket}/") + "summary.json"
    summary = json.loads(s3.get_object(Bucket=bucket, Key=summary_key)["Body"].read())
    assert summary["counts"] == document["counts"]

    # The completion webhook: once, signed over the raw body with the stack's secret. (An invocation that
    # finishes the job with too little time left for a POST leaves it to its message's redelivery, 25 s later.)
    (delivery,) = wait_for(lambda: deliveries_for(hooks, job_id), 90, f"the webhook\n{stack.output()[-3000:]}")
    signature = "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Signature-256"] == signature
    sent = json.loads(delivery.body)
    assert (sent["status"], sent["counts"]) == ("succeeded", document["counts"])
    time.sleep(2)
    assert len(deliveries_for(hooks, job_id)) == 1
    assert delivery.headers["X-Webhook-Id"] == job_id
    assert stack.get(f"/jobs/{job_id}").json()["webhook"]["state"] == "delivered"


def worker_pids(stack: LocalApi) -> list[int]:
    """The execution environments of WorkerFunction (awslambdaric processes running its handler)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        parent = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:"))
        if b"worker.lambda_handler" in command and parent == stack.process.pid:
            found.append(int(entry.name))
    return found


def test_a_worker_killed_in_the_middle_of_a_batch(stack: LocalApi, s3: Any, bucket: str, gate: Gate) -> None:
    for index in range(5):
        s3.put_object(Bucket=bucket, Key=f"kill/{index}.jpg", Body=UPRIGHT)
    inputs = [f"s3://{bucket}/kill/{index}.jpg" for index in range(5)] + [f"{gate.url}/gate/held.jpg"]
    job_id = submit(stack, {"input": inputs})
    assert gate.entered.wait(timeout=60), stack.output()[-3000:]
    pids = worker_pids(stack)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    gate.opened.set()
    document = finished(stack, job_id, timeout=240)
    assert document["status"] == "succeeded"
    assert document["counts"] == {"total": 6, "succeeded": 6, "failed": 0, "skipped": 0}
    lines = result_lines(s3, document["output"])
    assert sorted(line["key"] for line in lines) == sorted(inputs)
    assert gate.hits["/gate/held.jpg"] >= 2  # delivered again after the crash


def test_a_worker_killed_while_sending_the_webhook(stack: LocalApi, s3: Any, bucket: str) -> None:
    for index in range(3):
        s3.put_object(Bucket=bucket, Key=f"hook-kill/{index}.jpg", Body=UPRIGHT)
    with webhook_receiver(holds=1) as receiver:
        job_id = submit(
            stack, {"input": [f"s3://{bucket}/hook-kill/{index}.jpg" for index in range(3)], "webhook": receiver.url}
        )
        assert receiver.held.wait(timeout=120), stack.output()[-3000:]  # the first POST, held unanswered
        pids = worker_pids(stack)
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        receiver.release.set()
        document = stack.get(f"/jobs/{job_id}").json()
        assert document["status"] == "succeeded"
        assert (document["webhook"]["state"], document["webhook"]["attempts"]) == ("sending", 1)
        # After the visibility timeout the message comes back; the dead worker's lease has expired by then.
        (delivery,) = wait_for(lambda: receiver.deliveries, 180, f"the webhook sent again\n{stack.output()[-3000:]}")
        time.sleep(2)
    assert receiver.attempts == 2 and len(receiver.deliveries) == 1
    assert receiver.received[0].body == delivery.body
    assert delivery.headers["X-Webhook-Id"] == job_id
    assert delivery.headers["X-Webhook-Attempt"] == "2"
    signature = "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Signature-256"] == signature
    sent = json.loads(delivery.body)
    assert (sent["job_id"], sent["status"], sent["counts"]["succeeded"]) == (job_id, "succeeded", 3)
    recorded = stack.get(f"/jobs/{job_id}").json()["webhook"]
    assert (recorded["state"], recorded["attempts"], recorded["status_code"]) == ("delivered", 2, 204)
    assert len(result_lines(s3, sent["output"])) == 3


def test_a_message_failing_every_delivery_ends_in_the_dead_letter_queue(stack: LocalApi, s3: Any, gate: Gate) -> None:
    url = f"{gate.url}/stall/slow.jpg"
    job_id = submit(stack, {"input": [url]})
    document = finished(stack, job_id, timeout=300)
    assert document["status"] == "failed"
    assert document["counts"] == {"total": 1, "succeeded": 0, "failed": 1, "skipped": 0}
    assert "dead-lettered" in document["error"]
    (line,) = result_lines(s3, document["output"])
    assert (line["key"], line["error"]["code"]) == (url, "message_failed")
    assert gate.hits["/stall/slow.jpg"] == 2  # MaxReceiveCount deliveries, then the dead-letter queue
    assert "Task timed out" in stack.output()


def test_images_dropped_under_incoming_are_processed(stack: LocalApi, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="incoming/scans/turned page.jpg", Body=COFFEE)

    def result() -> bytes | None:
        try:
            response = s3.get_object(Bucket=bucket, Key="results/incoming/scans/turned page.jpg.jsonl")
        except s3.exceptions.NoSuchKey:
            return None
        body: bytes = response["Body"].read()
        return body

    (line,) = [json.loads(text) for text in wait_for(result, 60, "the dropped image's result").splitlines()]
    assert line["key"] == "incoming/scans/turned page.jpg"
    assert line["model"] == "imagenet"
    assert line["predictions"][0]["label"] == "espresso"


def test_cancel_skips_the_work_not_started(stack: LocalApi, s3: Any, bucket: str) -> None:
    job_id = submit(stack, {"input": f"s3://{bucket}/big/"})
    response = stack.request("DELETE", f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"

    def drained() -> dict[str, Any] | None:
        document: dict[str, Any] = stack.get(f"/jobs/{job_id}").json()
        counts = document["counts"]
        done = counts["succeeded"] + counts["failed"] + counts["skipped"]
        return document if counts["total"] == 300 and done == 300 else None

    document = wait_for(drained, 300, "the cancelled job's messages drained")
    assert document["status"] == "cancelled"
    counts = document["counts"]
    assert counts["skipped"] > 0
    assert len(result_lines(s3, document["output"])) == counts["succeeded"] + counts["failed"]
    again = stack.request("DELETE", f"/jobs/{job_id}")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"


def test_every_bad_job_request(stack: LocalApi, bucket: str) -> None:
    cases: list[tuple[Any, int, str]] = [
        ({"input": "not-an-s3-uri"}, 422, "invalid_uri"),
        ({"input": "s3://somebody-elses-bucket/photos/"}, 403, "location_forbidden"),
        ({"input": f"s3://{bucket}/big/", "output": f"s3://{bucket}/incoming/"}, 403, "location_forbidden"),
        ({"input": f"s3://{bucket}/big/", "model": "no-such-model"}, 404, "model_not_found"),
        ({"input": f"s3://{bucket}/big/", "parameters": {"top_k": 0}}, 422, "invalid_parameter"),
        ({"input": f"s3://{bucket}/big/", "parameters": {"threshold": 0.2}}, 422, "invalid_parameter"),
        ({"input": f"s3://{bucket}/big/", "webhook": "http://10.1.2.3/hook"}, 422, "webhook_forbidden"),
        ({"input": f"s3://{bucket}/big/", "webhook": "http://169.254.169.254/latest"}, 422, "webhook_forbidden"),
        ({"input": f"s3://{bucket}/no-such-prefix/"}, 422, "empty_input"),
        ({"input": []}, 422, "empty_input"),
        ({"inputs": "s3://x/"}, 422, "invalid_job"),
    ]
    for job, status, code in cases:
        response = stack.post("/jobs", json=job)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (job, response.text)
        assert response.json()["error"]["message"]
    not_json = stack.post("/jobs", data=b"{", headers={"Content-Type": "application/json"})
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_json")
    missing = stack.get("/jobs/" + "0" * 32)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "job_not_found")
