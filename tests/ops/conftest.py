"""One Azurite for the whole of tests/ops; each test gets its own pair of queues."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient, QueueServiceClient

from devtools.azurite import AzuriteQueue, start_azurite_queue
from ops.poison_cli import main

CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
OTHER_CUSTOMER = "9f0c2a55-1111-4e3a-9c53-000000000001"


def hire_event(
    event_id: str, *, customer: str = CUSTOMER, first_name: str = "Jane"
) -> dict[str, Any]:
    return {
        "schemaVersion": "1.0",
        "eventId": event_id,
        "customerTenantId": customer,
        "user": {
            "userPrincipalName": f"{event_id}@contoso.onmicrosoft.com",
            "firstName": first_name,
            "lastName": "Doe",
            "displayName": f"{first_name} Doe",
            "usageLocation": "US",
        },
        "correlationId": str(uuid.uuid5(uuid.NAMESPACE_URL, event_id)),
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def b64(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Bench:
    """A request queue and its poison queue on the shared Azurite, plus ways to fill and run."""

    connection_string: str
    request: QueueClient
    poison: QueueClient
    capsys: pytest.CaptureFixture[str]

    @property
    def queue_name(self) -> str:
        return self.request.queue_name

    def poison_recorded(
        self,
        event: dict[str, Any],
        *,
        category: str = "permission",
        age: timedelta = timedelta(hours=1),
        message: str = "grant the GDAP role User Administrator",
        replay: dict[str, Any] | None = None,
    ) -> str:
        """Kind (a): what the function writes: the event plus lastFailure, never expiring."""
        body = {
            **event,
            "lastFailure": {
                "category": category,
                "message": message,
                "httpStatus": 403 if category == "permission" else None,
                "code": None,
                "attempts": 1,
                "at": iso(datetime.now(UTC) - age),
            },
        }
        if replay is not None:
            body["replay"] = replay
        return self.poison.send_message(b64(body), time_to_live=-1).id

    def poison_by_host(self, event: dict[str, Any]) -> str:
        """Kind (b): the host copies the body only, with the default TTL."""
        return self.poison.send_message(b64(event)).id

    def poison_raw(self, text: str) -> str:
        """Kind (c): poisoned unchanged."""
        return self.poison.send_message(text).id

    def service(self) -> QueueServiceClient:
        return QueueServiceClient.from_connection_string(self.connection_string)

    def poison_ids(self) -> set[str]:
        return {message.id for message in self.poison.peek_messages(max_messages=32)}

    def request_bodies(self) -> list[str]:
        return [str(message.content) for message in self.request.peek_messages(max_messages=32)]

    def request_events(self) -> list[dict[str, Any]]:
        return [json.loads(base64.b64decode(body)) for body in self.request_bodies()]

    def cli(self, *args: str) -> CliRun:
        self.capsys.readouterr()
        storage = ["--connection-string", self.connection_string, "--queue", self.queue_name]
        code = main([*args, *storage])
        captured = self.capsys.readouterr()
        return CliRun(code, captured.out, captured.err)


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteQueue]:
    with start_azurite_queue() as running:
        yield running


@pytest.fixture
def bench(azurite: AzuriteQueue, capsys: pytest.CaptureFixture[str]) -> Bench:
    name = f"req-{uuid.uuid4().hex[:12]}"
    request = QueueClient.from_connection_string(azurite.connection_string, name)
    poison = QueueClient.from_connection_string(azurite.connection_string, f"{name}-poison")
    request.create_queue()
    poison.create_queue()
    return Bench(azurite.connection_string, request, poison, capsys)
