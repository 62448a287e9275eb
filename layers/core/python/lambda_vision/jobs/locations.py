"""S3 locations (`s3://bucket/prefix`) and which of them the stack may read from and write to."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Bucket names as S3 accepts them today: 3-63 lower-case letters, digits, dots and hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MAX_KEY_BYTES = 1024


class LocationError(ValueError):
    """A string that is not an s3:// URI; the message says what is wrong."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str  # an object key, or a prefix ("" is the whole bucket)

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise LocationError(f"{uri!r} is not an S3 URI; write it as s3://bucket/prefix/")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise LocationError(f"{uri!r} has no valid bucket name (3-63 lower-case letters, digits, dots, hyphens)")
        if len(key.encode("utf-8", errors="surrogatepass")) > _MAX_KEY_BYTES:
            raise LocationError(f"{uri!r} has a key longer than {_MAX_KEY_BYTES} bytes")
        if any(ord(character) < 0x20 or ord(character) == 0x7F for character in key):
            raise LocationError(f"{uri!r} contains control characters")
        return cls(bucket, key)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def as_prefix(self) -> S3Location:
        """The same location as a folder: with a trailing slash unless it is the whole bucket."""
        return self if not self.key or self.key.endswith("/") else S3Location(self.bucket, f"{self.key}/")

    def contains(self, other: S3Location) -> bool:
        return self.bucket == other.bucket and other.key.startswith(self.key)

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.as_prefix().key}{name}")


def parse_locations(value: str) -> tuple[S3Location, ...]:
    """A comma-separated list of s3:// URIs or bare bucket names (the whole bucket), each taken as a folder."""
    items = (part.strip() for part in value.split(","))
    return tuple(
        S3Location.parse(item if item.startswith("s3://") else f"s3://{item}/").as_prefix() for item in items if item
    )


@dataclass(frozen=True)
class LocationPolicy:
    """Where jobs may read images and write results (the IAM policies of the functions say the same)."""

    readable: tuple[S3Location, ...]
    writable: tuple[S3Location, ...]

    def may_read(self, location: S3Location) -> bool:
        return _within(location, self.readable)

    def may_write(self, location: S3Location) -> bool:
        return _within(location, self.writable)

    def describe(self, locations: Iterable[S3Location]) -> str:
        return ", ".join(location.uri for location in locations) or "none"


def _within(location: S3Location, allowed: tuple[S3Location, ...]) -> bool:
    return any(area.contains(location) for area in allowed)
