"""The stack with `ApiType=HTTP`: template.yaml's HTTP API served by `python -m samlocal` (payload format 2.0
events, no binary media types, CORS from the API's CorsConfiguration), with the inference function, its layers,
the real models and the local AWS endpoint, called over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from PIL import Image
from requests_toolbelt import MultipartEncoder

from samlocal.testing import LocalApi
from sample_images import rotated_page
from support import ROOT

ORIGIN = "https://app.example.com"
POOL_ARN = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbCdEf123"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
UPRIGHT = rotated_page(0)  # PNG, reads as "0"
TURNED = rotated_page(90, "JPEG")  # reads as "270"


@pytest.fixture(scope="module")
def http_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("http-api") / "console.log"
    overrides = f"ApiType=HTTP CorsAllowOrigin={ORIGIN}"
    local_api = LocalApi(ROOT / "template.yaml", log, "--warm-containers", "eager", "--parameter-overrides", overrides)
    try:
        yield local_api
    finally:
        local_api.close()


def served(tmp_path_factory: pytest.TempPathFactory, overrides: str) -> LocalApi:
    log = tmp_path_factory.mktemp("http-api-auth") / "console.log"
    return LocalApi(ROOT / "template.yaml", log, "--parameter-overrides", overrides)


@pytest.fixture(scope="module")
def iam_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    local_api = served(tmp_path_factory, "ApiType=HTTP Auth=IAM")
    try:
        yield local_api
    finally:
        local_api.close()


@pytest.fixture(scope="module")
def cognito_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    overrides = (
        f"ApiType=HTTP Auth=COGNITO CognitoUserPoolArn={POOL_ARN} CognitoAppClientIds=webclient,mobileclient "
        f"CorsAllowOrigin={ORIGIN}"
    )
    local_api = served(tmp_path_factory, overrides)
    try:
        yield local_api
    finally:
        local_api.close()


def id_token(**claims: Any) -> str:
    """A Cognito ID token's shape; the local API checks its claims, not its signature (it cannot fetch the keys)."""

    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    now = int(time.time())
    document = {"sub": "u-1", "iss": ISSUER, "aud": "webclient", "token_use": "id", "iat": now, "exp": now + 600}
    return f"{part({'alg': 'RS256', 'kid': 'k1'})}.{part({**document, **claims})}.c2lnbmF0dXJl"


def invocations(api: LocalApi) -> int:
    return api.output().count("[InferenceFunction] START")


def labels(response_json: dict[str, object]) -> list[str]:
    results = response_json["results"]
    assert isinstance(results, list)
    return [str(result["predictions"][0]["label"]) for result in results]


def test_only_the_http_api_is_served_and_every_request_goes_to_the_function(http_api: LocalApi) -> None:
    output = http_api.output()
    assert "InferenceHttpApi" in output
    assert re.search(r"ANY\s+\$default\s+->\s+InferenceFunction", output), output[:3000]
    # The REST API, its mock preflights and its usage plan are not created with ApiType=HTTP.
    assert not re.search(r"\bInferenceApi\b", output)
    assert not {"ApiKey", "UsagePlan", "ApiGatewayAccount", "RestApiInvokePermission"} & set(re.findall(r"\w+", output))
    assert "/v1/" not in output


