"""Known secret values go through created, rejected and retried hires; none may be exported
in a span, attribute, event, metric or log record, and no UPN in a span or metric."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

from devtools.standins import Fault
from shared.domain.errors import RedeliveryRequested
from shared.domain.passwords import secret_name_for
from tests.function.conftest import CUSTOMER, NO_GDAP_CUSTOMER, FunctionHarness, hire_event

from .conftest import ONE_VARIANT, Exported

CREATE = "POST /v1/customers/*/users"
HR_PASSWORD = "Hr-Sent-This-Pa55word!"
pytestmark = ONE_VARIANT


def _traced(event: dict[str, Any]) -> dict[str, Any]:
    trace = uuid.uuid4().hex
    return {**event, "schemaVersion": "1.1", "traceparent": f"00-{trace}-{trace[:16]}-01"}


def test_no_secret_or_upn_in_any_exported_span_metric_or_log_record(
    harness: FunctionHarness, exported: Exported
) -> None:
    stack = harness.stack
    events: list[dict[str, Any]] = []

    def run(event: dict[str, Any] | bytes, *, dequeue_count: int = 1) -> None:
        if isinstance(event, dict):
            event = _traced(event)
            events.append(event)
        with contextlib.suppress(RedeliveryRequested):
            harness.invoke(event, dequeue_count=dequeue_count)

    run(hire_event(1))  # created
    run(hire_event(1))  # already_exists
    run(hire_event(2, customer=str(uuid.uuid4())))  # validation (unknown customer)
    run(hire_event(3, customer=NO_GDAP_CUSTOMER, domain="northwind.onmicrosoft.com"))
    stack.partner_center.faults.add(Fault.apply_then_hang(3.0), match=CREATE, times=1)
    run(hire_event(4))  # timeout that succeeded
    stack.partner_center.faults.add(Fault.status(503), match=CREATE, times=3)
    run(hire_event(5))  # redelivery requested
    stack.partner_center.faults.add(Fault.status(429, retry_after=0), match=CREATE, times=1)
    run(hire_event(11))  # retried, then created
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
    run(b"password=" + HR_PASSWORD.encode() + b" not json")
    stored_refresh_token = stack.key_vault.get_secret_value("partner-center-refresh-token")
    stack.entra.revoke_refresh_token(stored_refresh_token)
    stack.partner_center.faults.add(Fault.status(401), match=CREATE, times=1)
    run(hire_event(10))  # credentials (invalid_grant)

    secrets = {
        "app secret": stack.key_vault.get_secret_value("partner-center-app-secret"),
        "refresh token": stored_refresh_token,
        "HR password": HR_PASSWORD,
        "vault client secret": os.environ["AZURE_CLIENT_SECRET"],
    }
    for event in events:
        with contextlib.suppress(KeyError):
            secrets[f"password of {event['eventId']}"] = stack.key_vault.get_secret_value(
                secret_name_for(event["eventId"])
            )
    for request in stack.partner_center.requests:
        authorization = request.headers.get("authorization")
        if authorization:
            secrets["access token"] = authorization.removeprefix("Bearer ")
    assert len([k for k in secrets if k.startswith("password of")]) >= 5
    assert "access token" in secrets

    spans = exported.finished_spans()
    span_text = "\n".join(
        " ".join(
            [
                span.name,
                str(dict(span.attributes or {})),
                str(span.status.description),
                *(f"{e.name} {dict(e.attributes or {})}" for e in span.events),
                *(str(dict(link.attributes or {})) for link in span.links),
            ]
        )
        for span in spans
    )
    metric_text = str(exported.metric_points())
    records = exported.log_records()
    log_text = "\n".join(
        f"{r.log_record.body} {dict(r.log_record.attributes or {})}" for r in records
    )
    assert len(spans) > 50 and "hire.outcomes" in metric_text and "decision" in log_text
    places = {"spans": span_text, "metrics": metric_text, "log records": log_text}
    for secret_name, value in secrets.items():
        assert value, secret_name
        for place, text in places.items():
            assert value not in text, f"the {secret_name} appears in exported {place}"
    for event in events:
        upn = event["user"]["userPrincipalName"]
        assert upn not in span_text, f"{upn} appears in a span"
        assert upn not in metric_text, f"{upn} appears in a metric"
    # Every attribute key is on the allow-list.
    allowed = {
        "hire.call",
        "hire.delivery",
        "hire.event_id",
        "hire.customer_tenant_id",
        "hire.status",
        "hire.category",
        "hire.ledger_state",
        "hire.error_code",
        "http.response.status_code",
        "error.type",
    }
    keys = {key for span in spans for key in (span.attributes or {})}
    keys |= {key for span in spans for e in span.events for key in (e.attributes or {})}
    assert keys <= allowed, keys - allowed
