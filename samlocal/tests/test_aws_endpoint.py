"""The local AWS endpoint's options, names and start-up errors."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samlocal.aws_endpoint import AwsEndpoint
from samlocal.cli import parse_args
from samlocal.console import Console
from samlocal.resources import BUCKET, QUEUE, TABLE, ResourceReader, generated_name
from samlocal.testing import LocalApi

TEMPLATES = Path(__file__).resolve().parent / "templates"


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_PORT", raising=False)
    return tmp_path


def test_the_endpoint_port_defaults_to_4566_or_aws_port(no_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (parse_args([]).aws_port, parse_args([]).no_aws) == (4566, False)
    monkeypatch.setenv("AWS_PORT", "4999")
    assert parse_args([]).aws_port == 4999
    assert parse_args(["--aws-port", "0"]).aws_port == 0
    assert parse_args(["--no-aws"]).no_aws is True


logical_ids = st.from_regex(r"[A-Za-z0-9]{1,255}", fullmatch=True)
stack_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,127}", fullmatch=True)


@given(stack_names, logical_ids)
def test_generated_bucket_names_are_valid_s3_names(stack: str, logical_id: str) -> None:
    name = generated_name(BUCKET, stack, logical_id)
    assert 3 <= len(name) <= 63
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name)
    assert name == generated_name(BUCKET, stack, logical_id), "stable from one run to the next"


@given(stack_names, logical_ids, st.booleans())
def test_generated_queue_names_fit_sqs_limits(stack: str, logical_id: str, fifo: bool) -> None:
    name = generated_name(QUEUE, stack, logical_id, fifo=fifo)
    assert len(name) <= 80
    assert re.fullmatch(r"[A-Za-z0-9_-]+(\.fifo)?", name)
    assert name.endswith(".fifo") == fifo


@given(logical_ids)
def test_different_resources_get_different_names(logical_id: str) -> None:
    assert generated_name(TABLE, "local", logical_id) != generated_name(TABLE, "local", logical_id + "X")


def test_a_template_without_resources_needs_no_endpoint() -> None:
    assert not ResourceReader(TEMPLATES / "api.yaml").needs_endpoint
    assert ResourceReader(TEMPLATES / "aws.yaml").needs_endpoint


def test_a_taken_aws_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "samlocal", "-t", str(TEMPLATES / "aws.yaml"), "-p", "0", "--aws-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"the AWS endpoint cannot listen on 127.0.0.1:{port}" in result.stderr


def test_no_aws_starts_no_endpoint_and_leaves_functions_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    local = LocalApi(TEMPLATES / "aws.yaml", tmp_path / "console.log", "--no-aws")
    try:
        assert local.aws_url is None
        environment = local.get("/env").json()
        assert "AWS_ENDPOINT_URL" not in environment
        assert "AWS endpoint" not in local.output()
        assert environment["WORK_QUEUE_URL"] == "WorkQueue", "without the endpoint, a Ref is the logical id"
    finally:
        local.close()


def test_concurrent_dynamodb_updates_of_one_item_are_each_applied_whole() -> None:
    """DynamoDB applies each update whole; moto, attribute by attribute, so without the endpoint's lock 16
    clients adding to five counters of one item lose some of their additions."""
    endpoint = AwsEndpoint(0, "us-east-1", Console(io.StringIO()))
    endpoint.start()
    try:
        dynamodb = endpoint.client("dynamodb")
        dynamodb.create_table(
            TableName="counters",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        key = {"pk": {"S": "job"}}
        dynamodb.put_item(TableName="counters", Item=key)

        def count() -> None:
            client = endpoint.client("dynamodb")
            for _ in range(25):
                client.update_item(
                    TableName="counters",
                    Key=key,
                    UpdateExpression="ADD a :one, b :one, c :one, d :one, e :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
                client.get_item(TableName="counters", Key=key)

        threads = [threading.Thread(target=count) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        item = dynamodb.get_item(TableName="counters", Key=key, ConsistentRead=True)["Item"]
        assert {name: item[name]["N"] for name in "abcde"} == dict.fromkeys("abcde", "400")
    finally:
        endpoint.stop()


def test_each_host_names_service_is_found_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto finds the service of a request's host name by listing its package's folders and matching every
    service's URL patterns; the endpoint remembers each answer, so later requests skip that search."""
    import moto.backends  # noqa: PLC0415 - the endpoint's optional dependency

    searches: list[str] = []
    listing = moto.backends.list_of_moto_modules

    def counted() -> Iterable[str]:
        searches.append("search")
        return listing()

    monkeypatch.setattr(moto.backends, "list_of_moto_modules", counted)
    endpoint = AwsEndpoint(0, "us-east-1", Console(io.StringIO()))
    endpoint.start()
    try:
        s3, sqs = endpoint.s3(), endpoint.client("sqs")
        s3.create_bucket(Bucket="remembered")
        queue = sqs.create_queue(QueueName="remembered")["QueueUrl"]
        first = len(searches)
        for number in range(5):
            s3.put_object(Bucket="remembered", Key=f"{number}", Body=b"x")
            assert s3.get_object(Bucket="remembered", Key=f"{number}")["Body"].read() == b"x"
            sqs.send_message(QueueUrl=queue, MessageBody=f"{number}")

        assert first > 0
        assert len(searches) == first
        assert int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessages"]) == 5  # fmt: skip
    finally:
        endpoint.stop()


