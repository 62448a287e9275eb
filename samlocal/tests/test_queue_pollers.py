"""The pollers of a queue take turns at receiving: an idle queue costs one long poll at a time whatever the
concurrency, and a busy one still has every poller invoking at once. SQS is moto's (`mock_aws`)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from samlocal.console import Console
from samlocal.queue_pollers import QueuePoller

CONCURRENCY = 5


class CountingSqs:
    """A boto3 SQS client that counts its ReceiveMessage calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.receives = 0

    def receive_message(self, **parameters: Any) -> Any:
        self.receives += 1
        return self._client.receive_message(**parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class Endpoint:
    region = "us-east-1"

    def __init__(self, sqs: CountingSqs) -> None:
        self.sqs = sqs

    def client(self, service: str) -> CountingSqs:
        assert service == "sqs"
        return self.sqs


class Pool:
    function = object()


class MeetingPoller(QueuePoller):
    """Each batch waits until CONCURRENCY batches are being handled at once (or fails after 10 s)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.meeting = threading.Barrier(CONCURRENCY, timeout=10)
        self.met: list[str] = []
        self.broken = False

    def handle(self, messages: list[dict[str, Any]]) -> None:
        try:
            self.meeting.wait()
        except threading.BrokenBarrierError:
            self.broken = True
        self.met += [message["Body"] for message in messages]
        self.delete(messages)


@pytest.fixture
def poller() -> Iterator[MeetingPoller]:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        client.create_queue(QueueName="work")
        sqs = CountingSqs(client)
        poller = MeetingPoller(
            name="work -> Function",
            queue_name="work",
            pool=Pool(),
            endpoint=Endpoint(sqs),
            console=Console(io.StringIO()),
            concurrency=CONCURRENCY,
        )
        poller.start()
        try:
            yield poller
        finally:
            poller.stop()


def test_an_idle_queue_has_one_long_poll_out_at_a_time(poller: MeetingPoller) -> None:
    sqs = poller.sqs
    assert isinstance(sqs, CountingSqs)
    start = sqs.receives

    time.sleep(3.5)

    # One-second long polls one after another: about four; five pollers each polling would make about twenty.
    assert sqs.receives - start <= 6


def test_a_busy_queue_is_handled_by_every_poller_at_once(poller: MeetingPoller) -> None:
    queue_url = poller.sqs.get_queue_url(QueueName="work")["QueueUrl"]
    for number in range(CONCURRENCY):
        poller.sqs.send_message(QueueUrl=queue_url, MessageBody=f"message {number}")

    deadline = time.monotonic() + 20
    while len(poller.met) < CONCURRENCY and time.monotonic() < deadline:
        time.sleep(0.05)

    assert sorted(poller.met) == [f"message {number}" for number in range(CONCURRENCY)]
    assert not poller.broken  # the five batches were handled at the same time


class FailingOnceSqs(CountingSqs):
    """ReceiveMessage fails the first time with an error that is not the SDK's."""

    def receive_message(self, **parameters: Any) -> Any:
        if self.receives == 0:
            self.receives += 1
            raise RuntimeError("the endpoint broke")
        return super().receive_message(**parameters)


class CollectingPoller(QueuePoller):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.handled: list[str] = []

    def handle(self, messages: list[dict[str, Any]]) -> None:
        self.handled += [message["Body"] for message in messages]
        self.delete(messages)


def test_a_poller_keeps_polling_after_an_unexpected_failure() -> None:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        queue_url = client.create_queue(QueueName="work")["QueueUrl"]
        console = io.StringIO()
        poller = CollectingPoller(
            name="work -> Function",
            queue_name="work",
            pool=Pool(),
            endpoint=Endpoint(FailingOnceSqs(client)),
            console=Console(console),
            concurrency=1,
        )
        poller.start()
        try:
            client.send_message(QueueUrl=queue_url, MessageBody="after the failure")
            deadline = time.monotonic() + 10
            while not poller.handled and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            poller.stop()

    assert poller.handled == ["after the failure"]
    assert "work -> Function: polling failed (RuntimeError); polling again" in console.getvalue()
