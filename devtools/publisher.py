"""Publish hire events the way an HR integration should (development and integration aid).

Validates each event against the contract, base64-encodes the UTF-8 JSON (the Functions
default; a plain ``QueueClient`` would not, and every message would land in poison) and sends
it to the request queue. Settings come from local.settings.json (or --settings FILE) and the
environment, as for the local host; with none at all, Azurite. Input that is not JSON stops
everything before a single event is sent (exit 2).

    hire-publish events.jsonl                  # JSON Lines, a JSON array, or one JSON object
    hire-publish --event '{"schemaVersion": "1.0", ...}'
    hire-publish --no-validate bad.json         # send as is, to see a rejection happen
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from ops.cli import (
    EXIT_USAGE,
    StorageTarget,
    ToolError,
    add_connection_options,
    client_options,
    describe_storage_error,
    load_tool_settings,
    run_guarded,
    storage_target,
)
from ops.event_input import EventInputError, EventText, split_events
from shared.domain.events import InvalidEvent, NotAnEvent, decode_body, parse_event
from shared.settings import DEFAULT_REQUEST_QUEUE

DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"


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
    """A JSON array, a single JSON object, or JSON Lines (the reader hire-preview uses)."""
    return [_decoded(item) for item in split_events(path.read_text(encoding="utf-8"),
                                                    source=str(path))]


def _decoded(item: EventText) -> dict[str, Any]:
    try:
        return decode_body(item.text.encode("utf-8"))
    except NotAnEvent as error:
        raise ToolError(f"{item.label}: {error}", EXIT_USAGE) from None


def _inputs(args: argparse.Namespace) -> list[EventText]:
    items: list[EventText] = []
    for number, text in enumerate(args.event, start=1):
        items += split_events(text, source=f"--event {number}")
    for path in args.files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ToolError(f"cannot read {path}: {error}", EXIT_USAGE) from None
        items += split_events(text, source=str(path))
    return items


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hire-publish", description="Validate and publish hire events to the request queue."
    )
    parser.add_argument(
        "files", nargs="*", type=Path, help="files: a JSON object, a JSON array or JSON Lines"
    )
    parser.add_argument("--event", action="append", default=[], help="one event as JSON text")
    add_connection_options(parser, queue=True, table=False)
    parser.add_argument(
        "--no-validate", action="store_true", help="send events even if they break the contract"
    )
    args = parser.parse_args(argv)
    if not args.event and not args.files:
        parser.error("give at least one file or --event")
    return run_guarded("hire-publish", lambda: _publish(args))


def _publish(args: argparse.Namespace) -> int:
    try:
        # Every input is read before anything is sent: a typo in line 40 sends nothing.
        events = [_decoded(item) for item in _inputs(args)]
    except EventInputError as error:
        raise ToolError(str(error), EXIT_USAGE) from None
    if not events:
        raise ToolError("the input holds no events", EXIT_USAGE)
    settings = load_tool_settings(args.settings)
    try:
        target = storage_target(args, settings)
    except ToolError:
        # Nothing configured anywhere: the local emulator, as the host's default.
        target = StorageTarget(DEVELOPMENT_STORAGE, None, None, "the default (Azurite)")
    queue = args.queue or settings.get("REQUEST_QUEUE_NAME") or DEFAULT_REQUEST_QUEUE
    if target.connection_string:
        client = QueueClient.from_connection_string(
            target.connection_string,
            queue,
            message_encode_policy=TextBase64EncodePolicy(),
            **client_options(),
        )
    else:
        from azure.identity import DefaultAzureCredential

        client = QueueClient(
            str(target.queue_service_uri),
            queue,
            credential=DefaultAzureCredential(),
            message_encode_policy=TextBase64EncodePolicy(),
            **client_options(),
        )
    publisher = HirePublisher(client, validate=not args.no_validate)
    failures = 0
    try:
        publisher.ensure_queue()
        for event in events:
            try:
                published = publisher.publish(event)
            except InvalidEvent as error:
                failures += 1
                event_id = event.get("eventId")
                print(f"not sent: event {event_id} is invalid: {error}", file=sys.stderr)
                continue
            print(f"sent event {published.event_id} as message {published.message_id}")
    except AzureError as error:
        raise ToolError(
            describe_storage_error(
                error, what="the queue service", url=client.url, source=target.source
            )
        ) from None
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
