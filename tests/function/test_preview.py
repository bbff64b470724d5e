"""`hire-preview` against the stand-ins: its verdicts, that it writes nothing, and that the run
then produces the same outcomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from devtools.standins import Fault
from ops import preview
from shared.domain.errors import RedeliveryRequested

from .conftest import CUSTOMER, DOMAIN, NO_GDAP_CUSTOMER, FunctionHarness, hire_event

SKU_A = "c42b9cae-ea4f-4ab7-9717-81576235ccac"
SKU_SHORT = "4b244418-9658-4451-a2b8-b5e2b364e9bd"


def _generated(number: int, first: str, last: str, **extra: Any) -> dict[str, Any]:
    event = hire_event(number)
    event["schemaVersion"] = "1.1"
    user = event["user"]
    del user["userPrincipalName"]
    user.update(firstName=first, lastName=last, displayName=f"{first} {last}", upnDomain=DOMAIN)
    event.update(extra)
    return event


def _batch(harness: FunctionHarness) -> list[dict[str, Any] | str]:
    pc = harness.stack.partner_center
    pc.add_subscribed_sku(CUSTOMER, SKU_A, "group1", units=1)
    pc.add_subscribed_sku(CUSTOMER, SKU_SHORT, "group1", units=0)
    pc.add_user(CUSTOMER, {"userPrincipalName": f"taken@{DOMAIN}", "immutableId": "X"})
    pc.add_user(
        CUSTOMER,
        {"userPrincipalName": f"old.hand@{DOMAIN}", "immutableId": "E00004", "state": "inactive"},
    )
    pc.add_user(CUSTOMER, {"userPrincipalName": f"back.again@{DOMAIN}", "immutableId": "E00005"})
    pc.add_user(
        CUSTOMER,
        {"userPrincipalName": f"gone.person@{DOMAIN}", "immutableId": "OTHER", "state": "inactive"},
    )
    taken = hire_event(3)
    taken["user"]["userPrincipalName"] = f"taken@{DOMAIN}"
    gone = hire_event(6)
    gone["user"]["userPrincipalName"] = f"gone.person@{DOMAIN}"
    invalid = hire_event(7)
    invalid["user"]["usageLocation"] = "XX"
    return [
        hire_event(1),  # create
        _generated(2, "Jane", "Doe", licenses=[{"skuId": SKU_A}]),  # jane.doe, licence ok
        taken,  # conflict with an active user
        _generated(4, "Old", "Hand"),  # rehire: restore
        _generated(5, "Back", "Again"),  # already this hire's user
        gone,  # conflict with a deleted user
        invalid,
        "not json",
        _generated(9, "Jane", "Doe", licenses=[{"skuId": SKU_A}, {"skuId": SKU_SHORT}]),
        hire_event(10, customer=NO_GDAP_CUSTOMER, domain="northwind.onmicrosoft.com"),
        hire_event(1),  # the same eventId again
    ]


def _lines(batch: list[dict[str, Any] | str]) -> list[str]:
    return [item if isinstance(item, str) else json.dumps(item) for item in batch]


def test_the_preview_says_what_the_run_then_does_and_writes_nothing(
    harness: FunctionHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = _batch(harness)
    stack = harness.stack
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(_lines(batch)) + "\n", encoding="utf-8")

    status = preview.main([str(events_file), "--format", "json"])

    verdicts = json.loads(capsys.readouterr().out)
    assert status == preview.EXIT_WOULD_FAIL
    by_line = {v["line"]: v for v in verdicts}
    assert [by_line[n]["verdict"] for n in range(1, 12)] == [
        "create",
        "create",
        "conflict",
        "restore",
        "exists",
        "conflict",
        "invalid",
        "invalid",
        "create",
        "refused",
        "exists",
    ]
    assert by_line[2]["userPrincipalName"] == f"jane.doe@{DOMAIN}"
    assert by_line[2]["licenses"]["available"] == [SKU_A]
    assert by_line[9]["userPrincipalName"] == f"jane.doe2@{DOMAIN}"  # line 2 takes jane.doe
    assert by_line[9]["licenses"]["short"] == [SKU_A, SKU_SHORT]  # line 2 takes the last unit
    assert "usageLocation" in by_line[7]["detail"]
    assert by_line[10]["category"] == "permission"
    assert "deleted user" in by_line[6]["detail"]

    # Nothing was written: only GETs reached Partner Center, no secret was written, no table
    # was made, no queue message was sent.
    assert {r.method for r in stack.partner_center.requests} == {"GET"}
    counters = stack.partner_center.counters
    for name in ("users_created", "users_restored", "passwords_reset", "license_updates"):
        assert counters[name] == 0, name
    assert sum(stack.key_vault.counters["secret_writes"].values()) == 0
    tables = TableServiceClient.from_connection_string(harness.settings["AzureWebJobsStorage"])
    assert harness.settings["HIRE_LEDGER_TABLE"] not in [t.name for t in tables.list_tables()]
    assert harness.poison_messages() == []

    # The run agrees with every verdict.
    for line, item in enumerate(batch, start=1):
        body = item.encode() if isinstance(item, str) else item
        outcome = _until_outcome(harness, body)
        assert outcome["status"] == by_line[line]["expectedStatus"], (line, outcome)
        if by_line[line]["userPrincipalName"] and outcome["status"] != "rejected":
            assert outcome["userPrincipalName"] == by_line[line]["userPrincipalName"]
        licences = by_line[line]["licenses"]
        if licences and outcome["status"] != "rejected":
            assert sorted(outcome["licenses"]["assigned"]) == sorted(
                licences["assigned"] + licences["available"]
            )
            assert sorted(f["skuId"] for f in outcome["licenses"]["failed"]) == sorted(
                licences["short"] + licences["unknown"]
            )


def test_the_preview_of_a_batch_that_would_succeed_exits_0_and_prints_a_table(
    harness: FunctionHarness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    lines = "\n".join(json.dumps(e) for e in (hire_event(1), _generated(2, "Zoë", "Ångström")))
    status = preview.main([], stdin=io.StringIO(lines))
    out = capsys.readouterr().out
    assert status == preview.EXIT_OK
    assert f"zoe.angstrom@{DOMAIN}" in out and "2 would succeed" in out


def _until_outcome(harness: FunctionHarness, body: dict[str, Any] | bytes) -> dict[str, Any]:
    for delivery in range(1, 6):
        try:
            return harness.invoke(body, dequeue_count=delivery)
        except RedeliveryRequested:
            continue
    raise AssertionError("no outcome")


def test_the_preview_of_the_demos_events_agrees_with_the_run(
    harness: FunctionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devtools import demo
    from devtools.standins.demo import DEMO_PARTNER_TENANT_ID
    from shared import composition
    from shared.adapters.partner_center import Timeouts
    from shared.hostconfig import QueueHostConfig
    from shared.settings import Settings

    from .conftest import FAST_RETRY

    demo.seed(harness.stack)  # the demo's partner, customers, users, products and faults
    monkeypatch.setenv("PARTNER_TENANT_ID", DEMO_PARTNER_TENANT_ID)
    composition.install(
        composition.build_provisioner(
            Settings.from_environment(),
            QueueHostConfig.load(),
            retry=FAST_RETRY,
            partner_center_timeouts=Timeouts(connect=2.0, read=1.0),
        )
    )
    bodies = demo.all_bodies()
    lines = [b if isinstance(b, str) else json.dumps(b) for b in bodies]

    verdicts = preview.preview_with_settings(Settings.from_environment(), lines)
    outcomes = [_until_outcome(harness, b.encode() if isinstance(b, str) else b) for b in bodies]

    assert demo.compare(verdicts, list(outcomes)) == []
    statuses = {o["eventId"]: o["status"] for o in reversed(outcomes) if o["eventId"]}
    assert statuses["hr-2026-000111"] == "created"  # generated UPN
    assert statuses["hr-2026-000113"] == "restored"  # the rehire
    by_event = {o["eventId"]: o for o in outcomes if o["eventId"]}
    assert by_event["hr-2026-000112"]["userPrincipalName"].startswith("existing.user2@")
    assert by_event["hr-2026-000115"]["licenses"]["failed"][0]["code"] == 60012


def test_the_preview_finds_a_hire_left_creating_without_immutable_id_where_the_function_does(
    harness: FunctionHarness,
) -> None:
    """A create sent without a look-up first (no immutableId, Graph known to answer for the
    customer), applied, its answer lost, and the hire left ``creating``: only the directory's
    creation time tells that the holder is this hire's own. The preview looks the UPN up in
    Graph as the function does, so it says ``create`` (reported created), not ``conflict``."""
    from shared.settings import Settings

    from .test_provisioning import CREATE

    graph = "GET /v1.0/users/*"
    first = hire_event(41)
    del first["user"]["immutableId"]
    assert harness.invoke(first)["status"] == "created"  # looked up in Graph: it answers
    body = hire_event(42)
    del body["user"]["immutableId"]
    harness.stack.partner_center.faults.add(Fault.apply_then_drop(), match=CREATE, times=10)
    harness.stack.graph.faults.add(Fault.status(503), match=graph, times=100)
    with pytest.raises(RedeliveryRequested):
        harness.invoke(body, dequeue_count=1)
    assert harness.ledger_record(body["eventId"]).state.value == "creating"
    (made,) = [u for u in harness.users() if u["userPrincipalName"] == f"user42@{DOMAIN}"]
    harness.stack.partner_center.faults.clear()
    harness.stack.graph.faults.clear()

    (verdict,) = preview.preview_with_settings(Settings.from_environment(), [json.dumps(body)])
    assert (verdict.verdict, verdict.expected_status) == ("create", "created"), verdict
    assert verdict.user_id == made["id"]

    outcome = harness.invoke(body, dequeue_count=2)
    assert (outcome["status"], outcome["userId"]) == ("created", made["id"])
    assert (
        len([u for u in harness.users() if u["userPrincipalName"] == made["userPrincipalName"]])
        == 1
    )
