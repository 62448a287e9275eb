"""Plain S3 object reads answered straight from moto's store, in front of moto's server app.

moto serves a GetObject with about 3 ms of CPU (werkzeug's request objects, Flask's dispatch, its own URL and
header parsing, a request id drawn character by character), in the emulator's process, on the cores the
functions run on: a function reading objects one after another (a batch job's worker) pays for it twice, in
its waits and in the CPU the endpoint takes from it. Most reads are plain: a signed GET of a whole object, by
path, in a bucket without a policy or access logging. Those are answered here with the status, headers and
body moto gives them, in moto's order (the tests compare the two); every other request, and every read that
moto would answer differently (a missing bucket or key, a range, a condition, a version, a response header
override, an archived object, a CORS origin, IAM authorization turned on), goes to moto unchanged.
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, unquote

from moto import settings
from moto.core.responses import BaseResponse
from moto.core.utils import extract_region_from_aws_authorization
from moto.iam.models import get_account_id_from
from moto.moto_api._internal import mock_random
from moto.s3.models import FakeKey, s3_backends
from moto.s3.responses import DEFAULT_REGION_NAME, S3Response
from moto.s3.utils import ARCHIVE_STORAGE_CLASSES, parse_region_from_url
from moto.s3bucket_path.utils import bucket_name_from_url, parse_key_name
from moto.utilities.utils import get_partition

Answer = tuple[dict[str, str], bytes]

# A presigned URL's own parameters (Signature Version 4, or 2 as boto3 presigns for a custom endpoint); any
# other (versionId, partNumber, response-content-type, acl, tagging, attributes, uploadId) selects something
# else than the object as it is.
_PRESIGNED = frozenset({
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
    "AWSAccessKeyId", "Signature", "Expires", "x-amz-security-token",
})  # fmt: skip
_OPERATION = ("x-id", "GetObject")  # the operation's name, which recent SDKs add to the query
# Headers that change moto's answer: a range, a condition, a CORS origin, another account, a customer's key.
_ANSWER_CHANGING = (
    "HTTP_RANGE", "HTTP_IF_", "HTTP_ORIGIN", "HTTP_X_MOTO_", "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER",
)  # fmt: skip
_S3_SCOPE = "/s3/aws4_request"
_MOTO_PATHS = ("/moto-api", "/latest/", "/favicon.ico")  # moto's own API and instance metadata
_LENGTH = "Content-Length"
_REQUEST_ID = string.ascii_letters + string.digits
_UNSIGNED_ACCESS_KEY = "AKIAEXAMPLE"  # moto's caller when neither the header nor the query names one


class PlainObjectReads:
    """WSGI middleware: plain signed GETs of whole objects answered from moto's S3 store, the rest by `app`."""

    def __init__(self, app: Callable[[dict[str, Any], Any], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        answer = self.answer(environ) if environ.get("REQUEST_METHOD") == "GET" else None
        if answer is None:
            return self.app(environ, start_response)
        headers, body = answer
        start_response("200 OK", list(headers.items()))
        return [body]

    def answer(self, environ: dict[str, Any]) -> Answer | None:
        """The object's headers and body as moto would answer this GET, or None when moto is to answer it."""
        authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
        query = parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
        if not all(name in _PRESIGNED or (name, value) == _OPERATION for name, value in query):
            return None
        parameters = dict(query)
        if authorization:
            signed = _S3_SCOPE in authorization
        else:  # moto takes a request without an Authorization header for S3's
            signed = _S3_SCOPE in parameters.get("X-Amz-Credential", "") or "Signature" in parameters
        if not signed:
            return None
        if any(name.startswith(_ANSWER_CHANGING) for name in environ) or environ.get("CONTENT_LENGTH") not in (
            None, "", "0",
        ):  # fmt: skip
            return None
        if not math.isinf(settings.INITIAL_NO_AUTH_ACTION_COUNT):  # moto checks IAM policies
            return None
        host = str(environ.get("HTTP_HOST", ""))
        raw_path = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
        if not raw_path.startswith("/") or raw_path.startswith(_MOTO_PATHS) or ".s3-accesspoint." in host:
            return None
        if S3Response.subdomain_based_buckets(SimpleNamespace(headers={"host": host})):
            return None  # a virtual-hosted bucket: its name is in the host
        access_key = parameters.get("AWSAccessKeyId", _UNSIGNED_ACCESS_KEY)
        if authorization:
            match = BaseResponse.access_key_regex.search(authorization)
            access_key = match.group(1) if match else access_key
        checksum_mode = str(environ.get("HTTP_X_AMZ_CHECKSUM_MODE", ""))
        return self._object(host, raw_path, authorization, access_key, checksum_mode)

    @staticmethod
    def _object(host: str, raw_path: str, authorization: str, access_key: str, checksum_mode: str) -> Answer | None:
        url = f"http://{host}{raw_path}"
        bucket_name = bucket_name_from_url(url)  # as moto reads it, "//" included
        key_name = parse_key_name(unquote(raw_path))
        if not bucket_name or "_" in bucket_name or not key_name:  # moto reads "a_b" as a service and region
            return None
        account = os.environ.get("MOTO_ACCOUNT_ID") or get_account_id_from(access_key)
        region = (
            parse_region_from_url(url, use_default_region=False)
            or extract_region_from_aws_authorization(authorization)
            or DEFAULT_REGION_NAME
        )
        backend = s3_backends[account][get_partition(region)]
        bucket = backend.buckets.get(bucket_name)
        if bucket is None or bucket.policy is not None or bucket.logging:
            return None
        key = backend.get_object(bucket_name, key_name)
        if not isinstance(key, FakeKey) or key.storage_class in ARCHIVE_STORAGE_CLASSES:
            return None
        headers: dict[str, str] = {}
        if key.version_id != "null":
            headers["x-amz-version-id"] = str(key.version_id)
        # werkzeug's response, which moto's answers go through, spells the length it sets in its own way.
        headers.update(
            (_LENGTH if name == _LENGTH.lower() else name, value) for name, value in key.response_dict.items()
        )
        if checksum_mode == "ENABLED" and key.checksum_algorithm:
            checksum = key.checksum_value
            if key.checksum_type == "COMPOSITE":
                checksum = f"{checksum}-{key.checksum_parts}"
            headers[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = str(checksum)
            if key.checksum_type:
                headers["x-amz-checksum-type"] = key.checksum_type
        headers.update(key.metadata)
        headers["Accept-Ranges"] = "bytes"
        headers["x-amzn-requestid"] = "".join(mock_random.choices(_REQUEST_ID, k=52))
        headers["Access-Control-Allow-Origin"] = "*"  # flask-cors, on every answer of moto's app
        return headers, key.value
