"""`hires show` and `hires list` read what the function wrote to the ledger."""

from __future__ import annotations

import json

import pytest

from devtools.standins import Fault
from ops.hires_cli import main as hires

from .conftest import CUSTOMER, NO_GDAP_CUSTOMER, FunctionHarness, hire_event


def _hires(harness: FunctionHarness, capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code = hires(
        [
            "--connection-string",
            harness.settings["AzureWebJobsStorage"],
            "--table",
            harness.settings["HIRE_LEDGER_TABLE"],
            *args,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out) if "--format" in args and "json" in args else captured.out


def test_operators_see_each_hires_state(
    harness: FunctionHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    created = harness.invoke(hire_event(1))
    refused = harness.invoke(
        hire_event(2, customer=NO_GDAP_CUSTOMER, domain="northwind.onmicrosoft.com")
    )
    harness.stack.partner_center.faults.add(
        Fault.status(503), match="POST /v1/customers/*/users", times=10
    )
    failed = harness.invoke(hire_event(3), dequeue_count=5)
    assert (created["status"], refused["status"], failed["status"]) == (
        "created",
        "rejected",
        "failed",
    )

    shown = _hires(harness, capsys, "show", "hr-2026-000001", "--format", "json")
    assert isinstance(shown, dict)
    assert shown["state"] == "created" and shown["userId"] == created["userId"]
    assert shown["initialPasswordSecretId"] == created["initialPasswordSecretId"]
    assert shown["claim"] is None and shown["outcome"]["status"] == "created"

    listed = _hires(harness, capsys, "list", "--format", "json")
    assert isinstance(listed, list)
    by_event = {item["eventId"]: item for item in listed}
    assert by_event["hr-2026-000002"]["lastOutcome"] == "rejected"
    assert by_event["hr-2026-000002"]["lastFailure"]["category"] == "permission"
    assert by_event["hr-2026-000003"]["state"] == "creating"  # a create may have been applied
    assert by_event["hr-2026-000003"]["lastOutcome"] == "failed"

    only_failed = _hires(harness, capsys, "list", "--outcome", "failed", "--format", "json")
    assert [item["eventId"] for item in only_failed] == ["hr-2026-000003"]  # type: ignore[union-attr]
    for_customer = _hires(
        harness, capsys, "list", "--customer", CUSTOMER, "--state", "created", "--format", "json"
    )
    assert [item["eventId"] for item in for_customer] == ["hr-2026-000001"]  # type: ignore[union-attr]
    table = _hires(harness, capsys, "list", "--since", "1h")
    assert "hr-2026-000001" in str(table) and "created" in str(table)
    text = _hires(harness, capsys, "show", "hr-2026-000001")
    assert "userId" in str(text)
    serialised = json.dumps(listed)
    for version in harness.stack.key_vault.versions(
        shown["initialPasswordSecretId"].split("/")[-2]
    ):
        assert version["value"] not in serialised  # ids only, never the password


def test_an_unknown_event_id_is_reported(
    harness: FunctionHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before any hire the table does not exist: that is said, and nothing is created.
    common = [
        "--connection-string",
        harness.settings["AzureWebJobsStorage"],
        "--table",
        harness.settings["HIRE_LEDGER_TABLE"],
    ]
    assert hires([*common, "show", "nope"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert hires([*common, "list"]) == 1  # still not created by the read above
    capsys.readouterr()
    harness.invoke(hire_event(1))
    code = hires(
        [
            "--connection-string",
            harness.settings["AzureWebJobsStorage"],
            "--table",
            harness.settings["HIRE_LEDGER_TABLE"],
            "show",
            "nope",
        ]
    )
    assert code == 1
    assert "no record" in capsys.readouterr().err


def test_poison_queue_shows_each_events_ledger_state(
    harness: FunctionHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    from ops.poison_cli import main as poison_queue

    harness.invoke(hire_event(2, customer=NO_GDAP_CUSTOMER, domain="northwind.onmicrosoft.com"))
    harness.invoke(b"not json")
    capsys.readouterr()
    common = [
        "--connection-string",
        harness.settings["AzureWebJobsStorage"],
        "--queue",
        harness.settings["REQUEST_QUEUE_NAME"],
        "--ledger-table",
        harness.settings["HIRE_LEDGER_TABLE"],
    ]
    assert poison_queue(["list", *common, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    states = {
        item["eventId"]: (item["ledgerState"], item["ledgerLastOutcome"]) for item in listed
    }
    assert states == {"hr-2026-000002": ("rejected", "rejected"), None: (None, None)}
    assert poison_queue(["show", "hr-2026-000002", *common]) == 0
    assert "Ledger state:   rejected (last: rejected)" in capsys.readouterr().out
