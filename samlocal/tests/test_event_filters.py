"""Lambda's event filtering patterns (FilterCriteria) against records, and the patterns refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samlocal.event_filters import FilterPatternError, matches, matches_any, validate
from samlocal.event_sources import EventSourceError, sqs_event_source
from samlocal.sqs_mapping import filtered_record, payload_chunks

RECORD = filtered_record(
    {
        "messageId": "m-1",
        "body": json.dumps({"kind": "scan", "pages": 4, "tags": ["a", "b"], "owner": {"team": "Ops"}, "note": None}),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {"source": {"stringValue": "upload", "dataType": "String"}},
        "eventSource": "aws:sqs",
    }
)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"body": {"kind": ["scan"]}}, True),
        ({"body": {"kind": ["photo", "scan"]}}, True),
        ({"body": {"kind": ["Scan"]}}, False),
        ({"body": {"kind": [{"equals-ignore-case": "SCAN"}]}}, True),
        ({"body": {"kind": [{"prefix": "sc"}]}}, True),
        ({"body": {"kind": [{"suffix": "an"}]}}, True),
        ({"body": {"kind": [{"anything-but": ["scan", "fax"]}]}}, False),
        ({"body": {"kind": [{"anything-but": {"prefix": "ph"}}]}}, True),
        ({"body": {"pages": [4]}}, True),
        ({"body": {"pages": ["4"]}}, False),
        ({"body": {"pages": [{"numeric": [">", 0, "<=", 4]}]}}, True),
        ({"body": {"pages": [{"numeric": [">", 4]}]}}, False),
        ({"body": {"tags": ["b"]}}, True),
        ({"body": {"owner": {"team": ["Ops"]}}}, True),
        ({"body": {"owner": {"team": ["Dev"]}}}, False),
        ({"body": {"missing": [{"exists": False}]}}, True),
        ({"body": {"missing": [{"exists": True}]}}, False),
        ({"body": {"kind": [{"exists": True}]}}, True),
        ({"body": {"note": [None]}}, True),
        ({"body": {"kind": ["scan"], "pages": [5]}}, False),
        ({"messageAttributes": {"source": {"stringValue": ["upload"]}}}, True),
        ({"attributes": {"ApproximateReceiveCount": ["1"]}}, True),
        ({"eventSource": ["aws:sqs"]}, True),
    ],
)
def test_patterns_match_as_lambda_filters(pattern: dict[str, Any], expected: bool) -> None:
    validate(pattern)
    assert matches(pattern, RECORD) is expected


def test_any_pattern_of_several_lets_a_record_through() -> None:
    assert matches_any([{"body": {"kind": ["fax"]}}, {"body": {"pages": [4]}}], RECORD)
    assert not matches_any([{"body": {"kind": ["fax"]}}, {"body": {"pages": [5]}}], RECORD)


def test_a_body_that_is_not_json_matches_as_a_string() -> None:
    record = filtered_record({"body": "hello world"})
    assert matches({"body": [{"prefix": "hello"}]}, record)
    assert not matches({"body": {"kind": ["scan"]}}, record)


@given(st.integers(-1000, 1000), st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_numeric_ranges_match_exactly_the_numbers_inside(value: int, low: int, high: int) -> None:
    pattern = {"n": [{"numeric": [">=", low, "<", high]}]}
    assert matches(pattern, {"n": value}) is (low <= value < high)


json_scalars = st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.none())


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_scalars, min_size=1))
def test_a_document_matches_the_pattern_of_its_own_values(document: dict[str, Any]) -> None:
    pattern = {key: [value] for key, value in document.items()}
    validate(pattern)
    assert matches(pattern, document)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({}, "must be a non-empty JSON object"),
        ({"body": []}, "body must be an object or a non-empty list"),
        ({"body": {"kind": [{"regex": "x"}]}}, "unknown operator 'regex'"),
        ({"body": {"n": [{"numeric": [">", "1"]}]}}, "numeric takes one of"),
        ({"body": {"n": [{"numeric": [">", 1, "<"]}]}}, "numeric takes [op, number]"),
        ({"body": {"kind": [{"exists": "yes"}]}}, "exists takes true or false"),
        ({"body": {"kind": [{"prefix": 1}]}}, "prefix takes a string"),
    ],
)
def test_invalid_patterns_are_refused_with_where(pattern: dict[str, Any], message: str) -> None:
    with pytest.raises(FilterPatternError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(pattern)


def test_a_template_with_an_invalid_filter_pattern_is_an_error() -> None:
    properties = {
        "Queue": "arn:aws:sqs:us-east-1:123456789012:q",
        "FilterCriteria": {"Filters": [{"Pattern": '{"body": {"kind": [{"regex": "x"}]}}'}]},
    }
    with pytest.raises(EventSourceError, match=r"F\.Work: FilterCriteria pattern .* unknown operator 'regex'"):
        sqs_event_source("F", "Work", properties)


records = st.lists(st.fixed_dictionaries({"body": st.text(max_size=300)}), max_size=40)


@given(records, st.integers(200, 3000))
def test_payload_chunks_keep_the_order_and_fit_the_limit(items: list[dict[str, Any]], limit: int) -> None:
    chunks = payload_chunks(items, limit)
    assert [index for chunk in chunks for index in chunk] == list(range(len(items)))
    for chunk in chunks:
        event = json.dumps({"Records": [items[index] for index in chunk]})
        assert len(event) <= limit or len(chunk) == 1
