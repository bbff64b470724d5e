"""Every body of the hostile corpus, on its last delivery, ends in its expected outcome."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.function.conftest import FunctionHarness
from tests.hostile.corpus import COPY, HR_PASSWORD, NONE, TRUNCATED, UNCHANGED, Case, build

LAST_DELIVERY = 5
QUEUE_MESSAGE_TEXT = 64 * 1024
NEVER_EXPIRES_YEAR = 9999
CASES = build()


def test_the_corpus_has_at_least_a_hundred_bodies() -> None:
    assert len(CASES) >= 100
    assert len({case.name for case in CASES}) == len(CASES)


def base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


def check_poison(harness: FunctionHarness, case: Case) -> None:
    messages = list(harness.poison_client.peek_messages(max_messages=32))
    if case.poison == NONE:
        assert messages == []
        return
    (message,) = messages
    # The SDK's decode policy hands back an empty body as "" rather than b"".
    content: bytes = message.content or b""
    assert base64_length(len(content)) <= QUEUE_MESSAGE_TEXT
    assert message.expires_on.year >= NEVER_EXPIRES_YEAR, "a poison copy must never expire"
    if case.poison == UNCHANGED:
        assert content == case.body
        return
    assert HR_PASSWORD.encode() not in content
    copy: dict[str, Any] = json.loads(content)
    failure = copy["lastFailure"]
    assert failure["category"] == "invalid_event"
    assert failure["attempts"] == LAST_DELIVERY
    if case.poison == COPY:
        assert "truncated" not in failure
    else:
        assert case.poison == TRUNCATED
        assert failure["truncated"] is True
        assert "could not keep the whole event" in failure["message"]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_hostile_body_ends_in_its_expected_outcome(harness: FunctionHarness, case: Case) -> None:
    outcome = harness.invoke(case.body, dequeue_count=LAST_DELIVERY)

    text = json.dumps(outcome, ensure_ascii=False)
    text.encode("utf-8")  # an outcome the host can write: no lone surrogate in it
    assert HR_PASSWORD not in text
    assert outcome["status"] == case.status, outcome["error"]
    assert outcome["eventId"] == case.event_id
    if case.created:
        assert outcome["error"] is None
    else:
        error = outcome["error"]
        assert error["category"] == "invalid_event"
        for words in case.mentions:
            assert words in error["message"], (words, error["message"])
        assert harness.stack.partner_center.counters["calls"] == {}, "no call for a bad event"
    check_poison(harness, case)
