"""Known secret values go through every path; none may come out anywhere a person can read."""

from __future__ import annotations

import contextlib
import logging
import uuid

import pytest

from devtools.standins import Fault
from shared.domain.errors import RedeliveryRequested
from shared.domain.passwords import secret_name_for

from .conftest import CUSTOMER, NO_GDAP_CUSTOMER, FunctionHarness, hire_event

CREATE = "POST /v1/customers/*/users"
HR_PASSWORD = "Hr-Sent-This-Pa55word!"


def test_no_secret_reaches_logs_outcomes_poison_messages_or_exceptions(
    harness: FunctionHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = harness.stack
    exception_texts: list[str] = []
    events = []

    def run(event: dict | bytes, *, dequeue_count: int = 1) -> None:
        try:
            harness.invoke(event, dequeue_count=dequeue_count)
        except RedeliveryRequested as error:
            exception_texts.extend([str(error), repr(error), repr(error.__cause__)])
        if isinstance(event, dict):
            events.append(event)

    run(hire_event(1))  # created
    run(hire_event(1))  # already_exists
    run(hire_event(2, customer=str(uuid.uuid4())))  # validation (unknown customer)
    run(hire_event(3, customer=NO_GDAP_CUSTOMER, domain="northwind.onmicrosoft.com"))  # permission
    stack.partner_center.faults.add(Fault.apply_then_hang(3.0), match=CREATE, times=1)
    run(hire_event(4))  # timeout that succeeded
    stack.partner_center.faults.add(Fault.status(503), match=CREATE, times=3)
    run(hire_event(5))  # redelivery requested
    stack.partner_center.faults.add(Fault.status(429, retry_after=0), match=CREATE, times=3)
    run(hire_event(6), dequeue_count=5)  # failed, throttled
    stack.partner_center.faults.add(Fault.status(401), match=CREATE, times=2)
    run(hire_event(7))  # credentials (401 twice)
    with_password = hire_event(8)
    with_password["user"]["password"] = HR_PASSWORD
    run(with_password)  # invalid_event carrying a password
    taken = hire_event(9)
    stack.partner_center.add_user(
        CUSTOMER,
        {
            "userPrincipalName": taken["user"]["userPrincipalName"],
            "firstName": "Other",
            "lastName": "Person",
            "displayName": "Other Person",
            "usageLocation": "US",
        },
    )
    run(taken)  # conflict
    rehire = hire_event(11)
    stack.partner_center.add_user(
        CUSTOMER,
        {
            "userPrincipalName": rehire["user"]["userPrincipalName"],
            "immutableId": rehire["user"]["immutableId"],
            "state": "inactive",
        },
    )
    stack.partner_center.configure(password_reset_path="resetpassword")
    stack.partner_center.faults.add(
        Fault.apply_then_drop(), match="PATCH /v1/customers/*/users/*", times=1
    )
    run(rehire)  # restored: a lost restore answer, a reset refused on one path (405)
    sku = "c42b9cae-ea4f-4ab7-9717-81576235ccac"
    stack.partner_center.add_subscribed_sku(CUSTOMER, sku, units=0)
    licensed = hire_event(12)
    licensed["licenses"] = [{"skuId": sku}]
    run(licensed)  # created, licence short: a poison copy
    run(b"password=" + HR_PASSWORD.encode() + b" not json")  # not an event: kept unchanged
    stored_refresh_token = stack.key_vault.get_secret_value("partner-center-refresh-token")
    stack.entra.revoke_refresh_token(stored_refresh_token)
    stack.partner_center.faults.add(Fault.status(401), match=CREATE, times=1)
    run(hire_event(10))  # credentials (invalid_grant)

    secrets = {
        "app secret": stack.key_vault.get_secret_value("partner-center-app-secret"),
        "refresh token": stored_refresh_token,
        "HR password": HR_PASSWORD,
    }
    for event in events:
        name = secret_name_for(event["eventId"])
        with contextlib.suppress(KeyError):
            secrets[f"password of {event['eventId']}"] = stack.key_vault.get_secret_value(name)
    for request in stack.partner_center.requests:
        authorization = request.headers.get("authorization")
        if authorization:
            secrets["access token"] = authorization.removeprefix("Bearer ")
    # Refused at the UPN check (unknown customer, no GDAP role, conflict) or before the
    # password (invalid, 401s before it): no password stored for those.
    assert len([k for k in secrets if k.startswith("password of")]) >= 5

    log_text = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''} {getattr(record, 'decision', '')}"
        for record in caplog.records
    )
    outcome_text = "\n".join(str(outcome) for outcome in harness.outcomes)
    poison_messages = harness.poison_messages()
    poison_text = "\n".join(str(m) for m in poison_messages if isinstance(m, dict))
    places = {
        "logs": log_text,
        "outcomes": outcome_text,
        "poison messages": poison_text,
        "exceptions": "\n".join(exception_texts),
    }
    assert "decision" in log_text and exception_texts and poison_text
    for secret_name, value in secrets.items():
        for place, text in places.items():
            assert value not in text, f"the {secret_name} appears in {place}"
    # The one body that is not JSON is poisoned unchanged, as the contract requires.
    assert sum(1 for m in poison_messages if isinstance(m, bytes)) == 1
