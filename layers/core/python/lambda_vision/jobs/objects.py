"""Reading input images from S3: several at a time, each failure an `InputError` for that image.

Each object is read with a GET of a URL the S3 client presigned (Signature Version 4, the function's credentials, a few
minutes of validity) over a urllib3 pool, with urllib3's retries of S3's transient answers (500, 503 SlowDown)
and of broken connections. boto3's `get_object` spends about four milliseconds of CPU per call on this path
(its event hooks, user agent, response parsing): as much as a fifth of an image's inference. Presigning costs
a tenth of that, and the read itself is the same HTTP GET.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import urllib3
from botocore.exceptions import BotoCoreError
from urllib3.exceptions import HTTPError

from lambda_vision.errors import ErrorCode, InputError
from lambda_vision.jobs.locations import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_PARALLEL_DOWNLOADS = 8
PRESIGNED_SECONDS = 300
_MISSING = frozenset({"NoSuchKey", "NotFound", "NoSuchBucket"})
_FORBIDDEN = frozenset({"AccessDenied", "AllAccessDisabled", "InvalidObjectState"})
# A bucket of another region: S3 answers the URL signed for the stack's region with one of these.
_ELSEWHERE = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"})
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_RETRIES = urllib3.Retry(
    total=3, connect=3, read=2, backoff_factor=0.1, status_forcelist=(500, 502, 503, 504), raise_on_status=False
)


class ObjectReadError(Exception):
    """S3 answered a read with an error that is not about the object (a throttle that outlasted the retries,
    an expired credential): the message is delivered again."""


def _error_code(status: int, body: bytes) -> str:
    match = _ERROR_CODE.search(body)
    if match is not None:
        return match.group(1).decode("ascii", "replace")
    return {404: "NotFound", 403: "AccessDenied", 301: "PermanentRedirect"}.get(status, str(status))


def _too_large(location: S3Location, max_bytes: int) -> InputError:
    return InputError(
        ErrorCode.OBJECT_TOO_LARGE, f"{location.uri} is larger than the limit of {max_bytes} bytes; use a smaller image"
    )


def _broken(location: S3Location, error: HTTPError) -> InputError:
    # Never the error's own text: urllib3 quotes the URL, whose query string is a signature.
    cause = getattr(error, "reason", None) or error
    return InputError(
        ErrorCode.OBJECT_UNREADABLE,
        f"{location.uri} could not be read: the connection to S3 failed ({type(cause).__name__})",
    )


def read_object(s3: S3Client, http: urllib3.PoolManager, location: S3Location, max_bytes: int, timeout: float) -> bytes:
    try:
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": location.bucket, "Key": location.key}, ExpiresIn=PRESIGNED_SECONDS
        )
    except BotoCoreError as error:  # no credentials, an invalid bucket name
        raise InputError(ErrorCode.OBJECT_UNREADABLE, f"{location.uri} could not be read: {error}") from None
    try:
        response = http.request("GET", url, preload_content=False, retries=_RETRIES, redirect=False, timeout=timeout)
    except HTTPError as error:  # the connection failed on every attempt
        raise _broken(location, error) from None
    try:
        if response.status != 200:
            code = _error_code(response.status, response.read(65536))
            if code in _MISSING:
                raise InputError(ErrorCode.OBJECT_NOT_FOUND, f"{location.uri} does not exist (any more)")
            if code in _FORBIDDEN:
                raise InputError(ErrorCode.OBJECT_UNREADABLE, f"{location.uri} may not be read by this stack")
            if code in _ELSEWHERE:
                raise InputError(
                    ErrorCode.OBJECT_UNREADABLE,
                    f"{location.uri} is in another AWS region than this stack ({s3.meta.region_name}); "
                    f"copy the images to a bucket in {s3.meta.region_name}",
                )
            raise ObjectReadError(f"reading {location.uri}: S3 answered {response.status} {code}")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise _too_large(location, max_bytes)
        data = response.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_large(location, max_bytes)
    except HTTPError as error:  # the body broke off
        raise _broken(location, error) from None
    finally:
        response.release_conn()
    if not data:
        raise InputError(ErrorCode.IMAGE_EMPTY, f"{location.uri} is empty")
    return data


class ObjectReader:
    """Reads images from S3, several at a time; `prefetch` starts reads early, so the images of the next work
    message download while the current one runs through the network."""

    def __init__(
        self, s3: S3Client, max_bytes: int, *, timeout: float = 30.0, parallel: int = MAX_PARALLEL_DOWNLOADS
    ) -> None:
        # Unless the client was created with signature_version="s3v4", botocore presigns with Signature
        # Version 2, which S3 refuses for buckets created since 2020.
        probe = s3.generate_presigned_url("get_object", Params={"Bucket": "probe-bucket", "Key": "probe"})
        if "X-Amz-Signature=" not in probe:
            raise ValueError("the S3 client must be created with Config(signature_version='s3v4')")
        self.s3 = s3
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._http = urllib3.PoolManager(maxsize=parallel, block=False)
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="s3-read")
        self._pending: dict[S3Location, Future[bytes | InputError]] = {}

    def _read(self, location: S3Location) -> bytes | InputError:
        try:
            return read_object(self.s3, self._http, location, self.max_bytes, self.timeout)
        except InputError as error:
            return error

    def prefetch(self, locations: Sequence[S3Location]) -> None:
        for location in locations:
            if location not in self._pending:
                self._pending[location] = self._pool.submit(self._read, location)

    def read(self, locations: Sequence[S3Location]) -> list[bytes | InputError]:
        """Each object's bytes, or the reason it could not be read, in order."""
        self.prefetch(locations)
        return [self._pending.pop(location).result() for location in locations]

    def forget(self) -> None:
        """Drop what was prefetched and not read (the invocation is over)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
