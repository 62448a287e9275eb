"""Reading input images from S3 (several at a time, each failure an `InputError` for that image) and writing
result objects.

Each object is read with a GET, and written with a PUT, of a presigned URL (Signature Version 4, the function's
credentials, a few minutes of validity), on a connection that each thread keeps open to S3, retried with backoff
when S3 answers 500, 502, 503 (SlowDown) or 504, or the connection breaks. boto3's `get_object` spends about
four milliseconds of CPU per call on this path (its event hooks, user agent, response parsing), `put_object`
about three, and a urllib3 pool about one (it parses and re-encodes the long presigned URL character by
character, twice): a twentieth of an image's inference. The request itself is what http.client does; the URLs
are signed by botocore's signer (see `Presigner`).
"""

from __future__ import annotations

import functools
import http.client
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError
from botocore.utils import percent_encode

from lambda_vision.errors import ErrorCode, InputError
from lambda_vision.jobs.locations import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_PARALLEL_DOWNLOADS = 8
READ_AHEAD = 16  # objects read before they are asked for: two work messages of 8
PRESIGNED_SECONDS = 300
ATTEMPTS = 4  # the first GET and three retries
BACKOFF_SECONDS = 0.1  # before the first retry, doubled for each next one
_RETRIED_STATUSES = frozenset({500, 502, 503, 504})
_MISSING = frozenset({"NoSuchKey", "NotFound", "NoSuchBucket"})
_FORBIDDEN = frozenset({"AccessDenied", "AllAccessDisabled", "InvalidObjectState"})
# A bucket of another region: S3 answers the URL signed for the stack's region with one of these.
_ELSEWHERE = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"})
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_ERROR_BODY_BYTES = 65536
_Origin = tuple[str, str, int]
_PROBE_KEY = "lambda-vision-probe"
_OPERATIONS = {"GET": "get_object", "PUT": "put_object"}


class ObjectReadError(Exception):
    """S3 answered a read with an error that is not about the object (a throttle that outlasted the retries,
    an expired credential): the message is delivered again."""


class ObjectWriteError(Exception):
    """S3 refused a result object, or could not be reached: the message is delivered again."""


def _error_code(status: int, body: bytes) -> str:
    match = _ERROR_CODE.search(body)
    if match is not None:
        return match.group(1).decode("ascii", "replace")
    return {404: "NotFound", 403: "AccessDenied", 301: "PermanentRedirect"}.get(status, str(status))


def _too_large(location: S3Location, max_bytes: int) -> InputError:
    return InputError(
        ErrorCode.OBJECT_TOO_LARGE, f"{location.uri} is larger than the limit of {max_bytes} bytes; use a smaller image"
    )


class Presigner:
    """URLs of S3 objects (GET and PUT), presigned exactly as the S3 client presigns them, at half its cost.

    The client's `generate_presigned_url` runs its whole request pipeline for each URL (endpoint rules,
    parameter validation, event hooks): about half a millisecond of CPU, twice the signature itself. Once per
    bucket and method, the client presigns a probe key; when botocore's query-string signer, given the client's
    URL up to the key, the same credentials and region, signs that key into the very same URL, the bucket's keys
    are signed that way; otherwise (other credentials, a signing scheme the probe does not reproduce) the client
    signs each of them."""

    def __init__(self, s3: S3Client, credentials: Credentials | None) -> None:
        # Unless the client was created with signature_version="s3v4", botocore presigns with Signature
        # Version 2, which S3 refuses for buckets created since 2020.
        probe = s3.generate_presigned_url("get_object", Params={"Bucket": "probe-bucket", "Key": "probe"})
        if "X-Amz-Signature=" not in probe:
            raise ValueError("the S3 client must be created with Config(signature_version='s3v4')")
        self.s3 = s3
        self.credentials = credentials
        self._bases: dict[tuple[str, str], str | None] = {}  # (bucket, method) -> URLs up to the key; None: client

    def url(self, location: S3Location, method: str = "GET") -> str:
        which = (location.bucket, method)
        if which not in self._bases:
            self._bases[which] = self._base(location.bucket, method)
        base = self._bases[which]
        if base is None or self.credentials is None:
            return self._client_url(location.bucket, location.key, method)
        return self._sign(base, location.key, method, self.credentials)

    def _client_url(self, bucket: str, key: str, method: str) -> str:
        return self.s3.generate_presigned_url(
            _OPERATIONS[method], Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGNED_SECONDS
        )

    def _sign(self, base: str, key: str, method: str, credentials: Credentials) -> str:
        # The key as the client puts it in the path (S3's greedy {Key+} label): "/" and "~" stay as they are.
        request = AWSRequest(method=method, url=base + percent_encode(key, safe="/~"))
        signer = S3SigV4QueryAuth(
            credentials.get_frozen_credentials(), "s3", self.s3.meta.region_name, expires=PRESIGNED_SECONDS
        )
        signer.add_auth(request)
        return str(request.prepare().url)

    def _base(self, bucket: str, method: str) -> str | None:
        credentials = self.credentials
        if credentials is None:
            return None
        for _ in range(2):  # a second that ends between the two signatures changes X-Amz-Date: once more
            expected = self._client_url(bucket, _PROBE_KEY, method)
            parts = urlsplit(expected)
            if not parts.path.endswith("/" + _PROBE_KEY):
                return None
            base = urlunsplit((parts.scheme, parts.netloc, parts.path[: -len(_PROBE_KEY)], "", ""))
            if self._sign(base, _PROBE_KEY, method, credentials) == expected:
                return base
        return None


