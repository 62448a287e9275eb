"""A test Lambda authorizer: the token (or the X-User header / token query parameter) says what to answer.

allow: an Allow on the request's method ARN; deny: an explicit Deny; elsewhere: an Allow on another
resource only; wildcard: an Allow on every method and path of the stage; unauthorized: raises
"Unauthorized"; error: fails; malformed: no policy. Each answer carries a fresh nonce, so a cached answer
shows as a repeated nonce, and the authorizer's own event, so tests can read what it was given.
"""

from __future__ import annotations

import json
import uuid
from typing import Any


def _policy(effect: str, resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
    }


def _token(event: dict[str, Any]) -> str:
    if event["type"] == "TOKEN":
        return str(event["authorizationToken"]).removeprefix("Bearer ")
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    query = event.get("queryStringParameters") or {}
    found = headers.get("x-user") or query.get("token") or headers.get("x-token") or headers.get("authorization")
    found = found or ""
    return str(found).removeprefix("Bearer ")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    token = _token(event)
    arn = event.get("methodArn") or event.get("routeArn") or ""
    if token == "unauthorized":
        raise Exception("Unauthorized")
    if token == "error":
        raise RuntimeError("the authorizer failed on purpose")
    answer_context = {"user": "alice", "count": 7, "admin": True, "nonce": uuid.uuid4().hex, "event": json.dumps(event)}
    if event.get("version") == "2.0" and "routeArn" in event and token.startswith("simple-"):
        return {"isAuthorized": token == "simple-allow", "context": answer_context}
    if token == "malformed":
        return {"principalId": "alice", "context": answer_context}
    stage_wide = "/".join(arn.split("/")[:2]) + "/*"
    resource = {"allow": arn, "deny": arn, "elsewhere": stage_wide.removesuffix("*") + "GET/elsewhere"}.get(
        token, stage_wide
    )
    effect = "Deny" if token == "deny" else "Allow"
    if token not in ("allow", "deny", "elsewhere", "wildcard"):
        raise Exception("Unauthorized")
    return {"principalId": "alice", "policyDocument": _policy(effect, resource), "context": answer_context}
