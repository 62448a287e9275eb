"""The worker's reads of input images: presigned GETs, over real sockets, against moto's S3 server and against
a server that answers what S3 answers when things go wrong (throttles, refusals, broken connections)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials

from lambda_vision.errors import ErrorCode, InputError
from lambda_vision.jobs.locations import S3Location
from lambda_vision.jobs.objects import ObjectReader, ObjectReadError, ObjectWriteError, ObjectWriter, Presigner

BUCKET = "images-bucket"
MAX_BYTES = 1000


def s3_client(endpoint: str | None, region: str = "us-east-1", token: str | None = None) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token=token,
        config=Config(signature_version="s3v4"),
    )


def credentials_of(s3: Any) -> Credentials:
    """The credentials the client signs with, as its session would give them."""
    frozen = s3._request_signer._credentials.get_frozen_credentials()
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


@pytest.fixture
def moto_s3(aws_endpoint: str) -> Any:
    s3 = s3_client(aws_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="small.jpg", Body=b"\xff\xd8 a small image")
    s3.put_object(Bucket=BUCKET, Key="empty.jpg", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="large.jpg", Body=b"x" * (MAX_BYTES + 1))
    s3.put_object(Bucket=BUCKET, Key="exactly.jpg", Body=b"y" * MAX_BYTES)
    return s3


def read(s3: Any, *keys: str, bucket: str = BUCKET, signer: str = "presigner") -> list[bytes | InputError]:
    credentials = credentials_of(s3) if signer == "presigner" else None
    reader = ObjectReader(s3, MAX_BYTES, timeout=5.0, credentials=credentials)
    return reader.read([S3Location(bucket, key) for key in keys])


TRICKY_KEYS = ["cat.jpg", "a b/c+d=e&f%g?h#i.jpg", "dir/ünï cødé/画像.png", "~tilde/semi;colon:@!$'()*,.jpg", "a//b/"]


def same_second(make: Any) -> tuple[str, str]:
    """Two URLs signed within the same second (X-Amz-Date has a resolution of a second)."""
    for _ in range(5):
        first, second = make()
        if first.split("X-Amz-Date=")[1][:16] == second.split("X-Amz-Date=")[1][:16]:
            return first, second
    raise AssertionError("never signed within one second")


def client_url(s3: Any, key: str, method: str) -> str:
    operation = {"GET": "get_object", "PUT": "put_object"}[method]
    url: str = s3.generate_presigned_url(operation, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300)
    return url


@pytest.mark.parametrize(
    "endpoint,region,token",
    [
        (None, "us-east-1", None),
        (None, "eu-central-1", "a-session-token"),
        ("http://127.0.0.1:4566", "us-east-1", None),
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_the_presigner_signs_every_key_as_the_client_does(
    endpoint: str | None, region: str, token: str | None, method: str
) -> None:
    s3 = s3_client(endpoint, region, token)
    presigner = Presigner(s3, credentials_of(s3))

    for key in TRICKY_KEYS:
        location = S3Location(BUCKET, key)
        mine, clients = same_second(
            lambda location=location: (presigner.url(location, method), client_url(s3, location.key, method))
        )
        assert mine == clients
    assert presigner._bases[BUCKET, method] is not None, "signed without the client's pipeline"


def test_with_other_credentials_than_the_client_s_the_client_signs() -> None:
    s3 = s3_client(None)
    presigner = Presigner(s3, Credentials("another-key", "another-secret"))

    mine, clients = same_second(
        lambda: (presigner.url(S3Location(BUCKET, "cat.jpg")), client_url(s3, "cat.jpg", "GET"))
    )

    assert mine == clients and "another-key" not in mine
    assert presigner._bases[BUCKET, "GET"] is None


def test_keys_with_any_characters_are_read(moto_s3: Any) -> None:
    for key in TRICKY_KEYS:
        moto_s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())

    assert read(moto_s3, *TRICKY_KEYS) == [key.encode() for key in TRICKY_KEYS]


def test_objects_are_read_in_order_with_each_failure_in_its_place(moto_s3: Any) -> None:
    small, missing, empty, large, exactly = read(
        moto_s3, "small.jpg", "gone.jpg", "empty.jpg", "large.jpg", "exactly.jpg"
    )

    assert small == b"\xff\xd8 a small image"
    assert isinstance(missing, InputError) and missing.code is ErrorCode.OBJECT_NOT_FOUND
    assert missing.message == f"s3://{BUCKET}/gone.jpg does not exist (any more)"
    assert isinstance(empty, InputError) and empty.code is ErrorCode.IMAGE_EMPTY
    assert isinstance(large, InputError) and large.code is ErrorCode.OBJECT_TOO_LARGE
    assert exactly == b"y" * MAX_BYTES


def test_a_missing_bucket_is_not_found(moto_s3: Any) -> None:
    (missing,) = read(moto_s3, "small.jpg", bucket="no-such-bucket")

    assert isinstance(missing, InputError) and missing.code is ErrorCode.OBJECT_NOT_FOUND


class FakeS3(BaseHTTPRequestHandler):
    """Answers each GET or PUT with the next of `answers` (status, body); the last one is repeated. Keeps the
    path of each request, and of each PUT its content type and body."""

    answers: ClassVar[list[tuple[int, bytes]]] = []
    paths: ClassVar[list[str]] = []
    puts: ClassVar[list[tuple[str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).puts.append((self.headers["Content-Type"], body))
        self.do_GET()

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


H = TypeVar("H", bound=FakeS3)


@contextlib.contextmanager
def serving(handler: type[H]) -> Iterator[tuple[Any, type[H]]]:
    """An S3 client of a local server answering with `handler` (a class of its own for each test)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield s3_client(f"http://127.0.0.1:{server.server_address[1]}"), handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_s3() -> Iterator[tuple[Any, type[FakeS3]]]:
    handler: type[FakeS3] = type("Answers", (FakeS3,), {"answers": [], "paths": [], "puts": []})
    with serving(handler) as served:
        yield served