class _Connections(threading.local):
    """The connections a thread keeps open, one per S3 origin (scheme, host, port)."""

    def __init__(self) -> None:
        self.open: dict[_Origin, http.client.HTTPConnection] = {}


class _ConnectionFailedError(Exception):
    """Every attempt to reach S3 failed; `cause` is the last error (never shown: it may quote the URL)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


class SignedRequests:
    """Requests to S3 with presigned URLs, on connections each thread keeps open, retried with backoff when S3
    answers 500, 502, 503 (SlowDown) or 504 or the connection fails, and at once on a new connection when S3
    had closed an idle one."""

    def __init__(self, s3: S3Client, credentials: Credentials | None, timeout: float) -> None:
        self.presigner = Presigner(s3, credentials)
        self.region = s3.meta.region_name
        self.timeout = timeout
        self._connections = _Connections()
        self._tls: ssl.SSLContext | None = None

    def send(
        self,
        method: str,
        location: S3Location,
        read: Callable[[http.client.HTTPResponse], bytes],
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """The status and what `read` took of the body of the last attempt; raises `BotoCoreError` when the URL
        cannot be signed (no credentials, an invalid bucket name) and `_ConnectionFailedError`."""
        parts = urlsplit(self.presigner.url(location, method))
        origin = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        target = f"{parts.path}?{parts.query}"
        attempt, renewed = 0, False
        while True:
            connection = self._connection(origin)
            kept = connection.sock is not None
            try:
                connection.request(method, target, body=body, headers=dict(headers or {}))
                response = connection.getresponse()
                try:
                    data = read(response)
                finally:
                    if not response.isclosed():  # a body left unread: the connection can carry nothing more
                        self._drop(origin)
            except (OSError, http.client.HTTPException) as error:
                self._drop(origin)
                if kept and not renewed:
                    renewed = True
                    continue
                if attempt == ATTEMPTS - 1:
                    raise _ConnectionFailedError(error) from None
            else:
                if response.status not in _RETRIED_STATUSES or attempt == ATTEMPTS - 1:
                    return response.status, data
            attempt += 1
            time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))

    def _connection(self, origin: _Origin) -> http.client.HTTPConnection:
        connection = self._connections.open.get(origin)
        if connection is None:
            scheme, host, port = origin
            if scheme == "https":
                if self._tls is None:  # the CA bundle the SDK is told to trust, if any
                    self._tls = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
                connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
            self._connections.open[origin] = connection
        return connection

    def _drop(self, origin: _Origin) -> None:
        connection = self._connections.open.pop(origin, None)
        if connection is not None:
            connection.close()


def _error_body(response: http.client.HTTPResponse) -> bytes:
    return response.read(_ERROR_BODY_BYTES)


class ObjectWriter:
    """Writes result objects to S3 with presigned PUTs (what `SignedRequests` does): about a third of the CPU
    of boto3's `put_object`."""

    def __init__(self, s3: S3Client, *, timeout: float = 30.0, credentials: Credentials | None = None) -> None:
        """`credentials`: those the S3 client signs with (its session's `get_credentials()`); without them,
        the client presigns every URL itself."""
        self.requests = SignedRequests(s3, credentials, timeout)

    def write(self, location: S3Location, body: bytes, content_type: str) -> None:
        """Raises `ObjectWriteError` when S3 refuses the object or cannot be reached."""
        try:
            status, answer = self.requests.send(
                "PUT", location, _error_body, body=body, headers={"Content-Type": content_type}
            )
        except BotoCoreError as error:
            raise ObjectWriteError(f"writing {location.uri}: {error}") from None
        except _ConnectionFailedError as failure:
            raise ObjectWriteError(f"writing {location.uri}: the connection to S3 failed ({failure})") from None
        if status != 200:
            raise ObjectWriteError(f"writing {location.uri}: S3 answered {status} {_error_code(status, answer)}")


