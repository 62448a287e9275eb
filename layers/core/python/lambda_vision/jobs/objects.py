"""Reading input images from S3: several at a time, each failure an `InputError` for that image."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from lambda_vision.errors import ErrorCode, InputError
from lambda_vision.jobs.locations import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_PARALLEL_DOWNLOADS = 8
_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})
_FORBIDDEN = frozenset({"AccessDenied", "403", "AllAccessDisabled", "InvalidObjectState"})


def read_object(s3: S3Client, location: S3Location, max_bytes: int) -> bytes:
    try:
        response = s3.get_object(Bucket=location.bucket, Key=location.key)
        if int(response.get("ContentLength", 0)) > max_bytes:
            response["Body"].close()
            raise InputError(
                ErrorCode.OBJECT_TOO_LARGE,
                f"{location.uri} is larger than the limit of {max_bytes} bytes; use a smaller image",
            )
        data = response["Body"].read(max_bytes + 1)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise InputError(ErrorCode.OBJECT_NOT_FOUND, f"{location.uri} does not exist (any more)") from None
        if code in _FORBIDDEN:
            raise InputError(ErrorCode.OBJECT_UNREADABLE, f"{location.uri} may not be read by this stack") from None
        raise
    except BotoCoreError as error:
        raise InputError(ErrorCode.OBJECT_UNREADABLE, f"{location.uri} could not be read: {error}") from None
    if not data:
        raise InputError(ErrorCode.IMAGE_EMPTY, f"{location.uri} is empty")
    return data


class ObjectReader:
    """Reads images from S3, several at a time; `prefetch` starts reads early, so the images of the next work
    message download while the current one runs through the network."""

    def __init__(self, s3: S3Client, max_bytes: int, parallel: int = MAX_PARALLEL_DOWNLOADS) -> None:
        self.s3 = s3
        self.max_bytes = max_bytes
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="s3-read")
        self._pending: dict[S3Location, Future[bytes | InputError]] = {}

    def _read(self, location: S3Location) -> bytes | InputError:
        try:
            return read_object(self.s3, location, self.max_bytes)
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