def error_body(code: str) -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>...</Message></Error>".encode()


@pytest.mark.parametrize("signer", ["presigner", "client"])
def test_the_read_is_a_signed_get_of_the_object(fake_s3: tuple[Any, type[FakeS3]], signer: str) -> None:
    s3, server = fake_s3
    server.answers[:] = [(200, b"image bytes")]

    assert read(s3, "photos/cat.jpg", signer=signer) == [b"image bytes"]
    (path,) = server.paths
    assert path.startswith(f"/{BUCKET}/photos/cat.jpg?")
    assert "X-Amz-Signature=" in path and "X-Amz-Expires=300" in path


def test_throttles_and_server_errors_are_retried(fake_s3: tuple[Any, type[FakeS3]]) -> None:
    s3, server = fake_s3
    server.answers[:] = [(503, error_body("SlowDown")), (500, error_body("InternalError")), (200, b"at last")]

    assert read(s3, "cat.jpg") == [b"at last"]
    assert len(server.paths) == 3


def test_a_refusal_is_the_image_s_failure(fake_s3: tuple[Any, type[FakeS3]]) -> None:
    s3, server = fake_s3
    server.answers[:] = [(403, error_body("AccessDenied"))]

    (refused,) = read(s3, "cat.jpg")

    assert isinstance(refused, InputError) and refused.code is ErrorCode.OBJECT_UNREADABLE
    assert refused.message == f"s3://{BUCKET}/cat.jpg may not be read by this stack"


@pytest.mark.parametrize(("status", "code"), [(301, "PermanentRedirect"), (400, "AuthorizationHeaderMalformed")])
def test_a_bucket_of_another_region_is_said_to_be_elsewhere(
    fake_s3: tuple[Any, type[FakeS3]], status: int, code: str
) -> None:
    s3, server = fake_s3
    server.answers[:] = [(status, error_body(code))]

    (elsewhere,) = read(s3, "cat.jpg")

    assert isinstance(elsewhere, InputError) and elsewhere.code is ErrorCode.OBJECT_UNREADABLE
    assert elsewhere.message == (
        f"s3://{BUCKET}/cat.jpg is in another AWS region than this stack (us-east-1); "
        "copy the images to a bucket in us-east-1"
    )