def test_multipart_with_two_images_answers_their_labels_in_order(http_api: LocalApi) -> None:
    form = MultipartEncoder(
        fields=[
            ("image", ("turned.jpg", TURNED, "image/jpeg")),
            ("image", ("upright.png", UPRIGHT, "image/png")),
        ]
    )
    response = http_api.post(
        "/predict?model=orientation", data=form.to_string(), headers={"Content-Type": form.content_type}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [result["index"] for result in body["results"]] == [0, 1]
    assert [result["status"] for result in body["results"]] == ["ok", "ok"]
    assert labels(body) == ["270", "0"]


def test_a_raw_image_body_arrives_base64_encoded_and_is_decoded(http_api: LocalApi) -> None:
    response = http_api.post("/predict?model=orientation", data=TURNED, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert labels(response.json()) == ["270"]


def test_an_annotated_image_comes_back_as_png_bytes(http_api: LocalApi) -> None:
    response = http_api.post(
        "/object_detection?model=layout",
        data=UPRIGHT,
        headers={"Content-Type": "image/png", "Accept": "image/png"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    # Binary, not the base64 text of the function's answer: an HTTP API decodes isBase64Encoded bodies itself.
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "PNG"
    assert picture.size == Image.open(io.BytesIO(UPRIGHT)).size
    assert json.loads(response.headers["X-Detections"])


def test_models_are_listed(http_api: LocalApi) -> None:
    response = http_api.get("/models")
    assert response.status_code == 200
    assert {"orientation", "layout"} <= {model["name"] for model in response.json()["models"]}
    described = http_api.get("/models/orientation")
    assert described.status_code == 200
    assert described.json()["name"] == "orientation"


def test_the_page_is_served_at_the_root(http_api: LocalApi) -> None:
    response = http_api.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "lambda-vision" in response.text


def test_an_unknown_route_answers_the_api_s_404_error(http_api: LocalApi) -> None:
    response = http_api.get("/nothing-here")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "route_not_found"
    assert "GET /nothing-here" in error["message"]
    assert error["request_id"]
    # A known path with a method it does not have is the same error, not the gateway's {"message":"Not Found"}.
    wrong_method = http_api.request("PUT", "/predict")
    assert wrong_method.status_code == 404
    assert wrong_method.json()["error"]["code"] == "route_not_found"


def test_a_preflight_is_answered_by_the_gateway_without_invoking_the_function(http_api: LocalApi) -> None:
    http_api.get("/health")  # the function has run at least once: its START lines are counted from here
    before = invocations(http_api)
    response = http_api.request(
        "OPTIONS",
        "/predict",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "content-type" in allowed_headers
    assert "authorization" in allowed_headers
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert invocations(http_api) == before


def test_answers_to_an_allowed_origin_carry_the_cors_headers(http_api: LocalApi) -> None:
    response = http_api.get("/models", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "x-detections" in response.headers["Access-Control-Expose-Headers"].lower()
    other = http_api.get("/models", headers={"Origin": "https://elsewhere.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_job_is_accepted_with_a_status_url_at_the_root(http_api: LocalApi) -> None:
    assert http_api.aws_url, http_api.output()
    response = http_api.post("/jobs", json={"input": ["https://images.example.com/a.jpg"], "model": "orientation"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert response.headers["Location"] == f"{http_api.url}/jobs/{job['job_id']}"
    described = http_api.get(f"/jobs/{job['job_id']}")
    assert described.status_code == 200
    assert described.json()["job_id"] == job["job_id"]


# Auth on the HTTP API: AWS_IAM authorization, or a JWT authorizer trusting the Cognito pool's app clients.


def test_iam_auth_refuses_an_unsigned_request(iam_api: LocalApi) -> None:
    before = invocations(iam_api)
    response = iam_api.get("/models")
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    assert invocations(iam_api) == before


def test_iam_auth_lets_a_sigv4_signed_request_through(iam_api: LocalApi) -> None:
    request = AWSRequest(method="GET", url=f"{iam_api.url}/models")
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "execute-api", "us-east-1").add_auth(request)
    response = iam_api.get("/models", headers=dict(request.headers))
    assert response.status_code == 200, response.text
    assert "orientation" in {model["name"] for model in response.json()["models"]}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        id_token(aud="someoneelse"),  # an app client the stack does not trust
        id_token(iss="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"),  # another pool
        id_token(exp=int(time.time()) - 60),  # expired
    ],
)
def test_cognito_auth_refuses_a_missing_foreign_or_expired_token(cognito_api: LocalApi, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = cognito_api.get("/models", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


@pytest.mark.parametrize("client", ["webclient", "mobileclient"])
def test_cognito_auth_accepts_an_id_token_of_each_trusted_app_client(cognito_api: LocalApi, client: str) -> None:
    response = cognito_api.get("/models", headers={"Authorization": id_token(aud=client)})
    assert response.status_code == 200, response.text


def test_a_preflight_needs_no_token_with_cognito_auth(cognito_api: LocalApi) -> None:
    response = cognito_api.request(
        "OPTIONS", "/predict", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
