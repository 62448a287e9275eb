"""The local AWS endpoint: moto in server mode, a real HTTP endpoint for S3, SQS and DynamoDB.

It runs in a thread of the emulator's process, on 127.0.0.1 (moto checks no credentials: it never listens
on other interfaces). DynamoDB requests are served one at a time: moto applies an update attribute by
attribute, so two requests at once on one item could lose an `ADD`, where DynamoDB applies each update and
each transaction whole (job counters are such updates); a transaction copies only the items it names
(`dynamodb_transactions`), not its tables. Functions reach it through `AWS_ENDPOINT_URL` with
the credentials `testing`; the emulator's own clients (event source mappings, resource creation) speak to it
over HTTP too. Its state lives in memory and ends with the emulator. moto is an optional dependency:
`pip install 'samlocal[aws]'`.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

from samlocal import dynamodb_transactions
from samlocal.console import Console

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_AWS_PORT = 4566
ENDPOINT_HOST = "127.0.0.1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_REMEMBERED_HOSTS = 1024
# An SDK's idle pooled connection is closed after this long (the SDK opens a new one when it needs it).
IDLE_CONNECTION_SECONDS = 120
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding"})


class AwsEndpointError(Exception):
    """The endpoint cannot start (moto is missing, the port is taken)."""


class _RequestBody(io.RawIOBase):
    """A request body of known length: the application reads what it wants, the rest is read off afterwards,
    so that the connection is at the client's next request."""

    def __init__(self, stream: BinaryIO, length: int) -> None:
        super().__init__()
        self.stream = stream
        self.left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self.left)
        if size <= 0:
            return 0
        data = self.stream.read(size)
        if not data:
            raise ConnectionError("the client closed the connection before sending its whole body")
        buffer[: len(data)] = data
        self.left -= len(data)
        return len(data)

    def drain(self) -> None:
        while self.left > 0:
            self.readinto(bytearray(min(self.left, 1 << 20)))


def serve_keep_alive(
    handler: Any, app: Callable[[dict[str, Any], Any], Iterable[bytes]], environ: dict[str, Any]
) -> None:
    """One request through a WSGI application, answered on a connection that stays open (HTTP/1.1).

    werkzeug's development server closes every connection after its response; SDK clients pool theirs, so
    keeping them open saves each call a TCP connection and a server thread (a function's S3, SQS and DynamoDB
    calls cost about a millisecond less each). The response is whole in memory (moto's are) and sent with
    its Content-Length; a chunked request body, read to its end by the application, closes the connection."""
    body: _RequestBody | None = None
    if environ.get("wsgi.input_terminated"):
        handler.close_connection = True
    else:
        body = _RequestBody(handler.rfile, int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = body
    started: list[Any] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started[:] = [status, headers]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if body is not None:
        body.drain()
    status, headers = started
    code_text, _, reason = status.partition(" ")
    code = int(code_text)
    handler.send_response(code, reason)
    sized = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in _HOP_BY_HOP:
            continue
        sized |= lowered == "content-length"
        handler.send_header(name, value)
    # No body after a 1xx, 204 or 304 answer, nor after any answer to HEAD: a client reads none there.
    bodiless = code in (204, 304) or code < 200
    data = b"".join(chunks)
    if not sized and not bodiless:
        handler.send_header("Content-Length", str(len(data)))
    if handler.close_connection:
        handler.send_header("Connection", "close")
    handler.end_headers()
    if handler.command != "HEAD" and not bodiless:
        handler.wfile.write(data)


class _OneDynamoDbRequestAtATime:
    """WSGI middleware: DynamoDB requests (X-Amz-Target DynamoDB_*) run under one lock, body included."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))


class AwsEndpoint:
    """moto's server app behind a threaded WSGI server bound in the constructor (a taken port fails here)."""

    def __init__(self, port: int, region: str, console: Console) -> None:
        try:
            from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - an optional dependency
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
            from werkzeug.serving import make_server  # noqa: PLC0415

            from samlocal.object_reads import PlainObjectReads  # noqa: PLC0415 - imports moto
        except ImportError as error:
            raise AwsEndpointError(
                "the template declares AWS resources or event sources, served by a local AWS endpoint that needs "
                "moto: pip install 'samlocal[aws]' (or run with --no-aws)"
            ) from error
        dynamodb_transactions.install()

        class RequestHandler(MotoRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = IDLE_CONNECTION_SECONDS

            def setup(self) -> None:
                super().setup()
                # An answer is its headers, then its body: two writes. On a connection kept open, Nagle's
                # algorithm would hold a small body back until the client acknowledges the headers, which
                # a client delays by up to 40 ms (every DynamoDB and SQS answer).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log(self, type: str, message: str, *args: Any) -> None:
                console.debug(f"aws endpoint: {message % args}")

            def run_wsgi(self) -> None:
                self.environ = environ = self.make_environ()
                try:
                    serve_keep_alive(self, self.server.app, environ)
                except ConnectionError:
                    self.close_connection = True
                except Exception as error:  # noqa: BLE001 - the application's own failure: a 500, as werkzeug answers
                    # Not the path: it names the object, and a presigned URL's query carries its signature.
                    console.info(f"aws endpoint: a {self.command} request failed: {type(error).__name__}")
                    self.close_connection = True
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()

        class Dispatcher(DomainDispatcherApplication):
            """moto's dispatcher, remembering the service of each host name: moto finds it by listing its own
            package's folders and matching every service's URL patterns, twice per request (the endpoint's
            own host name first), which cost more than serving most requests (1.2-1.6 ms each)."""

            def __init__(self) -> None:
                super().__init__(create_backend_app)
                self.services: dict[str | None, Any] = {}

            def get_backend_for_host(self, host: str | None) -> Any:
                if host in self.services:
                    return self.services[host]
                service = super().get_backend_for_host(host)
                if len(self.services) < _REMEMBERED_HOSTS:  # one per bucket at most (virtual-hosted style)
                    self.services[host] = service
                return service

        self.region = region
        self.console = console
        self.app = PlainObjectReads(_OneDynamoDbRequestAtATime(Dispatcher()))
        try:
            self._server = make_server(
                ENDPOINT_HOST,
                port,
                self.app,
                threaded=True,
                request_handler=RequestHandler,
            )
        except (OSError, SystemExit) as error:  # werkzeug exits when the port is taken
            raise AwsEndpointError(f"the AWS endpoint cannot listen on {ENDPOINT_HOST}:{port}: {error}") from error
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-endpoint", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{ENDPOINT_HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def client(self, service: str) -> Any:
        """A boto3 client of this endpoint, whatever the shell's AWS settings."""
        import boto3  # noqa: PLC0415 - installed with moto
        from botocore.config import Config  # noqa: PLC0415

        config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=50)
        session: Any = boto3.session.Session()  # a fresh session: no shared state between threads
        return session.client(service, endpoint_url=self.url, region_name=self.region, config=config, **CREDENTIALS)

    def s3(self) -> S3Client:
        client: S3Client = self.client("s3")
        return client

    def function_environment(self) -> dict[str, str]:
        """What every function sees: the SDKs' clients go to this endpoint, with its credentials."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ENDPOINT_URL_SQS": self.url,
            "AWS_ENDPOINT_URL_DYNAMODB": self.url,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_REGION": self.region,
        }