def test_an_error_that_outlasts_the_retries_fails_the_message(fake_s3: tuple[Any, type[FakeS3]]) -> None:
    s3, server = fake_s3
    server.answers[:] = [(503, error_body("SlowDown"))]

    with pytest.raises(ObjectReadError, match="S3 answered 503 SlowDown"):
        read(s3, "cat.jpg")
    assert len(server.paths) == 4  # the first attempt and three retries


def test_a_client_that_would_presign_with_signature_version_2_is_refused() -> None:
    with pytest.raises(ValueError, match="signature_version='s3v4'"):
        ObjectReader(
            boto3.client(
                "s3",
                region_name="us-east-1",
                endpoint_url="http://127.0.0.1:9",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ),
            MAX_BYTES,
        )


def test_a_broken_connection_never_quotes_the_signed_url() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once closed
    s3 = s3_client(f"http://127.0.0.1:{port}")

    (broken,) = read(s3, "cat.jpg")

    assert isinstance(broken, InputError) and broken.code is ErrorCode.OBJECT_UNREADABLE
    assert broken.message.startswith(f"s3://{BUCKET}/cat.jpg could not be read: the connection to S3 failed (")
    assert "Signature" not in broken.message and "X-Amz" not in broken.message


class KeptFakeS3(FakeS3):
    """HTTP/1.1: connections stay open unless `close_after` says after how many answers the server drops one
    (as S3 closes a connection idle for a while), without telling the client."""

    protocol_version = "HTTP/1.1"
    close_after: ClassVar[int] = 0
    connections: ClassVar[list[int]] = []

    def handle(self) -> None:
        type(self).connections.append(self.client_address[1])
        answered = 0
        self.close_connection = False
        while not self.close_connection:
            self.handle_one_request()
            answered += 1
            if self.close_after and answered >= self.close_after:
                break


@pytest.fixture
def kept_s3() -> Iterator[tuple[Any, type[KeptFakeS3]]]:
    fresh = {"answers": [(200, b"image")], "paths": [], "connections": []}
    handler: type[KeptFakeS3] = type("Kept", (KeptFakeS3,), fresh)
    with serving(handler) as served:
        yield served


def test_a_reading_thread_keeps_its_connection_from_object_to_object(kept_s3: tuple[Any, type[KeptFakeS3]]) -> None:
    s3, server = kept_s3
    reader = ObjectReader(s3, MAX_BYTES, timeout=5.0, parallel=1)

    for key in ("a.jpg", "b.jpg", "c.jpg"):
        assert reader.read([S3Location(BUCKET, key)]) == [b"image"]

    assert [path.split("?")[0] for path in server.paths] == [f"/{BUCKET}/a.jpg", f"/{BUCKET}/b.jpg", f"/{BUCKET}/c.jpg"]
    assert len(server.connections) == 1


def test_a_connection_s3_closed_meanwhile_is_replaced(kept_s3: tuple[Any, type[KeptFakeS3]]) -> None:
    s3, server = kept_s3
    server.close_after = 1
    reader = ObjectReader(s3, MAX_BYTES, timeout=5.0, parallel=1)

    results = [reader.read([S3Location(BUCKET, key)]) for key in ("a.jpg", "b.jpg", "c.jpg")]

    assert results == [[b"image"]] * 3
    assert len(server.paths) == 3, "each object read once: the closed connection carried no request"
    assert len(server.connections) == 3


def test_an_object_over_the_limit_is_not_downloaded_and_its_connection_not_reused(
    kept_s3: tuple[Any, type[KeptFakeS3]],
) -> None:
    s3, server = kept_s3
    server.answers[:] = [(200, b"x" * (MAX_BYTES * 50)), (200, b"image")]
    reader = ObjectReader(s3, MAX_BYTES, timeout=5.0, parallel=1)

    (large,) = reader.read([S3Location(BUCKET, "large.jpg")])
    (small,) = reader.read([S3Location(BUCKET, "small.jpg")])

    assert isinstance(large, InputError) and large.code is ErrorCode.OBJECT_TOO_LARGE
    assert small == b"image"
    assert len(server.connections) == 2, "the large body was left unread on its connection: a new one is opened"


