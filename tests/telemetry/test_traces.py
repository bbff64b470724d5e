"""Span trees, metrics and log records of created, rejected and retried hires, through the
function as the host delivers it; the HR system's trace continues through the outcome."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from devtools.standins import Fault
from devtools.traces import span_tree
from shared import composition
from shared.domain.errors import RedeliveryRequested
from shared.domain.model import HireRecord
from shared.settings import Settings
from tests.function.conftest import NO_GDAP_CUSTOMER, FunctionHarness, hire_event

from .conftest import ONE_VARIANT, Exported

CREATE = "POST /v1/customers/*/users"
pytestmark = ONE_VARIANT


def traced_event(number: int, **changes: Any) -> tuple[dict[str, Any], int, int]:
    trace_id, parent_id = secrets.randbits(128) | 1, secrets.randbits(64) | 1
    event = {
        **hire_event(number, **changes),
        "schemaVersion": "1.1",
        "traceparent": f"00-{trace_id:032x}-{parent_id:016x}-01",
    }
    return event, trace_id, parent_id


def tree_of(exported: Exported, trace_id: int) -> list[tuple[int, ReadableSpan]]:
    return span_tree(exported.finished_spans(), trace_id)


def names(tree: list[tuple[int, ReadableSpan]]) -> list[str]:
    return [f"{'  ' * depth}{span.name}" for depth, span in tree]


def invocations(tree: list[tuple[int, ReadableSpan]]) -> list[ReadableSpan]:
    return [span for depth, span in tree if depth == 0]


def test_created_hire_continues_the_hr_trace(harness: FunctionHarness, exported: Exported) -> None:
    event, trace_id, parent_id = traced_event(1)
    outcome = harness.invoke(event)

    assert outcome["status"] == "created"
    tree = tree_of(exported, trace_id)
    assert len(tree) == len(exported.finished_spans()), "every span belongs to the HR trace"
    (root,) = invocations(tree)
    assert root.name == "provision_user"
    assert root.parent is not None and root.parent.span_id == parent_id
    assert root.parent.is_remote
    assert root.context is not None
    assert outcome["traceparent"] == f"00-{trace_id:032x}-{root.context.span_id:016x}-01"
    assert dict(root.attributes or {}) == {
        "hire.delivery": 1,
        "hire.event_id": event["eventId"],
        "hire.customer_tenant_id": event["customerTenantId"],
        "hire.status": "created",
        "hire.ledger_state": "created",
    }
    assert root.status.status_code is StatusCode.UNSET
    shape = names(tree)
    # The decision's calls are the invocation's children, in order; the credentials are read
    # from Key Vault and exchanged at Entra under the first Partner Center call.
    children = [line.strip() for line in shape if line.startswith("  ") and line[2] != " "]
    assert children == [
        # A hire's likely first delivery writes the password, then inserts its record already
        # claimed and in creating (one table call, no read). With an immutableId nothing is
        # looked up first: the create's own duplicate answer reveals a holder (active, or a
        # deleted one to restore), so the create comes at once.
        "key_vault store",
        "ledger add",
        "partner_center create_user",
        "ledger update",
    ]
    first_call = shape.index("  partner_center create_user")
    assert shape[first_call + 1 : first_call + 5] == [
        "    key_vault get",
        "    key_vault get",
        "    key_vault get",
        "    entra refresh_token_grant",
    ]
    create = next(span for _, span in tree if span.name == "partner_center create_user")
    assert (create.attributes or {})["hire.call"] == "partner_center.create_user"

    points = exported.metric_points()
    assert points["hire.outcomes"] == [({"status": "created", "category": "none"}, 1.0)]
    latency = {str(attributes["hire.call"]) for attributes, _ in points["partner_center.duration"]}
    assert latency == {"partner_center.create_user"}
    assert "partner_center.throttled" not in points

    decisions = [r for r in exported.log_records() if "decision" in str(r.log_record.body)]
    assert len(decisions) == 1
    assert decisions[0].log_record.trace_id == trace_id  # the log line joins the trace


def test_rejected_hire_is_an_error_span_and_its_poison_copy_keeps_the_traceparent(
    harness: FunctionHarness, exported: Exported
) -> None:
    event, trace_id, _ = traced_event(
        3, customer=NO_GDAP_CUSTOMER, domain="northwind.onmicrosoft.com"
    )
    outcome = harness.invoke(event)

    assert outcome["status"] == "rejected" and outcome["error"]["category"] == "permission"
    tree = tree_of(exported, trace_id)
    (root,) = invocations(tree)
    assert root.context is not None
    assert outcome["traceparent"] == f"00-{trace_id:032x}-{root.context.span_id:016x}-01"
    attributes = dict(root.attributes or {})
    assert attributes["hire.status"] == "rejected"
    assert attributes["hire.category"] == "permission"
    assert root.status.status_code is StatusCode.ERROR
    refused = [span for _, span in tree if span.name.startswith("partner_center")][-1]
    assert (refused.attributes or {})["http.response.status_code"] == 403
    assert (refused.attributes or {})["hire.error_code"] == "900150"
    assert (refused.attributes or {})["error.type"] == "Refused"
    assert "  poison_queue poison_event" in names(tree)
    (poisoned,) = harness.poison_messages()
    assert isinstance(poisoned, dict)
    assert poisoned["traceparent"] == event["traceparent"]  # the event's member, unchanged
    assert exported.metric_points()["hire.outcomes"] == [
        ({"status": "rejected", "category": "permission"}, 1.0)
    ]


def test_retried_hire_shows_each_try_and_counts_the_429(
    harness: FunctionHarness, exported: Exported
) -> None:
    harness.stack.partner_center.faults.add(Fault.status(429, retry_after=0), match=CREATE, times=1)
    event, trace_id, _ = traced_event(5)
    outcome = harness.invoke(event)

    assert outcome["status"] == "created"
    tree = tree_of(exported, trace_id)
    (root,) = invocations(tree)
    assert [e.name for e in root.events] == ["retry"]
    assert dict(root.events[0].attributes or {}) == {"hire.category": "throttled"}
    creates = [span for _, span in tree if span.name == "partner_center create_user"]
    assert len(creates) == 2
    assert (creates[0].attributes or {})["http.response.status_code"] == 429
    assert (creates[0].attributes or {})["hire.category"] == "throttled"
    assert creates[0].status.status_code is StatusCode.ERROR
    assert creates[1].status.status_code is StatusCode.UNSET
    points = exported.metric_points()
    assert points["hire.retries"] == [({"category": "throttled"}, 1.0)]
    assert points["partner_center.throttled"] == [
        ({"hire.call": "partner_center.create_user"}, 1.0)
    ]
    statuses = {
        (a["hire.call"], a.get("http.response.status_code")): n
        for a, n in points["partner_center.duration"]
    }
    assert statuses[("partner_center.create_user", 429)] == 1
    assert statuses[("partner_center.create_user", None)] == 1


def test_a_redelivery_is_a_second_invocation_span_in_the_same_trace(
    harness: FunctionHarness, exported: Exported
) -> None:
    harness.stack.partner_center.faults.add(Fault.status(503), match=CREATE, times=3)
    event, trace_id, parent_id = traced_event(6)
    with pytest.raises(RedeliveryRequested):
        harness.invoke(event)
    outcome = harness.invoke(event, dequeue_count=2)

    assert outcome["status"] == "created"
    first, second = invocations(tree_of(exported, trace_id))
    assert first.parent is not None and first.parent.span_id == parent_id
    assert second.parent is not None and second.parent.span_id == parent_id
    assert (first.attributes or {})["hire.status"] == "retrying"
    assert (first.attributes or {})["hire.delivery"] == 1
    assert (first.attributes or {})["error.type"] == "RedeliveryRequested"
    assert first.status.status_code is StatusCode.ERROR
    assert [e.name for e in first.events] == ["retry", "retry"]
    assert (second.attributes or {})["hire.delivery"] == 2
    assert (second.attributes or {})["hire.status"] == "created"
    assert second.context is not None
    assert outcome["traceparent"].split("-")[2] == f"{second.context.span_id:016x}"
    points = exported.metric_points()
    assert points["hire.redeliveries"] == [({"category": "unavailable"}, 1.0)]
    assert points["hire.retries"] == [({"category": "unavailable"}, 2.0)]
    assert points["hire.outcomes"] == [({"status": "created", "category": "none"}, 1.0)]


@pytest.mark.parametrize(
    "traceparent",
    [
        "not a traceparent",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero span id
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # unknown version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        12345,
    ],
)
def test_a_malformed_traceparent_is_ignored_for_tracing(
    harness: FunctionHarness, exported: Exported, traceparent: object
) -> None:
    event = {**hire_event(7), "schemaVersion": "1.1", "traceparent": traceparent}
    # Whether such an event is valid is for the event's validation, not for tracing.
    outcome = harness.invoke(event)

    assert outcome["eventId"] == event["eventId"]
    assert "traceparent" not in outcome
    (root,) = [s for s in exported.finished_spans() if s.name == "provision_user"]
    assert root.parent is None


def test_without_a_traceparent_the_outcome_has_none(
    harness: FunctionHarness, exported: Exported
) -> None:
    outcome = harness.invoke(hire_event(8))

    assert outcome["status"] == "created" and "traceparent" not in outcome
    (root,) = [s for s in exported.finished_spans() if s.name == "provision_user"]
    assert root.parent is None


def test_a_claim_held_by_another_delivery_is_counted_as_lost(
    harness: FunctionHarness, exported: Exported
) -> None:
    event, trace_id, _ = traced_event(9)
    now = datetime.now(UTC)
    composition.build_ledger(Settings.from_environment(harness.settings)).add(
        HireRecord(
            event_id=event["eventId"],
            customer_tenant_id=event["customerTenantId"],
            attempts=1,
            claim_owner="another-delivery",
            claim_expires_at=now + timedelta(minutes=5),
            created_at=now,
            updated_at=now,
        )
    )
    with pytest.raises(RedeliveryRequested):
        harness.invoke(event)

    (root,) = invocations(tree_of(exported, trace_id))
    assert "claim held by another delivery" in [e.name for e in root.events]
    assert (root.attributes or {})["hire.status"] == "retrying"
    assert not any(s.name.startswith("partner_center") for s in exported.finished_spans())
    points = exported.metric_points()
    assert points["hire.claims_lost"] == [({}, 1.0)]
    assert points["hire.redeliveries"] == [({"category": "unavailable"}, 1.0)]


def test_a_body_that_is_not_json_still_gets_a_span(
    harness: FunctionHarness, exported: Exported
) -> None:
    outcome = harness.invoke(b"traceparent: not json")

    assert outcome["status"] == "rejected" and "traceparent" not in outcome
    (root,) = [s for s in exported.finished_spans() if s.name == "provision_user"]
    assert (root.attributes or {})["hire.category"] == "invalid_event"
    assert "hire.event_id" not in (root.attributes or {})


def test_a_rehire_with_licences_traces_restore_reset_and_licence_calls(
    harness: FunctionHarness, exported: Exported
) -> None:
    sku = "c42b9cae-ea4f-4ab7-9717-81576235ccac"
    event, trace_id, _ = traced_event(30)
    event["licenses"] = [{"skuId": sku}]
    pc = harness.stack.partner_center
    pc.add_subscribed_sku(event["customerTenantId"], sku, units=1)
    pc.add_user(
        event["customerTenantId"],
        {
            "userPrincipalName": event["user"]["userPrincipalName"],
            "immutableId": event["user"]["immutableId"],
            "state": "inactive",
        },
    )

    outcome = harness.invoke(event)

    assert outcome["status"] == "restored" and outcome["licenses"]["assigned"] == [sku]
    children = [line.strip() for line in names(tree_of(exported, trace_id)) if line[2] != " "]
    for call in ("restore_user", "reset_password", "subscribed_skus", "assign_licenses"):
        assert f"partner_center {call}" in children, children
    (root,) = invocations(tree_of(exported, trace_id))
    assert dict(root.attributes or {})["hire.status"] == "restored"
