"""Fuzzing the function as the host delivers a message, on its last delivery.

Whatever the body, the function returns an outcome (it never raises on the last delivery),
every poison copy fits a queue message and never expires, and no password or credential
appears in an outcome, a poison copy or a log line.

The suite runs a bounded, derandomized number of examples. A longer run by hand (see the
docs/development.md, Tests): ``HOSTILE_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest
tests/hostile/test_fuzz.py -p no:randomly -q``; add ``HOSTILE_FUZZ_RANDOM=1`` to explore new
examples instead of the fixed sequence.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.passwords import secret_name_for
from tests.function.conftest import FunctionHarness, hire_event

LAST_DELIVERY = 5
QUEUE_MESSAGE_TEXT = 64 * 1024
HR_PASSWORD = "Fuzz-HR-Pa55word!"
EXAMPLES = int(os.environ.get("HOSTILE_FUZZ_EXAMPLES", "40"))

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not os.environ.get("HOSTILE_FUZZ_RANDOM"),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
event_paths = st.sampled_from(
    [
        ("schemaVersion",),
        ("eventId",),
        ("customerTenantId",),
        ("correlationId",),
        ("user",),
        ("user", "userPrincipalName"),
        ("user", "firstName"),
        ("user", "displayName"),
        ("user", "usageLocation"),
        ("user", "immutableId"),
        ("lastFailure",),
        ("replay",),
        ("extra",),
        ("user", "password"),
    ]
)


def _secrets(harness: FunctionHarness) -> dict[str, str]:
    vault = harness.stack.key_vault
    found = {
        "app secret": vault.get_secret_value("partner-center-app-secret"),
        "refresh token": vault.get_secret_value("partner-center-refresh-token"),
        "HR password": HR_PASSWORD,
    }
    for number in range(1, 6):  # the events test_an_event_with_one_member_replaced may create
        event_id = hire_event(number)["eventId"]
        with contextlib.suppress(KeyError):
            found[f"password of {event_id}"] = vault.get_secret_value(secret_name_for(event_id))
    return found


def deliver_last_time(
    harness: FunctionHarness, caplog: pytest.LogCaptureFixture, body: bytes
) -> dict[str, Any]:
    harness.poison_client.clear_messages()
    caplog.clear()
    outcome = harness.invoke(body, dequeue_count=LAST_DELIVERY)  # raising fails the example

    outcome_text = json.dumps(outcome, ensure_ascii=False)
    outcome_text.encode("utf-8")  # the host can write it
    assert outcome["status"] in {"created", "already_exists", "rejected", "failed"}
    poison_text = ""
    for message in harness.poison_client.peek_messages(max_messages=32):
        content: bytes = message.content or b""
        assert 4 * ((len(content) + 2) // 3) <= QUEUE_MESSAGE_TEXT
        assert message.expires_on is not None and message.expires_on.year >= 9999
        poison_text += content.decode("utf-8", errors="replace")
    if outcome["status"] in {"rejected", "failed"}:
        assert harness.poison_client.peek_messages(max_messages=1), "no poison copy"
    log_text = "\n".join(record.getMessage() for record in caplog.records)
    body_text = body.decode("utf-8", errors="replace")
    for name, value in _secrets(harness).items():
        assert value not in outcome_text, f"the {name} appears in the outcome"
        assert value not in log_text, f"the {name} appears in the logs"
        # A body the contract keeps unchanged (not a JSON object) keeps what it held.
        if value not in body_text:
            assert value not in poison_text, f"the {name} appears in the poison copy"
    return outcome


@FUZZ
@given(body=st.binary(max_size=4096))
def test_arbitrary_bytes(
    harness: FunctionHarness, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    caplog.set_level(logging.INFO)
    deliver_last_time(harness, caplog, body)


@FUZZ
@given(value=json_values)
def test_arbitrary_json(
    harness: FunctionHarness, caplog: pytest.LogCaptureFixture, value: Any
) -> None:
    caplog.set_level(logging.INFO)
    body = json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
    deliver_last_time(harness, caplog, body)


@FUZZ
@given(path=event_paths, value=json_values, number=st.integers(min_value=1, max_value=5))
def test_an_event_with_one_member_replaced(
    harness: FunctionHarness,
    caplog: pytest.LogCaptureFixture,
    path: tuple[str, ...],
    value: Any,
    number: int,
) -> None:
    caplog.set_level(logging.INFO)
    document = hire_event(number)
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = HR_PASSWORD if path[-1] == "password" else value
    body = json.dumps(document, ensure_ascii=False).encode("utf-8", errors="surrogatepass")

    outcome = deliver_last_time(harness, caplog, body)

    if path[-1] == "password":
        assert outcome["status"] == "rejected"
