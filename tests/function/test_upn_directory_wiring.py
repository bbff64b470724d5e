"""The function as deployed (composition root, UPN_LOOKUP=auto) with the stand-in Microsoft Graph:
a hire costs the create alone whatever the customer's size, and a customer without Graph
consent falls back to Partner Center's user list (issue 17)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from devtools.standins import Fault

from .conftest import CUSTOMER, FunctionHarness, hire_event

CREATE = "POST /v1/customers/*/users"
CREATE_KEY = "POST /v1/customers/{id}/users"
LIST_KEY = "GET /v1/customers/{id}/users"


def _without_immutable_id(number: int) -> dict[str, Any]:
    event = hire_event(number)
    del event["user"]["immutableId"]
    return event


def _graph_calls(harness: FunctionHarness) -> int:
    return sum(harness.stack.graph.counters["calls"].values())


def test_with_graph_a_hire_without_immutable_id_reads_no_user_list(
    harness: FunctionHarness,
) -> None:
    first = harness.invoke(_without_immutable_id(301))
    graph_after_first = _graph_calls(harness)
    second = harness.invoke(_without_immutable_id(302))

    assert (first["status"], second["status"]) == ("created", "created")
    calls = harness.stack.partner_center.counters["calls"]
    assert calls.get(LIST_KEY, 0) == 0, "no page of the customer's users is read"
    assert calls[CREATE_KEY] == 2
    # The customer's first hire asks Graph once (that tells whether it answers for the
    # customer); the next one is created without any look-up.
    assert graph_after_first == 1
    assert _graph_calls(harness) == graph_after_first
    for outcome in (first, second):
        harness.assert_secret_holds_users_password(outcome)


@pytest.mark.parametrize("consent", ["identity_not_found", "request_denied", "token_refused"])
def test_without_graph_consent_the_user_list_is_the_fallback(
    harness: FunctionHarness, consent: str
) -> None:
    harness.stack.graph.set_consent(CUSTOMER, consent)

    outcomes = [harness.invoke(_without_immutable_id(n)) for n in (311, 312)]

    assert [o["status"] for o in outcomes] == ["created", "created"]
    calls = harness.stack.partner_center.counters["calls"]
    assert calls.get(LIST_KEY, 0) >= 2, "the up-front check reads the user list"
    assert calls[CREATE_KEY] == 2
    # Not consented is remembered for the process: Graph is asked once for the customer.
    assert _graph_calls(harness) <= 1


def test_with_graph_a_lost_create_is_settled_by_the_holders_creation_time(
    harness: FunctionHarness,
) -> None:
    harness.stack.partner_center.faults.add(Fault.apply_then_drop(), match=CREATE, times=1)

    outcome = harness.invoke(_without_immutable_id(321))

    assert outcome["status"] == "created"
    assert len(harness.users()) == 1
    assert outcome["userId"] == harness.users()[0]["id"]
    harness.assert_secret_holds_users_password(outcome)


def test_with_graph_a_namesake_holding_the_upn_is_a_conflict(harness: FunctionHarness) -> None:
    event = _without_immutable_id(331)
    holder = harness.stack.partner_center.add_user(
        CUSTOMER,
        {
            "userPrincipalName": event["user"]["userPrincipalName"],
            "createdDateTime": "2025-01-01T00:00:00Z",
        },
    )

    outcome = harness.invoke(event)

    assert outcome["status"] == "rejected"
    assert outcome["error"]["category"] == "conflict"
    assert holder["id"] in outcome["error"]["message"]
    assert len(harness.users()) == 1


def test_with_graph_an_unknown_customer_is_rejected(harness: FunctionHarness) -> None:
    outcome = harness.invoke(hire_event(341, customer=str(uuid.uuid4())))

    assert outcome["status"] == "rejected"
    assert outcome["error"]["category"] == "validation"
    assert outcome["error"]["httpStatus"] == 404
