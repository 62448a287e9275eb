"""Authorizers over real sockets: a REST API whose routes are guarded by a Lambda TOKEN authorizer (the
default), a REQUEST authorizer, an OpenAPI security scheme, Cognito and AWS_IAM; the authorizer runs in a
real Lambda runtime worker like any function."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from http_api_harness import ServedHttpApi, serve_as_http_api
from samlocal.authorizers import (
    Authorization,
    Authorizer,
    Guard,
    IdentitySource,
    RequestData,
    Verdict,
    guard_for,
    read_authorizers,
    startup_warnings,
)
from samlocal.template import Api, Function, Route
from samlocal.testing import LocalApi
from samlocal.workers import Outcome

TEMPLATES = Path(__file__).resolve().parent / "templates"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("auth") / "console.log"
    local_api = LocalApi(TEMPLATES / "auth.yaml", log, "--pool-size", "2")
    try:
        yield local_api
    finally:
        local_api.close()


def jwt(claims: dict[str, Any]) -> str:
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'kid': 'local'})}.{part(claims)}.c2lnbmF0dXJl"


def authorizer_context(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    context: dict[str, Any] = response.json()["event"]["requestContext"]["authorizer"]
    return context


class TestTokenAuthorizer:
    def test_an_allow_reaches_the_function_with_the_principal_and_context_as_strings(self, api: LocalApi) -> None:
        context = authorizer_context(api.get("/hello", headers={"Authorization": "Bearer allow"}))
        assert context["principalId"] == "alice"
        assert context["user"] == "alice"
        assert context["count"] == "7"
        assert context["admin"] == "true"
        event = json.loads(context["event"])
        assert event["type"] == "TOKEN"
        assert event["authorizationToken"] == "Bearer allow"
        assert event["methodArn"].startswith("arn:aws:execute-api:us-east-1:123456789012:")
        assert event["methodArn"].endswith("/dev/GET/hello")

    def test_without_the_header_401_and_the_authorizer_is_not_invoked(self, api: LocalApi) -> None:
        invoked = api.output().count("[AuthorizerFunction] START")
        response = api.get("/hello", headers={"Origin": "https://app.example.com"})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.headers["X-Request-Origin"] == "https://app.example.com"
        assert response.json() == {
            "error": {
                "code": "unauthorized",
                "message": "Unauthorized",
                "request_id": response.headers["x-amzn-RequestId"],
            }
        }
        assert api.output().count("[AuthorizerFunction] START") == invoked
        assert api.get("/hello", headers={"Authorization": "Bearer unauthorized"}).status_code == 401
        assert api.wait_for_output("[AuthorizerFunction] START").count("[AuthorizerFunction] START") == invoked + 1

    def test_each_route_is_listed_with_its_authorizer(self, api: LocalApi) -> None:
        output = api.output()
        assert "/hello  ->  EchoFunction  [authorizer TokenAuth (TOKEN)]" in output
        assert "/request/{id}  ->  EchoFunction  [authorizer RequestAuth (REQUEST)]" in output
        assert "/public  ->  EchoFunction\n" in output
        assert "OPTIONS " in output and "/hello  ->  MOCK integration (CORS preflight)\n" in output

    def test_a_token_that_fails_the_validation_expression_is_401(self, api: LocalApi) -> None:
        response = api.get("/hello", headers={"Authorization": "allow"})
        assert response.status_code == 401
        api.wait_for_output("token does not match ValidationExpression")

    def test_an_explicit_deny_is_403(self, api: LocalApi) -> None:
        response = api.get("/hello", headers={"Authorization": "Bearer deny"})
        assert response.status_code == 403
        assert response.json() == {"message": "User is not authorized to access this resource with an explicit deny"}
        assert response.headers["x-amzn-ErrorType"] == "AccessDeniedException"
        # DEFAULT_4XX's header reaches a type without a customization of its own
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"

    def test_an_allow_on_another_resource_is_an_implicit_deny(self, api: LocalApi) -> None:
        response = api.get("/hello", headers={"Authorization": "Bearer elsewhere"})
        assert response.status_code == 403
        assert response.json() == {"message": "User is not authorized to access this resource"}

    def test_unauthorized_raised_by_the_authorizer_is_401(self, api: LocalApi) -> None:
        response = api.get("/hello", headers={"Authorization": "Bearer unauthorized"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"

    @pytest.mark.parametrize("token", ["error", "malformed"])
    def test_a_failing_or_malformed_authorizer_is_500_authorizer_configuration(self, api: LocalApi, token: str) -> None:
        response = api.get("/hello", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 500
        assert response.content == b'{"message": null}'
        assert response.headers["x-amzn-ErrorType"] == "AuthorizerConfigurationException"

    def test_results_are_cached_per_token_for_ttl(self, api: LocalApi) -> None:
        first = authorizer_context(api.get("/hello", headers={"Authorization": "Bearer wildcard"}))
        again = authorizer_context(api.get("/hello", headers={"Authorization": "Bearer wildcard"}))
        assert again["nonce"] == first["nonce"]
        # the cached policy (Allow on the whole stage) is evaluated against the new method ARN
        other = api.get("/openapi-auth", headers={"X-Api-Token": "wildcard"})
        assert other.status_code == 200

    def test_a_cached_policy_naming_one_path_denies_another(self, api: LocalApi) -> None:
        first = authorizer_context(api.get("/hello", headers={"Authorization": "Bearer allow"}))
        # the same token on another route of the same authorizer: the cached Allow names GET /hello only
        response = api.get("/other", headers={"Authorization": "Bearer allow"})
        assert response.status_code == 403
        assert response.json() == {"message": "User is not authorized to access this resource"}
        again = authorizer_context(api.get("/hello", headers={"Authorization": "Bearer allow"}))
        assert again["nonce"] == first["nonce"]

    def test_reauthorize_every_zero_invokes_each_time(self, api: LocalApi) -> None:
        first = authorizer_context(api.get("/nocache", headers={"X-Token": "wildcard"}))
        again = authorizer_context(api.get("/nocache", headers={"X-Token": "wildcard"}))
        assert again["nonce"] != first["nonce"]

    def test_none_opens_a_route_under_a_default_authorizer(self, api: LocalApi) -> None:
        response = api.get("/public")
        assert response.status_code == 200
        assert "authorizer" not in response.json()["event"]["requestContext"]


class TestRequestAuthorizer:
    def test_the_request_event_carries_the_request_without_its_body(self, api: LocalApi) -> None:
        response = api.get("/request/42?token=allow&other=1", headers={"X-User": "allow"})
        event = json.loads(authorizer_context(response)["event"])
        assert event["type"] == "REQUEST"
        assert event["methodArn"].endswith("/dev/GET/request/42")
        assert event["resource"] == "/request/{id}"
        assert event["path"] == "/request/42"
        assert event["httpMethod"] == "GET"
        assert event["headers"]["X-User"] == "allow"
        assert event["queryStringParameters"] == {"token": "allow", "other": "1"}
        assert event["pathParameters"] == {"id": "42"}
        assert event["stageVariables"] == {"tenant": "acme"}
        assert event["requestContext"]["stage"] == "dev"
        assert "body" not in event

    @pytest.mark.parametrize(
        ("target", "headers"),
        [("/request/1?token=allow", {}), ("/request/1", {"X-User": "allow"}), ("/request/1?token=", {"X-User": "a"})],
    )
    def test_a_missing_identity_source_is_401_with_caching_on(
        self, api: LocalApi, target: str, headers: dict[str, str]
    ) -> None:
        assert api.get(target, headers=headers).status_code == 401

    def test_deny_is_403(self, api: LocalApi) -> None:
        response = api.get("/request/1?token=x", headers={"X-User": "deny"})
        assert response.status_code == 403


class TestOpenApiSecurityScheme:
    def test_the_scheme_header_is_the_token(self, api: LocalApi) -> None:
        assert api.get("/openapi-auth").status_code == 401
        context = authorizer_context(api.get("/openapi-auth", headers={"X-Api-Token": "allow"}))
        assert json.loads(context["event"])["authorizationToken"] == "allow"
        assert api.get("/openapi-auth", headers={"X-Api-Token": "deny"}).status_code == 403


class TestCognitoAndIam:
    def test_cognito_claims_are_decoded_unverified(self, api: LocalApi) -> None:
        token = jwt(
            {"sub": "u-1", "email": "a@example.com", "cognito:groups": ["admin", "dev"], "exp": time.time() + 60}
        )
        context = authorizer_context(api.get("/cognito", headers={"Authorization": token}))
        assert context["claims"]["sub"] == "u-1"
        assert context["claims"]["cognito:groups"] == "[admin dev]"
        api.wait_for_output("CognitoAuth (COGNITO_USER_POOLS): token signatures are not verified offline")

    @pytest.mark.parametrize("token", ["", "not-a-jwt", jwt({"sub": "u-1", "exp": 1000})])
    def test_a_missing_unreadable_or_expired_token_is_401(self, api: LocalApi, token: str) -> None:
        headers = {"Authorization": token} if token else {}
        assert api.get("/cognito", headers=headers).status_code == 401

    def test_iam_needs_a_signature_header(self, api: LocalApi) -> None:
        response = api.get("/iam")
        # API Gateway's MISSING_AUTHENTICATION_TOKEN answer, which this API customizes to a 404
        assert response.status_code == 404
        assert response.json() == {"message": "no route", "type": "MISSING_AUTHENTICATION_TOKEN", "stage": "dev"}
        signed = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/execute-api/aws4_request, Signature=x"
        event = api.get("/iam", headers={"Authorization": signed}).json()["event"]
        assert event["requestContext"]["identity"]["accessKey"] == "AKIDEXAMPLE"
        assert "authorizer" not in event["requestContext"]
        api.wait_for_output("AWS_IAM authorization: SigV4 signatures are not verified offline")


def test_disable_authorizer_opens_every_route(tmp_path: Any) -> None:
    local_api = LocalApi(TEMPLATES / "auth.yaml", tmp_path / "console.log", "--disable-authorizer")
    try:
        for path in ("/hello", "/request/1", "/cognito", "/iam", "/openapi-auth"):
            response = local_api.get(path)
            assert response.status_code == 200, (path, response.text)
            assert "authorizer" not in response.json()["event"]["requestContext"]
        assert "--disable-authorizer: no authorizer runs" in local_api.output()
        assert "[AuthorizerFunction] START" not in local_api.output()
    finally:
        local_api.close()


AUTHORIZER_ARN = "arn:aws:lambda:us-east-1:123456789012:function:AuthorizerFunction"
HTTP_AUTH = {
    "DefaultAuthorizer": "TokenAuth",
    "Authorizers": {
        "TokenAuth": {
            "FunctionArn": AUTHORIZER_ARN,
            "AuthorizerPayloadFormatVersion": "2.0",
            "EnableSimpleResponses": True,
            "Identity": {"Headers": ["Authorization"], "ReauthorizeEvery": 300},
        },
        "NoCacheAuth": {
            "FunctionArn": AUTHORIZER_ARN,
            "AuthorizerPayloadFormatVersion": "1.0",
            "Identity": {"Headers": ["X-Token"]},
        },
        "RequestAuth": {
            "FunctionArn": AUTHORIZER_ARN,
            "AuthorizerPayloadFormatVersion": "2.0",
            "Identity": {"Headers": ["X-User"], "QueryStrings": ["token"]},
        },
        "CognitoAuth": {
            "IdentitySource": "$request.header.Authorization",
            "JwtConfiguration": {"issuer": "https://issuer.example.com", "audience": ["client-1"]},
        },
    },
}


@pytest.fixture(scope="module")
def http_api() -> Iterator[ServedHttpApi]:
    with serve_as_http_api(TEMPLATES / "auth.yaml", "AuthApi", {"Auth": HTTP_AUTH}) as served:
        yield served


class TestHttpApiAuthorizers:
    def test_a_simple_response_allows_with_its_context_under_lambda(self, http_api: ServedHttpApi) -> None:
        response = http_api.get("/hello", headers={"Authorization": "simple-allow"})
        context = authorizer_context(response)
        assert context["lambda"]["user"] == "alice"
        assert context["lambda"]["count"] == 7  # HTTP APIs keep the context's types
        event = json.loads(context["lambda"]["event"])
        assert event["version"] == "2.0"
        assert event["type"] == "REQUEST"
        assert event["identitySource"] == ["simple-allow"]
        assert event["routeArn"].endswith("/$default/GET/hello")

    def test_is_authorized_false_is_403_forbidden(self, http_api: ServedHttpApi) -> None:
        response = http_api.get("/hello", headers={"Authorization": "simple-deny"})
        assert response.status_code == 403
        assert response.json() == {"message": "Forbidden"}

    def test_a_missing_identity_source_is_401(self, http_api: ServedHttpApi) -> None:
        response = http_api.get("/hello")
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized"}

    def test_an_authorizer_error_is_500(self, http_api: ServedHttpApi) -> None:
        response = http_api.get("/hello", headers={"Authorization": "error"})
        assert response.status_code == 500
        assert response.json() == {"message": "Internal Server Error"}

    def test_payload_1_0_gets_the_joined_identity_and_an_iam_policy(self, http_api: ServedHttpApi) -> None:
        context = authorizer_context(http_api.get("/nocache", headers={"X-Token": "wildcard"}))
        # the route's payload is 2.0: the context is under `lambda`, whatever the authorizer's payload
        assert context["lambda"]["count"] == 7
        event = json.loads(context["lambda"]["event"])
        assert event["version"] == "1.0"
        assert event["identitySource"] == "wildcard"
        assert event["authorizationToken"] == "wildcard"
        assert event["methodArn"].endswith("/$default/GET/nocache")
        assert http_api.get("/nocache", headers={"X-Token": "deny"}).status_code == 403

    def test_an_iam_policy_on_payload_2_0(self, http_api: ServedHttpApi) -> None:
        context = authorizer_context(http_api.get("/request/7?token=t", headers={"X-User": "allow"}))
        assert context["lambda"]["user"] == "alice"
        assert http_api.get("/request/7?token=t", headers={"X-User": "elsewhere"}).status_code == 403
        assert http_api.get("/request/7", headers={"X-User": "allow"}).status_code == 401

    def test_jwt_claims_issuer_and_audience(self, http_api: ServedHttpApi) -> None:
        good = {"iss": "https://issuer.example.com", "aud": "client-1", "sub": "u-2", "exp": time.time() + 60}
        context = authorizer_context(http_api.get("/cognito", headers={"Authorization": f"Bearer {jwt(good)}"}))
        assert context["jwt"]["claims"]["sub"] == "u-2"
        assert context["jwt"]["scopes"] is None
        for wrong in ({"iss": "https://other.example.com"}, {"aud": "client-2"}, {"exp": 1}):
            token = jwt({**good, **wrong})
            assert http_api.get("/cognito", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert http_api.get("/cognito").status_code == 401

    def test_iam_without_a_signature_is_403(self, http_api: ServedHttpApi) -> None:
        response = http_api.get("/iam")
        assert response.status_code == 403
        assert response.json() == {"message": "Forbidden"}


def rest_api(auth: dict[str, Any], definition: dict[str, Any] | None = None, kind: str = "REST") -> Api:
    return Api("Api", "dev", kind=kind, properties={"Auth": auth}, definition=definition)


AUTHORIZERS = {
    "Default": Authorizer("Default", "TOKEN", "REST", "Fn"),
    "Scheme": Authorizer("Scheme", "TOKEN", "REST", "Fn"),
    "Event": Authorizer("Event", "TOKEN", "REST", "Fn"),
}


class TestWhichAuthorizerGuardsARoute:
    def guard(self, route: Route, auth: dict[str, Any]) -> str | None:
        guard = guard_for(route, rest_api(auth), AUTHORIZERS)
        return guard.authorizer.name if guard is not None else None

    def test_the_event_then_the_operation_then_the_default(self) -> None:
        auth = {"DefaultAuthorizer": "Default"}
        plain = Route("GET", "/a", "Fn", "Api")
        assert self.guard(plain, auth) == "Default"
        secured = Route("GET", "/a", "Fn", "Api", security=[{"Scheme": []}])
        assert self.guard(secured, auth) == "Scheme"
        both = Route("GET", "/a", "Fn", "Api", auth={"Authorizer": "Event"}, security=[{"Scheme": []}])
        assert self.guard(both, auth) == "Event"
        assert self.guard(Route("GET", "/a", "Fn", "Api", auth={"Authorizer": "NONE"}), auth) is None
        assert self.guard(Route("GET", "/a", "Fn", "Api", security=[]), auth) is None

    def test_preflight_methods_take_the_default_unless_told_not_to(self) -> None:
        options = Route("OPTIONS", "/a", "", "Api")
        assert self.guard(options, {"DefaultAuthorizer": "Default"}) == "Default"
        off = {"DefaultAuthorizer": "Default", "AddDefaultAuthorizerToCorsPreflight": False}
        assert self.guard(options, off) is None

    def test_an_undeclared_authorizer_answers_500_and_is_listed(self) -> None:
        guard = guard_for(Route("GET", "/a", "Fn", "Api", auth={"Authorizer": "Missing"}), rest_api({}), {})
        assert guard is not None
        verdict = Authorization().decide(guard, request_data(), "arn", lambda *_: None)
        assert verdict.refusal is not None and verdict.refusal.status == 500
        assert startup_warnings([guard]) == ["authorizer Missing is not declared or not served: its routes answer 500"]

    def test_an_authorizer_naming_no_local_function_is_a_warning(self) -> None:
        auth = {"Authorizers": {"Far": {"FunctionArn": "arn:aws:lambda:us-east-1:1:function:Elsewhere"}}}
        found, warnings = read_authorizers(rest_api(auth), {})
        assert found["Far"].kind == "UNSERVED"
        assert "names no local function" in warnings[0]


def request_data(headers: list[tuple[str, str]] | None = None) -> RequestData:
    return RequestData(headers or [], "", {}, {}, "GET", "/a", {})


class TestJwtScopes:
    authorizer = Authorizer("Jwt", "JWT", "HTTP", identity_sources=(IdentitySource("header", "Authorization"),))

    def decide(self, scopes: tuple[str, ...], claims: dict[str, Any]) -> Any:
        guard = Guard(self.authorizer, scopes)
        data = request_data([("Authorization", f"Bearer {jwt(claims)}")])
        return Authorization().decide(guard, data, "arn", lambda *_: None, "2.0")

    def test_a_route_scope_the_token_lacks_is_403(self) -> None:
        verdict = self.decide(("orders/read",), {"scope": "profile email"})
        assert verdict.refusal is not None and verdict.refusal.status == 403

    def test_one_matching_scope_is_enough_and_the_scopes_reach_the_function(self) -> None:
        verdict = self.decide(("orders/read", "admin"), {"scope": "profile orders/read", "n": 3, "ok": True})
        assert verdict.allowed
        assert verdict.context["jwt"]["scopes"] == ["profile", "orders/read"]
        assert verdict.context["jwt"]["claims"]["n"] == "3"
        assert verdict.context["jwt"]["claims"]["ok"] == "true"

    def test_a_token_not_yet_valid_is_401(self) -> None:
        verdict = self.decide((), {"nbf": time.time() + 600})
        assert verdict.refusal is not None and verdict.refusal.status == 401


class TestCacheRules:
    """The authorizer cache on its own, with a clock the test moves."""

    authorizer = Authorizer("Token", "TOKEN", "REST", "Fn", (IdentitySource("header", "Authorization"),), ttl=300)

    def setup_method(self) -> None:
        self.now = 1000.0
        self.calls: list[dict[str, Any]] = []
        self.authorization = Authorization(clock=lambda: self.now)

    def invoke(self, function_id: str, payload: bytes) -> Outcome:
        event = json.loads(payload)
        self.calls.append(event)
        statement = {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": event["methodArn"]}
        answer = {"principalId": "p", "policyDocument": {"Statement": [statement]}, "context": {"n": len(self.calls)}}
        return Outcome(json.dumps(answer).encode())

    def decide(self, token: str, arn: str = "arn:a/dev/GET/x", authorizer: Authorizer | None = None) -> Verdict:
        guard = Guard(authorizer or self.authorizer)
        return self.authorization.decide(guard, request_data([("Authorization", token)]), arn, self.invoke)

    def test_a_result_is_reused_until_its_ttl_then_fetched_again(self) -> None:
        assert self.decide("t1").context == {"n": "1", "principalId": "p", "integrationLatency": 0}
        self.now += 299
        assert self.decide("t1").context is not None
        assert len(self.calls) == 1
        self.now += 2
        assert self.decide("t1").context == {"n": "2", "principalId": "p", "integrationLatency": 0}

    def test_each_identity_has_its_own_entry(self) -> None:
        self.decide("t1")
        self.decide("t2")
        assert [call["authorizationToken"] for call in self.calls] == ["t1", "t2"]

    def test_a_cached_allow_is_checked_against_each_method_arn(self) -> None:
        assert self.decide("t1", "arn:a/dev/GET/x").allowed
        verdict = self.decide("t1", "arn:a/dev/GET/y")
        assert verdict.refusal is not None and verdict.refusal.status == 403
        assert len(self.calls) == 1

    def test_ttl_zero_never_caches(self) -> None:
        uncached = Authorizer("Token", "TOKEN", "REST", "Fn", (IdentitySource("header", "Authorization"),), ttl=0)
        self.decide("t1", authorizer=uncached)
        self.decide("t1", authorizer=uncached)
        assert len(self.calls) == 2


def test_a_validation_expression_that_is_not_a_regular_expression_is_reported() -> None:
    auth = {
        "Authorizers": {
            "Bad": {"FunctionArn": "arn:aws:lambda:us-east-1:1:function:Fn", "Identity": {"ValidationExpression": "(["}}
        }
    }
    function = Function(
        logical_id="Fn",
        name="Fn",
        handler="app.handler",
        runtime="python3.13",
        code_dir=Path(),
        layers=(),
        timeout=3,
        memory_size=128,
        architecture="x86_64",
        environment={},
    )
    found, warnings = read_authorizers(rest_api(auth), {"Fn": function})
    assert found["Bad"].kind == "UNSERVED"
    assert "ValidationExpression '([' is not a regular expression" in warnings[0]


def test_auth_settings_that_live_in_aws_are_listed() -> None:
    auth = {"ResourcePolicy": {"IpRangeWhitelist": ["10.0.0.0/8"]}, "UsagePlan": {"CreateUsagePlan": "PER_API"}}
    _, warnings = read_authorizers(rest_api(auth), {})
    assert warnings == [
        "Api.Auth.ResourcePolicy is not applied locally: every caller is let through",
        "Api.Auth.UsagePlan is not applied locally: no quota or throttling",
    ]
