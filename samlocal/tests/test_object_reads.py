"""Plain S3 reads answered from moto's store: the same status, headers (in the same order) and body as moto's
own answer, and every other read left to moto."""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

from samlocal.aws_endpoint import CREDENTIALS, AwsEndpoint
from samlocal.console import Console

_Answer = tuple[int, list[tuple[str, str]], bytes]

_DENY_READS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::guarded/*"}],
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[AwsEndpoint]:
    served = AwsEndpoint(0, "us-east-1", Console(io.StringIO()))
    served.start()
    s3 = served.s3()
    for bucket in ("plain", "versioned", "guarded", "archive"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="plain", Key="a.jpg", Body=b"\xff\xd8 an image")
    s3.put_object(
        Bucket="plain",
        Key="dir/b c+d%e~é=&?.txt",
        Body=b"described",
        ContentType="text/plain; charset=utf-8",
        ContentEncoding="identity",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="b.txt"',
        Metadata={"camera": "x100", "taken": "2026-11-26"},
        Tagging="team=vision&stage=test",
        ChecksumAlgorithm="SHA256",
    )
    s3.put_object(Bucket="plain", Key="kms.bin", Body=b"sealed", ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/x")
    s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="versioned", Key="v.txt", Body=b"first")
    s3.put_object(Bucket="versioned", Key="v.txt", Body=b"second")
    s3.put_object(Bucket="guarded", Key="g.txt", Body=b"guarded")
    s3.put_bucket_policy(Bucket="guarded", Policy=json.dumps(_DENY_READS))
    s3.put_object(Bucket="archive", Key="old.tif", Body=b"cold", StorageClass="GLACIER")
    try:
        yield served
    finally:
        served.stop()


@functools.cache
def _client(url: str, signature_version: str | None) -> Any:
    config = Config(signature_version=signature_version)
    session: Any = boto3.session.Session()
    return session.client("s3", endpoint_url=url, region_name="us-east-1", config=config, **CREDENTIALS)


def _presigned(endpoint: AwsEndpoint, bucket: str, key: str, **params: Any) -> tuple[str, dict[str, str]]:
    """A URL presigned with Signature Version 4."""
    s3 = _client(endpoint.url, "s3v4")
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key, **params}), {}


def _presigned_v2(endpoint: AwsEndpoint, bucket: str, key: str) -> tuple[str, dict[str, str]]:
    """A URL presigned as boto3 presigns it for a custom endpoint: Signature Version 2."""
    url = _client(endpoint.url, None).generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    assert "AWSAccessKeyId=" in url
    return url, {}


def _header_signed(endpoint: AwsEndpoint, bucket: str, key: str) -> tuple[str, dict[str, str]]:
    """A GET signed in its Authorization header, as SDKs send get_object (asking for the checksum)."""
    from botocore.utils import percent_encode  # noqa: PLC0415

    url = f"{endpoint.url}/{bucket}/{percent_encode(key, safe='/~')}?x-id=GetObject"
    request = AWSRequest(method="GET", url=url, headers={"x-amz-checksum-mode": "ENABLED"})
    S3SigV4Auth(Credentials("testing", "testing"), "s3", "us-east-1").add_auth(request)
    return url, dict(request.headers.items())


def _environ(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """The WSGI environment of this request as werkzeug's server makes it (a path with `?` in a key included)."""
    parts = urlsplit(url)
    builder = EnvironBuilder(query_string=parts.query, base_url=f"http://{parts.netloc}", headers=list(headers.items()))
    environ: dict[str, Any] = builder.get_environ()
    environ["PATH_INFO"] = unquote_to_bytes(parts.path).decode("latin-1")
    environ["RAW_URI"] = environ["REQUEST_URI"] = f"{parts.path}?{parts.query}"
    return environ


def _get(app: Any, url: str, headers: dict[str, str]) -> _Answer:
    body, status, answer_headers = run_wsgi_app(app, _environ(url, headers))
    return int(status.split()[0]), list(answer_headers.items()), b"".join(body)


def _without_request_id(answer: _Answer) -> _Answer:
    status, headers, body = answer
    ids = [value for name, value in headers if name == "x-amzn-requestid"]
    assert len(ids) == 1 and len(ids[0]) == 52 and ids[0].isalnum()
    return status, [(name, value) for name, value in headers if name != "x-amzn-requestid"], body


def _same_as_moto(endpoint: AwsEndpoint, url: str, headers: dict[str, str]) -> _Answer:
    """The endpoint's answer, checked to equal moto's own (request ids aside)."""
    answer = _get(endpoint.app, url, headers)
    assert _without_request_id(answer) == _without_request_id(_get(endpoint.app.app, url, headers))
    return answer


SIGNED = {"presigned": _presigned, "presigned-v2": _presigned_v2, "header-signed": _header_signed}


@pytest.mark.parametrize("signing", sorted(SIGNED))
@pytest.mark.parametrize(
    ("bucket", "key", "body"),
    [
        ("plain", "a.jpg", b"\xff\xd8 an image"),
        ("plain", "dir/b c+d%e~é=&?.txt", b"described"),
        ("plain", "kms.bin", b"sealed"),
        ("versioned", "v.txt", b"second"),
    ],
)
def test_a_plain_read_is_answered_from_the_store_as_moto_answers_it(
    endpoint: AwsEndpoint, signing: str, bucket: str, key: str, body: bytes
) -> None:
    url, headers = SIGNED[signing](endpoint, bucket, key)
    assert endpoint.app.answer(_environ(url, headers)) is not None, "answered without moto"
    status, answer_headers, answer_body = _same_as_moto(endpoint, url, headers)
    assert (status, answer_body) == (200, body)
    names = {name.lower() for name, _ in answer_headers}
    assert {"etag", "last-modified", "content-length", "accept-ranges"} <= names
    if key.startswith("dir/"):
        assert {"x-amz-meta-camera", "x-amz-tagging-count", "cache-control", "content-disposition"} <= names
        assert ("x-amz-checksum-sha256" in names) == (signing == "header-signed"), "the checksum when asked for"
    if bucket == "versioned":
        assert "x-amz-version-id" in names


@pytest.mark.parametrize(
    ("bucket", "key", "params", "headers", "status"),
    [
        ("plain", "a.jpg", {}, {"Range": "bytes=0-3"}, 206),
        ("plain", "a.jpg", {}, {"If-None-Match": "*"}, 200),
        ("plain", "a.jpg", {}, {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, 200),
        ("plain", "a.jpg", {}, {"If-Match": '"not-the-etag"'}, 412),
        ("plain", "a.jpg", {"ResponseContentType": "image/png"}, {}, 200),
        ("plain", "a.jpg", {}, {"Origin": "https://example.com"}, 200),
        ("plain", "missing.jpg", {}, {}, 404),
        ("no-such-bucket", "a.jpg", {}, {}, 404),
        ("guarded", "g.txt", {}, {}, 403),
        ("archive", "old.tif", {}, {}, 403),
    ],
)
def test_every_other_read_is_left_to_moto(
    endpoint: AwsEndpoint, bucket: str, key: str, params: dict[str, str], headers: dict[str, str], status: int
) -> None:
    url, _ = _presigned(endpoint, bucket, key, **params)
    assert endpoint.app.answer(_environ(url, headers)) is None
    assert _get(endpoint.app, url, headers)[0] == status


def test_a_version_asked_for_is_left_to_moto(endpoint: AwsEndpoint) -> None:
    versions = endpoint.s3().list_object_versions(Bucket="versioned", Prefix="v.txt")["Versions"]
    oldest = next(version["VersionId"] for version in versions if not version["IsLatest"])
    url, _ = _presigned(endpoint, "versioned", "v.txt", VersionId=oldest)
    assert endpoint.app.answer(_environ(url, {})) is None
    assert _get(endpoint.app, url, {})[2] == b"first"


def test_unsigned_virtual_hosted_and_other_service_requests_are_left_to_moto(endpoint: AwsEndpoint) -> None:
    url, _ = _presigned(endpoint, "plain", "a.jpg")
    unsigned = url.split("?", 1)[0] + "?x-id=GetObject"
    virtual = url.replace(f"{endpoint.url}/plain/", "http://plain.s3.amazonaws.com/")
    sqs = url.replace("%2Fs3%2Faws4_request", "%2Fsqs%2Faws4_request")
    for other in (unsigned, virtual, sqs):
        assert endpoint.app.answer(_environ(other, {})) is None, other


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40))
def test_any_key_reads_back_what_moto_would_answer(endpoint: AwsEndpoint, key: str) -> None:
    _client(endpoint.url, None).put_object(Bucket="plain", Key=f"keys/{key}", Body=key.encode())
    for signing in SIGNED.values():
        url, headers = signing(endpoint, "plain", f"keys/{key}")
        assert endpoint.app.answer(_environ(url, headers)) is not None
        status, _, body = _same_as_moto(endpoint, url, headers)
        assert (status, body) == (200, key.encode())


def test_sdk_reads_over_http_get_the_object_and_a_valid_checksum(endpoint: AwsEndpoint) -> None:
    """boto3 checks the checksum it asked for against the body: a wrong header would fail the read."""
    s3 = endpoint.s3()
    answer = s3.get_object(Bucket="plain", Key="dir/b c+d%e~é=&?.txt", ChecksumMode="ENABLED")
    assert answer["Body"].read() == b"described"
    assert answer["Metadata"] == {"camera": "x100", "taken": "2026-11-26"}
    assert answer["ContentType"] == "text/plain; charset=utf-8"
    assert "ChecksumSHA256" in answer


@pytest.mark.parametrize(
    "path", ["//plain/a.jpg", "/plain//a.jpg", "/plain/./a.jpg", "/plain/a.jpg/", "/plain/a%2Ejpg"]
)
def test_odd_paths_are_answered_as_moto_answers_them(endpoint: AwsEndpoint, path: str) -> None:
    url, _ = _presigned(endpoint, "plain", "a.jpg")
    odd = url.replace(f"{endpoint.url}/plain/a.jpg", f"{endpoint.url}{path}")
    status, _, body = _get(endpoint.app.app, odd, {})
    answer = endpoint.app.answer(_environ(odd, {}))
    if answer is not None:
        assert (status, body) == (200, answer[1])
    assert _get(endpoint.app, odd, {})[0] == status
