"""Publish hire events the way an HR integration should (development and integration aid).

Validates each event against the contract, base64-encodes the UTF-8 JSON (the Functions
default; a plain ``QueueClient`` would not, and every message would land in poison) and sends
it to the request queue.

    hire-publish events.jsonl                  # one event per line (or a JSON array file)
    hire-publish --event '{"schemaVersion": "1.0", ...}'
    hire-publish --no-validate bad.json         # send as is, to see a rejection happen
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from shared.events import InvalidEvent, parse_event
from shared.settings import DEFAULT_REQUEST_QUEUE


@dataclass(frozen=True)
class Published:
    event_id: str | None
    message_id: str


class HirePublisher:
    """Sends hire events to the request queue."""

    def __init__(self, client: QueueClient, *, validate: bool = True) -> None:
        self._client = client
        self._validate = validate

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        queue_name: str = DEFAULT_REQUEST_QUEUE,
        *,
        validate: bool = True,
    ) -> HirePublisher:
        client = QueueClient.from_connection_string(
            connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
        )
        return cls(client, validate=validate)

    def ensure_queue(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()

    def publish(self, event: dict[str, Any]) -> Published:
        """Validate (unless disabled) and send one event; raises InvalidEvent naming the field."""
        if self._validate:
            parse_event(event)
        sent = self._client.send_message(json.dumps(event, ensure_ascii=False))
        event_id = event.get("eventId")
        return Published(event_id if isinstance(event_id, str) else None, str(sent.id))

    def publish_raw(self, body: str) -> Published:
        """Send a body exactly as given (for demonstrating how bad input is handled)."""
        sent = self._client.send_message(body)
        return Published(None, str(sent.id))

    def publish_all(self, events: Iterable[dict[str, Any]]) -> list[Published]:
        return [self.publish(event) for event in events]


def read_events(path: Path) -> list[dict[str, Any]]:
    """A JSON array, a single JSON object, or JSON Lines."""
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        return []
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return document if isinstance(document, list) else [document]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hire-publish", description="Validate and publish hire events to the request queue."
    )
    parser.add_argument("files", nargs="*", type=Path, help="JSON, JSON array or JSON Lines files")
    parser.add_argument("--event", action="append", default=[], help="one event as JSON text")
    parser.add_argument(
        "--connection-string",
        default=os.environ.get("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
        help="storage connection string (default: $AzureWebJobsStorage, else Azurite)",
    )
    parser.add_argument(
        "--queue",
        default=os.environ.get("REQUEST_QUEUE_NAME", DEFAULT_REQUEST_QUEUE),
        help="request queue (default: $REQUEST_QUEUE_NAME or user-create-requests)",
    )
    parser.add_argument(
        "--no-validate", action="store_true", help="send events even if they break the contract"
    )
    args = parser.parse_args(argv)

    events: list[dict[str, Any]] = [json.loads(text) for text in args.event]
    for path in args.files:
        events.extend(read_events(path))
    if not events:
        parser.error("give at least one file or --event")

    publisher = HirePublisher.from_connection_string(
        args.connection_string, args.queue, validate=not args.no_validate
    )
    publisher.ensure_queue()
    failures = 0
    for event in events:
        try:
            published = publisher.publish(event)
        except InvalidEvent as error:
            failures += 1
            print(f"not sent: event {event.get('eventId')!r} is invalid: {error}", file=sys.stderr)
            continue
        print(f"sent event {published.event_id} as message {published.message_id}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
