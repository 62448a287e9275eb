"""Responses: content negotiation from the Accept header, and the JSON error shape."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.responses import acceptable, delivered_as_binary, error_response, json_response, negotiate

JSON, PNG, JPEG = "application/json", "image/png", "image/jpeg"
OFFERED = [JSON, PNG]  # a route that answers JSON by default, or a rendered image


@pytest.mark.parametrize("accept", [None, "", "   "])
def test_without_accept_the_routes_first_type_is_used(accept: str | None) -> None:
    assert negotiate(accept, OFFERED) == JSON
    assert negotiate(accept, [PNG, JSON]) == PNG


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("*/*", JSON),
        ("application/json", JSON),
        ("image/png", PNG),
        ("image/*", PNG),
        ("IMAGE/PNG", PNG),
        ("text/html, image/png", PNG),
        (" image/png ; q=0.9 , application/json;q=0.8", PNG),
        ("application/*", JSON),
    ],
)
def test_the_accepted_type_is_chosen(accept: str, chosen: str) -> None:
    assert negotiate(accept, OFFERED) == chosen


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("application/json;q=0.4, image/png;q=0.5", PNG),
        ("application/json;q=0.5, image/png;q=0.4", JSON),
        ("image/*;q=0.5, application/json;q=0.4", PNG),
        ("application/json; charset=utf-8; q=0.2, image/png; Q=0.1", JSON),
        ("image/png;q=high, application/json;q=0.1", JSON),  # an unreadable q counts as 0
    ],
)
def test_the_highest_quality_wins(accept: str, chosen: str) -> None:
    assert negotiate(accept, OFFERED) == chosen


def test_equal_quality_goes_to_the_routes_preferred_type() -> None:
    accept = "application/json;q=0.5, image/png;q=0.5"
    assert negotiate(accept, [JSON, PNG]) == JSON
    assert negotiate(accept, [PNG, JSON]) == PNG


def test_a_browser_accept_header_gets_the_default_type() -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
    assert negotiate(browser, OFFERED) == JSON


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        # image/png takes image/*'s 0.8, not */*'s 0.9
        ("image/*;q=0.8, */*;q=0.9", JSON),
        # the exact range's 0.1 beats image/*'s 1
        ("image/png;q=0.1, image/*, application/json;q=0.5", JSON),
        # order in the header does not matter
        ("application/json;q=0.5, image/*, image/png;q=0.1", JSON),
        ("*/*;q=0.1, image/png", PNG),
    ],
)
def test_the_most_specific_range_sets_a_types_quality(accept: str, chosen: str) -> None:
    assert negotiate(accept, OFFERED) == chosen


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("application/json;q=0, */*", PNG),
        ("image/png;q=0, */*", JSON),
        ("image/*;q=0, */*", JSON),
        ("*/*, application/json;q=0.0", PNG),
    ],
)
def test_q_0_excludes_a_type(accept: str, chosen: str) -> None:
    assert negotiate(accept, OFFERED) == chosen


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "text/*, application/xml",
        "*/*;q=0",
        "image/png;q=0, image/*",  # image/* would allow PNG but PNG itself is excluded; JSON is not asked for
        "application/json;q=0, image/png;q=0",
    ],
)
def test_nothing_acceptable_is_406_naming_what_the_route_answers(accept: str) -> None:
    with pytest.raises(ApiError) as raised:
        negotiate(accept, OFFERED)
    error = raised.value
    assert (error.status, error.code) == (HTTPStatus.NOT_ACCEPTABLE, ErrorCode.NOT_ACCEPTABLE)
    assert error.message == (
        f"This route answers with application/json, image/png; the request's Accept header ({accept}) allows none."
    )


def test_a_json_only_route_refuses_a_client_that_only_takes_images() -> None:
    with pytest.raises(ApiError) as raised:
        negotiate("image/*", [JSON])
    assert raised.value.status == HTTPStatus.NOT_ACCEPTABLE


# --- response bodies ------------------------------------------------------------------------------------------------


def test_json_responses_are_compact() -> None:
    response = json_response(HTTPStatus.OK, {"results": [{"label": "0", "score": 0.5}]})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON
    assert response.body == '{"results":[{"label":"0","score":0.5}]}'


def test_an_error_response_has_a_code_a_message_details_and_the_request_id() -> None:
    error = ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.TOO_MANY_IMAGES, "Too many.", {"limit": 2})
    response = error_response(error, "req-123")
    assert response.status_code == 422
    assert response.headers["Content-Type"] == JSON
    assert isinstance(response.body, str)
    assert json.loads(response.body) == {
        "error": {"code": "too_many_images", "message": "Too many.", "details": {"limit": 2}, "request_id": "req-123"}
    }


def test_an_error_without_details_or_request_id_leaves_them_out() -> None:
    response = error_response(ApiError(HTTPStatus.NOT_FOUND, ErrorCode.MODEL_NOT_FOUND, "No model."), None)
    assert response.body == '{"error":{"code":"model_not_found","message":"No model."}}'


# --- What API Gateway delivers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "binary"),
    [
        ("image/jpeg", True),
        ("image/png;q=0.5, application/json", True),
        ("IMAGE/WEBP", True),
        ("image/*", True),
        ("application/octet-stream", True),
        ("multipart/form-data", True),
        ("*/*", False),
        ("*/*, image/jpeg", False),
        ("text/html;q=0.1, image/jpeg", False),
        ("application/json, image/png", False),
        ("", False),
        (None, False),
        (",, image/png", True),  # empty entries are no media type
    ],
)
def test_an_answer_is_delivered_as_bytes_only_for_a_binary_first_accept_type(accept: str | None, binary: bool) -> None:
    assert delivered_as_binary(accept) is binary


@pytest.mark.parametrize(
    ("accept", "ranked"),
    [
        (None, [JSON, PNG, JPEG]),
        ("image/*", [PNG, JPEG]),
        ("image/jpeg, image/png;q=0.5", [JPEG, PNG]),
        ("image/png, image/jpeg;q=0", [PNG]),
        ("*/*;q=0.1, image/jpeg", [JPEG, JSON, PNG]),
        ("text/html", []),
    ],
)
def test_acceptable_types_come_most_preferred_first(accept: str | None, ranked: list[str]) -> None:
    assert acceptable(accept, [JSON, PNG, JPEG]) == ranked


@given(accept=st.text(max_size=60))
def test_any_accept_header_gives_an_offered_type_or_a_406(accept: str) -> None:
    allowed = acceptable(accept, [JSON, PNG, JPEG])
    assert set(allowed) <= {JSON, PNG, JPEG}
    try:
        chosen = negotiate(accept, [JSON, PNG, JPEG])
    except ApiError as error:
        assert (error.status, allowed) == (HTTPStatus.NOT_ACCEPTABLE, [])
    else:
        assert chosen == allowed[0]
    delivered_as_binary(accept)
