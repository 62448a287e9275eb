"""Query parameters declared on a handler's signature: read from v1 and v2 events alike, converted to the declared
type, and refused with 422 `invalid_parameter` naming each parameter at fault."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.parameters import Path, Query, declarations, query_arguments, query_values


def handler(
    name: Annotated[str, Path(description="A path parameter: Powertools passes it on.")],
    model: Annotated[str | None, Query(description="A name.")] = None,
    top_k: Annotated[int | None, Query(ge=1, le=1000)] = None,
    threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
) -> None:
    pass


def v1(**query: list[str]) -> dict[str, Any]:
    single = {name: values[-1] for name, values in query.items()}
    return {"queryStringParameters": single or None, "multiValueQueryStringParameters": query or None}


def v2(raw: str) -> dict[str, Any]:
    return {"version": "2.0", "rawQueryString": raw, "queryStringParameters": None}


def refusal(event: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as raised:
        query_arguments(handler, event)
    assert (raised.value.status, raised.value.code) == (HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.INVALID_PARAMETER)
    return raised.value


def test_only_the_declared_query_parameters_are_read_in_their_types() -> None:
    event = v1(model=["nsfw"], top_k=["3"], threshold=["0.25"], other=["ignored"])

    assert query_arguments(handler, event) == {"model": "nsfw", "top_k": 3, "threshold": 0.25}
    assert [item.name for item in declarations(handler)] == ["name", "model", "top_k", "threshold"]


def test_absent_parameters_are_left_to_their_defaults() -> None:
    assert query_arguments(handler, {"queryStringParameters": None}) == {}
    assert query_arguments(handler, v2("")) == {}


def test_a_v2_event_is_read_from_its_raw_query_string_so_commas_stay_in_a_value() -> None:
    assert query_arguments(handler, v2("model=a%2Cb&top_k=%2B7")) == {"model": "a,b", "top_k": 7}
    assert query_values(v2("top_k=1&top_k=2&model=")) == {"top_k": ["1", "2"]}  # an empty value is no value
    assert query_values(v1(model=[""], top_k=["", "3"])) == {"top_k": ["", "3"]}
    assert query_values({"multiValueQueryStringParameters": {"model": None, "top_k": ["3"]}}) == {"top_k": ["3"]}
    assert query_values({"queryStringParameters": {"model": "", "top_k": "3"}}) == {"top_k": ["3"]}


@pytest.mark.parametrize(
    ("event", "problems"),
    [
        (v1(top_k=["2.5"]), [("query.top_k", "should be a whole number, got '2.5'")]),
        (v1(top_k=["0"]), [("query.top_k", "should be greater than or equal to 1")]),
        (v1(top_k=["1001"]), [("query.top_k", "should be less than or equal to 1000")]),
        (v1(threshold=["high"]), [("query.threshold", "should be a number, got 'high'")]),
        (v1(threshold=["nan"]), [("query.threshold", "should be a number, got 'nan'")]),
        (v1(threshold=["1e1"]), [("query.threshold", "should be less than or equal to 1")]),
        (v1(top_k=["1", "2"]), [("query.top_k", "repeated (2 values); give it once")]),
        (v2("model=a&model=b"), [("query.model", "repeated (2 values); give it once")]),
        (
            v2("top_k=x&threshold=-1"),
            [
                ("query.top_k", "should be a whole number, got 'x'"),
                ("query.threshold", "should be greater than or equal to 0"),
            ],
        ),
    ],
)
def test_every_parameter_at_fault_is_named(event: dict[str, Any], problems: list[tuple[str, str]]) -> None:
    error = refusal(event)

    assert error.details == [{"loc": location, "message": message} for location, message in problems]
    assert error.message == "Invalid parameters: " + "; ".join(f"{loc}: {message}" for loc, message in problems)


def test_a_long_refused_value_is_shortened_in_the_error() -> None:
    error = refusal(v1(top_k=["9" * 30 + "x" * 100]))

    assert error.details == [
        {"loc": "query.top_k", "message": f"should be a whole number, got '{'9' * 30 + 'x' * 10}...'"}
    ]


def test_a_parameter_without_a_default_is_required() -> None:
    def strict(model: Annotated[str, Query()]) -> None:
        pass

    with pytest.raises(ApiError) as raised:
        query_arguments(strict, v1())
    assert raised.value.details == [{"loc": "query.model", "message": "required"}]


def test_a_type_other_than_int_float_or_str_is_refused_where_it_is_declared() -> None:
    def odd(flags: Annotated[list[str] | None, Query()] = None) -> None:
        pass

    with pytest.raises(TypeError, match="'flags'"):
        declarations(odd)


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_any_whole_number_in_bounds_is_read_and_any_outside_is_refused(number: int) -> None:
    event = v2(f"top_k={number}")
    if 1 <= number <= 1000:
        assert query_arguments(handler, event) == {"top_k": number}
    else:
        refusal(event)


@given(st.text(max_size=30))
def test_any_text_is_either_read_as_a_number_in_bounds_or_refused(text: str) -> None:
    try:
        arguments = query_arguments(handler, v1(threshold=[text]))
    except ApiError as error:
        assert error.code is ErrorCode.INVALID_PARAMETER
    else:
        assert arguments == {} if text == "" else 0.0 <= arguments["threshold"] <= 1.0