_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
)


def _answer(reader: io.BufferedReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response off a connection: status, headers (lower-case names) and its Content-Length body."""
    status = int(reader.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, reader.read(0 if status in (204, 304) else int(headers["content-length"]))


def test_one_connection_carries_request_after_request() -> None:
    """SDK clients keep their connections open: each request after the first costs no new connection, whatever
    the application read of the one before (a body it never read is read off, not taken for a request)."""
    endpoint = AwsEndpoint(0, "us-east-1", Console(io.StringIO()))
    endpoint.start()
    try:
        endpoint.s3().create_bucket(Bucket="kept")
        with socket.create_connection(("127.0.0.1", endpoint.port)) as connection:
            reader = connection.makefile("rb")
            # moto reads the caller off the Authorization header and checks no signature.
            host = f"Host: 127.0.0.1:{endpoint.port}\r\nAuthorization: {_AUTHORIZATION}\r\n"
            connection.sendall(f"PUT /kept/a.txt HTTP/1.1\r\n{host}Content-Length: 5\r\n\r\nfirst".encode())
            status, headers, _ = _answer(reader)
            assert status == 200
            connection.sendall(f"GET /kept/a.txt HTTP/1.1\r\n{host}If-None-Match: {headers['etag']}\r\n\r\n".encode())
            assert _answer(reader)[0] == 304  # and no body after it, or the next answer would start with it
            connection.sendall(f"PUT /missing-bucket/b.txt HTTP/1.1\r\n{host}Content-Length: 6\r\n\r\nunread".encode())
            status, _, body = _answer(reader)
            assert status == 404 and b"NoSuchBucket" in body
            connection.sendall(f"GET /kept/a.txt HTTP/1.1\r\n{host}\r\n".encode())
            status, headers, body = _answer(reader)
            assert (status, body) == (200, b"first")
            assert "close" not in headers.get("connection", "")

            connection.sendall(f"GET /kept/a.txt HTTP/1.1\r\n{host}Connection: close\r\n\r\n".encode())
            status, headers, body = _answer(reader)
            assert (status, body, headers["connection"]) == (200, b"first", "close")
            assert reader.read() == b"", "the server closes the connection it was asked to close"
    finally:
        endpoint.stop()


def test_a_chunked_upload_is_stored_whole_and_its_connection_closed() -> None:
    endpoint = AwsEndpoint(0, "us-east-1", Console(io.StringIO()))
    endpoint.start()
    try:
        s3 = endpoint.s3()
        s3.create_bucket(Bucket="chunked")
        with socket.create_connection(("127.0.0.1", endpoint.port)) as connection:
            reader = connection.makefile("rb")
            connection.sendall(
                f"PUT /chunked/c.txt HTTP/1.1\r\nHost: 127.0.0.1:{endpoint.port}\r\nTransfer-Encoding: chunked\r\n\r\n"
                "4\r\nwhol\r\n2\r\ne!\r\n0\r\n\r\n".encode()
            )
            status, headers, _ = _answer(reader)
            assert (status, headers["connection"]) == (200, "close")
            assert reader.read() == b""
        assert s3.get_object(Bucket="chunked", Key="c.txt")["Body"].read() == b"whole!"
    finally:
        endpoint.stop()


def test_an_application_failure_is_a_500_that_names_no_path() -> None:
    """A failure inside the endpoint's application answers 500 and closes the connection; the console says
    which kind of request failed, never its path (a presigned URL's query carries its signature)."""
    console = io.StringIO()
    endpoint = AwsEndpoint(0, "us-east-1", Console(console))

    def failing(environ: dict[str, object], start_response: object) -> list[bytes]:
        raise RuntimeError("broken")

    endpoint._server.app = failing
    endpoint.start()
    try:
        with socket.create_connection(("127.0.0.1", endpoint.port)) as connection:
            reader = connection.makefile("rb")
            target = "/bucket/private.jpg?X-Amz-Signature=0123456789abcdef"
            connection.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{endpoint.port}\r\n\r\n".encode())
            status, headers, _ = _answer(reader)
            assert (status, headers["connection"]) == (500, "close")
            assert reader.read() == b""
    finally:
        endpoint.stop()
    assert "a GET request failed: RuntimeError" in console.getvalue()
    assert "private.jpg" not in console.getvalue() and "Signature" not in console.getvalue()


def test_answers_are_sent_without_waiting_for_the_clients_acknowledgement() -> None:
    """Each connection has Nagle's algorithm off: on a kept connection it would hold a small answer body (every
    DynamoDB and SQS answer) back until the client acknowledged the headers, up to 40 ms per call."""
    endpoint = AwsEndpoint(0, "us-east-1", Console(io.StringIO()))
    handler = endpoint._server.RequestHandlerClass
    no_delay: list[int] = []

    class Probe(handler):  # type: ignore[misc,valid-type]
        def setup(self) -> None:
            super().setup()
            no_delay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    endpoint._server.RequestHandlerClass = Probe
    endpoint.start()
    try:
        dynamodb = endpoint.client("dynamodb")
        for _ in range(2):  # moto's tables are the process's: whatever other tests left
            assert isinstance(dynamodb.list_tables()["TableNames"], list)
        assert no_delay and all(no_delay), no_delay
    finally:
        endpoint.stop()