class ObjectReader:
    """Reads images from S3, several at a time. `prefetch` names the objects that will be asked for, in order:
    their reads start early, so that the images of the next work messages download while the current one runs
    through the network, but never more than `ahead` objects not yet asked for. Memory stays bounded (a batch
    of ten messages is not held in memory at once), and the reads are spread over the invocation rather than
    all at its start, competing with the first messages' decoding for the function's CPU."""

    def __init__(
        self,
        s3: S3Client,
        max_bytes: int,
        *,
        timeout: float = 30.0,
        parallel: int = MAX_PARALLEL_DOWNLOADS,
        ahead: int = READ_AHEAD,
        credentials: Credentials | None = None,
    ) -> None:
        """`credentials`: those the S3 client signs with (its session's `get_credentials()`); without them,
        the client presigns every URL itself."""
        self.requests = SignedRequests(s3, credentials, timeout)
        self.max_bytes = max_bytes
        self.ahead = max(1, ahead)
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="s3-read")
        self._pending: dict[S3Location, Future[bytes | InputError]] = {}  # started, not yet asked for
        self._named: dict[S3Location, None] = {}  # named by prefetch, not yet asked for nor skipped, in order

    def _read(self, location: S3Location) -> bytes | InputError:
        try:
            return self.read_object(location)
        except InputError as error:
            return error

    def read_object(self, location: S3Location) -> bytes:
        """The object's bytes; raises `InputError` for what is the image's failure, `ObjectReadError` else."""
        try:
            status, data = self.requests.send("GET", location, functools.partial(self._body, location))
        except BotoCoreError as error:  # no credentials, an invalid bucket name
            raise InputError(ErrorCode.OBJECT_UNREADABLE, f"{location.uri} could not be read: {error}") from None
        except _ConnectionFailedError as failure:
            raise InputError(
                ErrorCode.OBJECT_UNREADABLE,
                f"{location.uri} could not be read: the connection to S3 failed ({failure})",
            ) from None
        if status != 200:
            code = _error_code(status, data)
            if code in _MISSING:
                raise InputError(ErrorCode.OBJECT_NOT_FOUND, f"{location.uri} does not exist (any more)")
            if code in _FORBIDDEN:
                raise InputError(ErrorCode.OBJECT_UNREADABLE, f"{location.uri} may not be read by this stack")
            if code in _ELSEWHERE:
                region = self.requests.region
                raise InputError(
                    ErrorCode.OBJECT_UNREADABLE,
                    f"{location.uri} is in another AWS region than this stack ({region}); "
                    f"copy the images to a bucket in {region}",
                )
            raise ObjectReadError(f"reading {location.uri}: S3 answered {status} {code}")
        if not data:
            raise InputError(ErrorCode.IMAGE_EMPTY, f"{location.uri} is empty")
        return data

    def _body(self, location: S3Location, response: http.client.HTTPResponse) -> bytes:
        if response.status != 200:
            return _error_body(response)
        length = response.getheader("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise _too_large(location, self.max_bytes)
        data = response.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise _too_large(location, self.max_bytes)
        return data

    def prefetch(self, locations: Sequence[S3Location]) -> None:
        self._named.update(dict.fromkeys(locations))
        self._start_ahead()

    def read(self, locations: Sequence[S3Location]) -> list[bytes | InputError]:
        """Each object's bytes, or the reason it could not be read, in order. Objects named by `prefetch`
        before these and never asked for (a message that was skipped) are dropped."""
        for location in locations:
            self._start(location)
        results = [self._pending.pop(location).result() for location in locations]
        asked = self._named.keys() & set(locations)
        for location in list(self._named):
            if not asked:
                break
            del self._named[location]
            if location in asked:
                asked.discard(location)
            else:
                skipped = self._pending.pop(location, None)
                if skipped is not None:
                    skipped.cancel()
        self._start_ahead()
        return results

    def forget(self) -> None:
        """Drop what was prefetched and not read (the invocation is over)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._named.clear()

    def _start(self, location: S3Location) -> None:
        if location not in self._pending:
            self._pending[location] = self._pool.submit(self._read, location)

    def _start_ahead(self) -> None:
        for location in self._named:
            if len(self._pending) >= self.ahead:
                break
            self._start(location)
