"""decode_body, parse_event, poisoned_event and poisoned_body are total (no I/O here)."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.poison import MAX_POISON_BYTES, poisoned_body, poisoned_event
from shared.domain import jsontext
from shared.domain.events import InvalidEvent, NotAnEvent, decode_body, parse_event
from shared.domain.outcomes import Category, Failure

FAILURE = Failure(category=Category.INVALID_EVENT, message="the hire event is invalid")
QUICK = settings(max_examples=100, derandomize=True, deadline=None, database=None)
# Generating nested documents costs more than checking them.
DOCUMENTS = settings(max_examples=40, derandomize=True, deadline=None, database=None)

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: a caller may hand over anything
    | st.text()
    | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8) | st.integers(), children, max_size=4),
    max_leaves=15,
)


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = {"a": [value]}
    return value


def check_copy(copy: bytes, limit: int = MAX_POISON_BYTES) -> dict[str, Any]:
    assert len(copy) <= limit
    document: dict[str, Any] = jsontext.parse(copy.decode("utf-8"), lone_surrogates=True)
    assert document["lastFailure"]["category"] == "invalid_event"
    return document


@QUICK
@given(text=st.text())
def test_parse_raises_only_json_rejected(text: str) -> None:
    with contextlib.suppress(jsontext.JsonRejected):
        jsontext.parse(text)


@QUICK
@given(body=st.binary())
def test_decode_body_raises_only_not_an_event(body: bytes) -> None:
    with contextlib.suppress(NotAnEvent):
        assert isinstance(decode_body(body), dict)


@DOCUMENTS
@given(document=st.dictionaries(st.text(max_size=20), anything, max_size=8))
def test_parse_event_raises_only_invalid_event(document: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(document)


@DOCUMENTS
@given(document=st.dictionaries(st.text(max_size=20), anything, max_size=8))
def test_poisoned_event_always_returns_a_fitting_copy(document: dict[str, Any]) -> None:
    check_copy(poisoned_event(document, FAILURE, attempts=5))


@pytest.mark.parametrize(
    "document",
    [
        {"deep": nested(5000)},
        {"nan": math.nan, "inf": -math.inf, "bytes": b"\x00", "set": {1, 2}},
        {"surrogate": "a\ud800b", "\udc00key": 1},
        {"big": "x" * 200_000, "user": {"displayName": "y" * 100_000}},
        {str(number): "v" * 50 for number in range(5000)},
        {"list": list(range(60_000))},
        {"lastFailure": {"password": "kept?"}, "replay": {"count": 1}},
        {1: "int key", None: "none key"},
    ],
    ids=["deep", "not-json", "surrogates", "huge", "many-members", "long-list", "password",
         "odd-keys"],
)
def test_poisoned_event_with_the_worst_documents(document: dict[str, Any]) -> None:
    copy = check_copy(poisoned_event(document, FAILURE, attempts=5))
    assert "kept?" not in json.dumps(copy)


def test_a_small_limit_still_gets_the_failure() -> None:
    copy = check_copy(
        poisoned_event({"x": "y" * 10_000}, FAILURE, attempts=1, limit=3000), limit=3000
    )
    assert copy["lastFailure"]["truncated"] is True


def test_a_lone_surrogate_survives_the_copy_exactly() -> None:
    copy = check_copy(poisoned_event({"eventId": "a\ud800b"}, FAILURE, attempts=1))
    assert copy["eventId"] == "a\ud800b"
    assert "lastFailure" in copy and "truncated" not in copy["lastFailure"]


@QUICK
@given(body=st.binary(max_size=2048))
def test_poisoned_body_keeps_small_bodies_unchanged(body: bytes) -> None:
    copy = poisoned_body(body, FAILURE, attempts=5)
    assert len(copy) <= MAX_POISON_BYTES
    if b"pass" not in body.lower() and b"pwd" not in body.lower():
        assert copy == body


def test_poisoned_body_of_an_oversize_body_says_what_it_kept() -> None:
    body = b"\xff" * 100_000
    copy = check_copy(poisoned_body(body, FAILURE, attempts=5))
    kept = copy["unreadableBody"]
    assert kept["bytes"] == 100_000
    assert 0 < kept["keptBytes"] < 100_000
    assert copy["lastFailure"]["truncated"] is True
    assert "100000 bytes" in copy["lastFailure"]["message"]


def test_poisoned_body_drops_a_password_from_a_readable_object() -> None:
    body = b'{"a": 1, "a": 2, "user": {"password": "Secret-1"}}'
    copy = check_copy(poisoned_body(body, FAILURE, attempts=5))
    assert b"Secret-1" not in json.dumps(copy).encode()
