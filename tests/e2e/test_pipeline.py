"""The whole pipeline: publisher → Azurite → local host → function_app.py → stand-ins."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

from devtools.azurite import AzuriteQueue
from devtools.funchost import LocalFunctionsHost
from devtools.publisher import HirePublisher
from devtools.standins import Domain, Fault, StandInStack
from ops.poison_cli import main as poison_queue
from tests.conftest import upn_lookup_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
NO_GDAP_CUSTOMER = "7d3c1c52-1d9e-4d0c-9a43-2f9f3b0b6a11"
DOMAIN = "contoso.onmicrosoft.com"
CREATE = "POST /v1/customers/*/users"
FAST_HOST = {"visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.200"}


def hire_event(number: int, *, customer: str = CUSTOMER, domain: str = DOMAIN) -> dict[str, Any]:
    return {
        "schemaVersion": "1.0",
        "eventId": f"e2e-{number:05d}",
        "customerTenantId": customer,
        "user": {
            "userPrincipalName": f"hire{number}@{domain}",
            "firstName": "Hire",
            "lastName": f"Number{number}",
            "displayName": f"Hire Number{number}",
            "usageLocation": "GB",
        },
    }


@dataclass
class Pipeline:
    stack: StandInStack
    azurite: AzuriteQueue
    settings: dict[str, str]
    publisher: HirePublisher

    @property
    def request_queue(self) -> str:
        return self.settings["REQUEST_QUEUE_NAME"]

    def host(self) -> LocalFunctionsHost:
        return LocalFunctionsHost(PROJECT_ROOT, settings=self.settings, host_options=FAST_HOST)

    def run_until_drained(self, *hosts: LocalFunctionsHost, timeout: float = 60) -> None:
        running = hosts or (self.host(),)
        for host in running:
            host.start()
        try:
            assert running[0].wait_until_drained(timeout=timeout), "the queues did not drain"
        finally:
            for host in running:
                host.stop()

    def _client(self, queue: str) -> QueueClient:
        return QueueClient.from_connection_string(
            self.azurite.connection_string, queue, message_decode_policy=BinaryBase64DecodePolicy()
        )

    def _drain(self, queue: str) -> list[Any]:
        client = self._client(queue)
        found: list[Any] = []
        while batch := list(client.receive_messages(max_messages=32)):
            for message in batch:
                try:
                    found.append(json.loads(message.content))
                except ValueError:
                    found.append(message.content)
                client.delete_message(message)
        return found

    def outcomes(self) -> dict[str, dict[str, Any]]:
        """Outcomes by eventId (the last one wins, as a deduping consumer would keep)."""
        return {str(o["eventId"]): o for o in self._drain(self.settings["RESULT_QUEUE_NAME"])}

    def poison(self) -> list[Any]:
        return self._drain(f"{self.request_queue}-poison")

    def send_raw(self, text: str) -> None:
        QueueClient.from_connection_string(
            self.azurite.connection_string, self.request_queue
        ).send_message(text)


@pytest.fixture
def pipeline(
    standins: StandInStack,
    azurite: AzuriteQueue,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Pipeline]:
    partner = str(uuid.uuid4())
    standins.seed_partner(partner)
    standins.partner_center.add_customer(CUSTOMER, [Domain(DOMAIN)])
    standins.partner_center.add_customer(
        NO_GDAP_CUSTOMER, [Domain("northwind.onmicrosoft.com")], gdap=False
    )
    queue = f"e2e{uuid.uuid4().hex[:10]}"
    settings = {
        **standins.function_settings(partner),
        "AzureWebJobsStorage": azurite.connection_string,
        "REQUEST_QUEUE_NAME": queue,
        "RESULT_QUEUE_NAME": f"{queue}-results",
        # A ledger per test: eventIds repeat across tests.
        "HIRE_LEDGER_TABLE": f"ledger{uuid.uuid4().hex[:12]}",
        # The suite's process trusts the stand-ins' CA alone; keep it so.
        "REQUESTS_CA_BUNDLE": str(standins.ca_file),
        **upn_lookup_settings(request),
    }
    for name in settings:
        monkeypatch.setenv(name, settings[name])
    from shared import composition

    composition.install(None)
    publisher = HirePublisher.from_connection_string(azurite.connection_string, queue)
    publisher.ensure_queue()
    try:
        yield Pipeline(standins, azurite, settings, publisher)
    finally:
        composition.install(None)


def test_hire_events_become_users_with_created_outcomes(pipeline: Pipeline) -> None:
    events = [hire_event(n) for n in range(1, 6)]
    pipeline.publisher.publish_all(events)

    pipeline.run_until_drained()

    outcomes = pipeline.outcomes()
    assert {outcomes[e["eventId"]]["status"] for e in events} == {"created"}
    assert len(pipeline.stack.partner_center.users(CUSTOMER)) == 5
    assert pipeline.poison() == []


def test_a_duplicate_delivery_creates_one_user(pipeline: Pipeline) -> None:
    event = hire_event(10)
    pipeline.publisher.publish(event)
    pipeline.run_until_drained()
    first = pipeline.outcomes()[event["eventId"]]

    pipeline.publisher.publish(event)
    pipeline.run_until_drained()

    again = pipeline.outcomes()[event["eventId"]]
    assert (first["status"], again["status"]) == ("created", "already_exists")
    assert again["userId"] == first["userId"]
    assert len(pipeline.stack.partner_center.users(CUSTOMER)) == 1


def test_transient_failures_are_retried_by_redelivery_then_succeed(pipeline: Pipeline) -> None:
    # Three in-invocation attempts fail, so the host must deliver the message again.
    pipeline.stack.partner_center.faults.add(Fault.status(503), match=CREATE, times=4)
    event = hire_event(20)
    pipeline.publisher.publish(event)

    pipeline.run_until_drained()

    outcome = pipeline.outcomes()[event["eventId"]]
    assert outcome["status"] == "created"
    assert outcome["attempts"] == 2
    assert len(pipeline.stack.partner_center.users(CUSTOMER)) == 1


def test_permanent_failures_land_in_poison_with_last_failure(pipeline: Pipeline) -> None:
    event = hire_event(30, customer=NO_GDAP_CUSTOMER, domain="northwind.onmicrosoft.com")
    pipeline.publisher.publish(event)

    pipeline.run_until_drained()

    assert pipeline.outcomes()[event["eventId"]]["error"]["category"] == "permission"
    (poisoned,) = pipeline.poison()
    assert poisoned["eventId"] == event["eventId"]
    assert poisoned["lastFailure"]["category"] == "permission"
    assert poisoned["lastFailure"]["httpStatus"] == 403


def test_malformed_and_non_base64_bodies_are_poisoned(pipeline: Pipeline) -> None:
    pipeline.send_raw(base64.b64encode(b"{not json").decode())
    pipeline.send_raw("%%% not base64 %%%")

    pipeline.run_until_drained()

    poison_client = QueueClient.from_connection_string(
        pipeline.azurite.connection_string, f"{pipeline.request_queue}-poison"
    )
    bodies = sorted(m.content for m in poison_client.peek_messages(max_messages=32))
    assert bodies == sorted([base64.b64encode(b"{not json").decode(), "%%% not base64 %%%"])
    outcomes = list(pipeline.outcomes().values())
    assert [(o["status"], o["error"]["category"]) for o in outcomes] == [
        ("rejected", "invalid_event")
    ]


def test_two_hosts_on_one_queue_create_no_duplicate_users(pipeline: Pipeline) -> None:
    events = [hire_event(n) for n in range(100, 140)]
    pipeline.publisher.publish_all(events)
    # A few duplicates delivered while both hosts run.
    pipeline.publisher.publish_all(events[:5])

    pipeline.run_until_drained(pipeline.host(), pipeline.host())

    users = pipeline.stack.partner_center.users(CUSTOMER)
    assert len(users) == 40
    assert len({u["userPrincipalName"].lower() for u in users}) == 40
    outcomes = pipeline.outcomes()
    assert set(outcomes) == {e["eventId"] for e in events}
    assert {o["status"] for o in outcomes.values()} <= {"created", "already_exists"}


def test_a_replayed_poison_message_is_processed_again(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    event = hire_event(50, customer=NO_GDAP_CUSTOMER, domain="northwind.onmicrosoft.com")
    pipeline.publisher.publish(event)
    pipeline.run_until_drained()
    assert pipeline.outcomes()[event["eventId"]]["status"] == "rejected"
    # The operator grants the GDAP role, then replays with the project's tool.
    pipeline.stack.partner_center.add_customer(
        NO_GDAP_CUSTOMER, [Domain("northwind.onmicrosoft.com")], gdap=True
    )

    code = poison_queue(
        [
            "replay",
            "--connection-string",
            pipeline.azurite.connection_string,
            "--queue",
            pipeline.request_queue,
            "--category",
            "permission",
            "--yes",
        ]
    )
    pipeline.run_until_drained()

    assert code == 0
    outcome = pipeline.outcomes()[event["eventId"]]
    assert outcome["status"] in {"created", "already_exists"}
    assert len(pipeline.stack.partner_center.users(NO_GDAP_CUSTOMER)) == 1
    assert pipeline.poison() == []


def test_a_host_poisoned_event_is_replayed_and_processed(pipeline: Pipeline) -> None:
    event = hire_event(60)
    # What the Functions host leaves after maxDequeueCount failures: the body only, base64.
    poison_client = QueueClient.from_connection_string(
        pipeline.azurite.connection_string, f"{pipeline.request_queue}-poison"
    )
    poison_client.create_queue()
    poison_client.send_message(base64.b64encode(json.dumps(event).encode()).decode())

    code = poison_queue(
        [
            "replay",
            "--connection-string", pipeline.azurite.connection_string,
            "--queue", pipeline.request_queue,
            "--category", "host-poisoned",
            "--yes",
        ]
    )
    pipeline.run_until_drained()

    assert code == 0
    assert pipeline.outcomes()[event["eventId"]]["status"] == "created"
    assert pipeline.poison() == []
