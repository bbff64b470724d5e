"""Schema 1.1 through the function's bindings: generated UPNs, rehires, licences."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devtools.standins import Fault
from shared.domain.errors import RedeliveryRequested

from .conftest import CUSTOMER, DOMAIN, FunctionHarness, hire_event

JANE = f"jane.doe@{DOMAIN}"
SKU_A = "c42b9cae-ea4f-4ab7-9717-81576235ccac"
SKU_B = "18181a46-0d4e-45cd-891e-60aabd171b4e"
SKU_C = "6fd2c87f-b296-42f0-b197-1e91e994b900"
PATCH_USER = "PATCH /v1/customers/*/users/*"
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def generated_event(number: int, **extra: Any) -> dict[str, Any]:
    event = hire_event(number)
    event["schemaVersion"] = "1.1"
    user = event["user"]
    del user["userPrincipalName"]
    user.update(firstName="Jane", lastName="Doe", displayName="Jane Doe", upnDomain=DOMAIN)
    event.update(extra)
    return event


def holders(harness: FunctionHarness, upn: str) -> list[dict[str, Any]]:
    return [u for u in harness.users() if u["userPrincipalName"].lower() == upn.lower()]


def test_a_generated_upn_colliding_three_times(harness: FunctionHarness) -> None:
    pc = harness.stack.partner_center
    pc.add_user(CUSTOMER, {"userPrincipalName": JANE, "immutableId": "SOMEONE"})
    pc.add_user(CUSTOMER, {"userPrincipalName": f"jane.doe2@{DOMAIN}"})
    pc.add_user(
        CUSTOMER,
        {"userPrincipalName": f"jane.doe3@{DOMAIN}", "immutableId": "GONE", "state": "inactive"},
    )
    event = generated_event(1, traceparent=TRACE)

    outcome = harness.invoke(event)

    assert outcome["status"] == "created", outcome
    assert outcome["userPrincipalName"] == f"jane.doe4@{DOMAIN}"
    assert outcome["traceparent"] == TRACE
    assert "licenses" not in outcome
    harness.assert_secret_holds_users_password(outcome)
    assert harness.ledger_record(event["eventId"]).user_principal_name == f"jane.doe4@{DOMAIN}"
    assert pc.counters["users_created"] == 1


def test_two_deliveries_of_an_event_without_a_upn_at_once(harness: FunctionHarness) -> None:
    harness.invoke(hire_event(41))  # credentials cached, so both deliveries start together
    event = generated_event(2)
    harness.stack.partner_center.faults.add(
        Fault.latency(0.4), match="POST /v1/customers/*/users", times=2
    )

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda _: _invoke_until_outcome(harness, event), range(2)))

    (user,) = holders(harness, JANE)
    assert holders(harness, f"jane.doe2@{DOMAIN}") == []
    assert sorted(o["status"] for o in outcomes) == ["already_exists", "created"]
    assert {o["userId"] for o in outcomes} == {user["id"]}
    assert {o["userPrincipalName"] for o in outcomes} == {JANE}
    for outcome in outcomes:
        harness.assert_secret_holds_users_password(outcome)


def _invoke_until_outcome(harness: FunctionHarness, event: dict[str, Any]) -> dict[str, Any]:
    for delivery in range(1, 6):
        try:
            return harness.invoke(event, dequeue_count=delivery)
        except RedeliveryRequested:
            continue
    raise AssertionError("no outcome")


def test_a_lost_create_answer_keeps_the_generated_upn(harness: FunctionHarness) -> None:
    harness.stack.partner_center.faults.add(
        Fault.apply_then_drop(), match="POST /v1/customers/*/users", times=1
    )
    outcome = harness.invoke(generated_event(3))
    assert outcome["status"] == "created" and outcome["userPrincipalName"] == JANE
    assert len(harness.users()) == 1
    harness.assert_secret_holds_users_password(outcome)


@pytest.mark.parametrize("reset_path", ["user", "resetpassword", "both"])
def test_a_rehire_is_restored_with_a_new_password(
    harness: FunctionHarness, reset_path: str
) -> None:
    pc = harness.stack.partner_center
    pc.configure(password_reset_path=reset_path)
    event = generated_event(4)
    deleted = pc.add_user(
        CUSTOMER,
        {
            "userPrincipalName": JANE,
            "immutableId": event["user"]["immutableId"],
            "state": "inactive",
        },
    )

    outcome = harness.invoke(event)
    again = harness.invoke(event)  # after the first answer, resets go straight to the right path

    assert outcome["status"] == "restored", outcome
    assert outcome["userId"] == deleted["id"] and outcome["userPrincipalName"] == JANE
    harness.assert_secret_holds_users_password(outcome)
    assert again["status"] == "already_exists"
    assert again["initialPasswordSecretId"] == outcome["initialPasswordSecretId"]
    assert pc.counters["users_restored"] == 1 and pc.counters["passwords_reset"] == 1
    assert pc.counters["users_created"] == 0
    assert harness.poison_messages() == []


def test_a_rehire_whose_restore_succeeds_but_whose_answer_is_lost(
    harness: FunctionHarness,
) -> None:
    pc = harness.stack.partner_center
    event = generated_event(5)
    deleted = pc.add_user(
        CUSTOMER,
        {
            "userPrincipalName": JANE,
            "immutableId": event["user"]["immutableId"],
            "state": "inactive",
        },
    )
    pc.faults.add(Fault.apply_then_drop(), match=PATCH_USER, times=1)

    outcome = harness.invoke(event)

    assert outcome["status"] == "restored", outcome
    assert outcome["userId"] == deleted["id"]
    harness.assert_secret_holds_users_password(outcome)
    assert pc.counters["users_restored"] == 1 and pc.counters["users_created"] == 0


def test_a_deleted_user_who_is_someone_else_stays_a_conflict(harness: FunctionHarness) -> None:
    pc = harness.stack.partner_center
    event = hire_event(6)
    deleted = pc.add_user(
        CUSTOMER,
        {
            "userPrincipalName": event["user"]["userPrincipalName"],
            "immutableId": "SOMEONE-ELSE",
            "state": "inactive",
        },
    )

    outcome = harness.invoke(event)

    assert outcome["status"] == "rejected"
    assert outcome["error"]["category"] == "conflict"
    assert deleted["id"] in outcome["error"]["message"]
    assert "someone else" in outcome["error"]["message"]
    assert pc.counters["users_restored"] == 0 and pc.counters["users_created"] == 0


def test_licences_are_assigned_per_licence_group(harness: FunctionHarness) -> None:
    pc = harness.stack.partner_center
    pc.add_subscribed_sku(CUSTOMER, SKU_A, "group1", units=3)
    pc.add_subscribed_sku(CUSTOMER, SKU_B, "group2", units=3)
    event = generated_event(7, licenses=[{"skuId": SKU_A}, {"skuId": SKU_B}])

    outcome = harness.invoke(event)

    assert outcome["status"] == "created"
    assert outcome["licenses"] == {"assigned": [SKU_A, SKU_B], "failed": []}
    assert sorted(pc.assigned_skus(CUSTOMER, outcome["userId"])) == sorted([SKU_A, SKU_B])
    assert pc.counters["license_updates"] == 2
    assert set(harness.ledger_record(event["eventId"]).licenses_assigned) == {SKU_A, SKU_B}
    assert harness.poison_messages() == []


def test_a_licence_shortfall_replayed_after_units_are_added(harness: FunctionHarness) -> None:
    pc = harness.stack.partner_center
    pc.add_subscribed_sku(CUSTOMER, SKU_A, "group1", units=2)
    pc.add_subscribed_sku(CUSTOMER, SKU_B, "group1", units=0)
    event = generated_event(8, licenses=[{"skuId": SKU_A}, {"skuId": SKU_B}, {"skuId": SKU_C}])

    outcome = harness.invoke(event)

    assert outcome["status"] == "created"
    assert outcome["licenses"]["assigned"] == [SKU_A]
    failed = {f["skuId"]: f for f in outcome["licenses"]["failed"]}
    assert failed[SKU_B]["code"] == 60012
    assert failed[SKU_C]["category"] == "validation"
    (copy,) = harness.poison_messages()
    assert isinstance(copy, dict)
    assert SKU_B in copy["lastFailure"]["message"] and SKU_C in copy["lastFailure"]["message"]

    pc.add_units(CUSTOMER, SKU_B, 1)
    pc.add_subscribed_sku(CUSTOMER, SKU_C, "group2", units=1)
    replay = harness.invoke({k: v for k, v in copy.items() if k != "lastFailure"})

    assert replay["status"] == "already_exists" and replay["userId"] == outcome["userId"]
    assert replay["licenses"] == {"assigned": [SKU_A, SKU_B, SKU_C], "failed": []}
    assert pc.counters["users_created"] == 1
    assert sorted(pc.assigned_skus(CUSTOMER, outcome["userId"])) == sorted([SKU_A, SKU_B, SKU_C])
    assert pc.counters["licenses_assigned"] == 3
    assert len(harness.poison_messages()) == 1  # only the first copy; the replay added none


def test_a_missing_licence_role_leaves_the_user_created_with_a_poison_copy(
    harness: FunctionHarness,
) -> None:
    pc = harness.stack.partner_center
    pc.add_subscribed_sku(CUSTOMER, SKU_A, "group1", units=2)
    pc.faults.add(Fault.status(403), match="POST /v1/customers/*/users/*/licenseupdates")
    outcome = harness.invoke(generated_event(9, licenses=[{"skuId": SKU_A}]))
    assert outcome["status"] == "created"
    assert outcome["licenses"]["failed"][0]["category"] == "permission"
    assert len(harness.poison_messages()) == 1


def test_the_reset_path_that_worked_is_tried_first_for_the_next_rehire(
    harness: FunctionHarness,
) -> None:
    pc = harness.stack.partner_center
    pc.configure(password_reset_path="resetpassword")
    for number in (10, 11):
        event = hire_event(number)
        pc.add_user(
            CUSTOMER,
            {
                "userPrincipalName": event["user"]["userPrincipalName"],
                "immutableId": event["user"]["immutableId"],
                "state": "inactive",
            },
        )
        outcome = harness.invoke(event)
        assert outcome["status"] == "restored", outcome
        harness.assert_secret_holds_users_password(outcome)
    resets = [
        r.path.rsplit("/", 1)[-1] == "resetpassword"
        for r in pc.requests
        if r.method == "PATCH" and r.json and "passwordProfile" in r.json
    ]
    assert resets == [False, True, True]  # the user path once (405), then straight to the other


def test_a_rehire_when_deleted_users_do_not_hold_their_upn(harness: FunctionHarness) -> None:
    pc = harness.stack.partner_center
    pc.configure(deleted_users_hold_upn=False)
    event = generated_event(12)
    deleted = pc.add_user(
        CUSTOMER,
        {
            "userPrincipalName": JANE,
            "immutableId": event["user"]["immutableId"],
            "state": "inactive",
        },
    )
    outcome = harness.invoke(event)
    assert outcome["status"] == "restored" and outcome["userId"] == deleted["id"]
    assert pc.counters["users_created"] == 0
