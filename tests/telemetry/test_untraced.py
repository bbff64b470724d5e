"""Telemetry not configured: nothing is traced, and the outcome still names the HR trace."""

from __future__ import annotations

from tests.function.conftest import NO_GDAP_CUSTOMER, FunctionHarness, hire_event

from .conftest import ONE_VARIANT

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
pytestmark = ONE_VARIANT


def test_the_outcome_carries_the_events_traceparent(harness: FunctionHarness) -> None:
    outcome = harness.invoke({**hire_event(1), "schemaVersion": "1.1", "traceparent": TRACEPARENT})
    assert outcome["status"] == "created"
    assert outcome["traceparent"] == TRACEPARENT


def test_a_rejected_event_keeps_it_on_the_outcome_and_the_poison_copy(
    harness: FunctionHarness,
) -> None:
    event = {
        **hire_event(2, customer=NO_GDAP_CUSTOMER, domain="northwind.onmicrosoft.com"),
        "traceparent": TRACEPARENT,
    }
    outcome = harness.invoke(event)
    assert outcome["status"] == "rejected"
    assert outcome["traceparent"] == TRACEPARENT
    (poisoned,) = harness.poison_messages()
    assert isinstance(poisoned, dict) and poisoned["traceparent"] == TRACEPARENT


def test_a_malformed_traceparent_is_not_repeated(harness: FunctionHarness) -> None:
    outcome = harness.invoke({**hire_event(3), "traceparent": "00-abc-def-01"})
    assert outcome["eventId"] == "hr-2026-000003"  # valid or not is for the validation
    assert "traceparent" not in outcome