def _wait_for_gets(server: type[FakeS3], count: int) -> list[str]:
    deadline = time.monotonic() + 10.0
    while len(server.paths) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # and no more than those
    return [path.split("?")[0].rsplit("/", 1)[1] for path in server.paths]


def test_reads_run_ahead_by_a_bounded_number_of_objects(kept_s3: tuple[Any, type[KeptFakeS3]]) -> None:
    s3, server = kept_s3
    reader = ObjectReader(s3, MAX_BYTES, timeout=5.0, parallel=4, ahead=6)
    chunks = [[S3Location(BUCKET, f"{chunk}-{index}.jpg") for index in range(3)] for chunk in "abcde"]
    for chunk in chunks:
        reader.prefetch(chunk)

    assert sorted(_wait_for_gets(server, 6)) == sorted(f"{chunk}-{index}.jpg" for chunk in "ab" for index in range(3))
    assert reader.read(chunks[0]) == [b"image"] * 3
    assert len(_wait_for_gets(server, 9)) == 9, "one message read: the next one's objects start"

    # A message skipped (never read): its objects stop counting against the window once a later one is read.
    assert reader.read(chunks[2]) == [b"image"] * 3
    assert sorted(_wait_for_gets(server, 15)[9:]) == sorted(
        f"{chunk}-{index}.jpg" for chunk in "de" for index in range(3)
    )
    assert reader.read(chunks[3]) + reader.read(chunks[4]) == [b"image"] * 6
    assert len(server.paths) == 15, "every object read once"


# Writing result objects


def writer(s3: Any) -> ObjectWriter:
    return ObjectWriter(s3, timeout=5.0, credentials=credentials_of(s3))


def test_objects_are_written_with_their_content_type(moto_s3: Any) -> None:
    for key in TRICKY_KEYS:
        writer(moto_s3).write(S3Location(BUCKET, f"out/{key}"), b'{"key":"a"}\n', "application/x-ndjson")

    for key in TRICKY_KEYS:
        written = moto_s3.get_object(Bucket=BUCKET, Key=f"out/{key}")
        assert written["Body"].read() == b'{"key":"a"}\n'
        assert written["ContentType"] == "application/x-ndjson"


def test_a_write_is_a_signed_put_retried_through_throttles(fake_s3: tuple[Any, type[FakeS3]]) -> None:
    s3, server = fake_s3
    server.answers[:] = [(503, error_body("SlowDown")), (200, b"")]

    writer(s3).write(S3Location(BUCKET, "results/part-1.jsonl"), b"line\n", "application/x-ndjson")

    assert [path.split("?")[0] for path in server.paths] == [f"/{BUCKET}/results/part-1.jsonl"] * 2
    assert "X-Amz-Signature=" in server.paths[0]
    assert server.puts == [("application/x-ndjson", b"line\n")] * 2


def test_a_refused_write_says_what_s3_answered_never_the_url(fake_s3: tuple[Any, type[FakeS3]]) -> None:
    s3, server = fake_s3
    server.answers[:] = [(403, error_body("AccessDenied"))]

    with pytest.raises(ObjectWriteError) as refused:
        writer(s3).write(S3Location(BUCKET, "results/part-1.jsonl"), b"line\n", "application/x-ndjson")

    assert str(refused.value) == f"writing s3://{BUCKET}/results/part-1.jsonl: S3 answered 403 AccessDenied"
    assert len(server.paths) == 1, "a refusal is not retried"


def test_a_write_to_an_unreachable_s3_fails_without_the_url() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    with pytest.raises(ObjectWriteError) as failed:
        writer(s3_client(f"http://127.0.0.1:{port}")).write(S3Location(BUCKET, "r.jsonl"), b"x", "application/json")

    assert str(failed.value).startswith(f"writing s3://{BUCKET}/r.jsonl: the connection to S3 failed (")
    assert "Signature" not in str(failed.value)
