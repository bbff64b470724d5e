"""Poison messages to JSON Lines and back, so nothing is lost to a queue TTL or a purge.

One object per line:

    {"id": ..., "insertedOn": ..., "expiresOn": ... | null (never), "dequeueCount": ...,
     "kind": "failure-recorded" | "host-poisoned" | "not-an-event",
     "decoded": true, "event": {...}}          # a JSON object body, decoded
     "decoded": false, "rawBody": "..."        # anything else, exactly as on the queue
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient

from ops.messages import (
    JsonObject,
    MessageEncoding,
    PoisonMessage,
    event_to_body,
    format_timestamp,
    parse_timestamp,
    read_body,
)
from ops.poison_queue import DEFAULT_LEASE_SECONDS, Lease, OperatorError, read_poison_queue
from ops.selection import Selection
from shared.domain import jsontext


def export_record(message: PoisonMessage) -> JsonObject:
    record: JsonObject = {
        "id": message.message_id,
        "insertedOn": format_timestamp(message.inserted_on) if message.inserted_on else None,
        "expiresOn": None
        if message.never_expires or message.expires_on is None
        else format_timestamp(message.expires_on),
        "dequeueCount": message.dequeue_count,
        "kind": message.kind.value,
        "decoded": message.event is not None,
    }
    if message.event is not None:
        record["event"] = message.event
    else:
        record["rawBody"] = message.raw_body
    return record


def message_from_record(record: object, encoding: MessageEncoding) -> PoisonMessage:
    """The message an export record stands for; ValueError when it is not such a record."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    message_id = record.get("id")
    if not isinstance(message_id, str):
        raise ValueError('"id" must be a string')
    event: JsonObject | None = None
    if record.get("decoded") is True:
        event = record.get("event")
        if not isinstance(event, dict):
            raise ValueError('"decoded" is true but "event" is not a JSON object')
        raw_body = event_to_body(event, encoding)
    elif record.get("decoded") is False:
        raw = record.get("rawBody")
        if not isinstance(raw, str):
            raise ValueError('"decoded" is false but "rawBody" is not a string')
        raw_body = raw
    else:
        raise ValueError('"decoded" must be true or false')
    dequeue_count = record.get("dequeueCount")
    unreadable = read_body(raw_body, encoding)[1] if event is None else None
    return PoisonMessage(
        message_id=message_id,
        raw_body=raw_body,
        event=event,
        inserted_on=parse_timestamp(record.get("insertedOn")),
        expires_on=parse_timestamp(record.get("expiresOn")),
        dequeue_count=dequeue_count if isinstance(dequeue_count, int) else None,
        unreadable=unreadable,
    )


def write_export(path: Path, messages: list[PoisonMessage]) -> None:
    """Write a new file and make it durable (file and directory entry) before returning.

    An existing file is never overwritten: it may be the only copy of an earlier export.
    """
    try:
        # Owner-only from the first byte: the file holds names and tenant ids.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OperatorError(f"{path} exists: choose a new --output file") from None
    except OSError as error:
        raise OperatorError(f"cannot create {path}: {error.strerror or error}") from None
    with open(descriptor, "w", encoding="utf-8") as output:
        for message in messages:
            # ASCII only: a body's control, escape or bidi characters stay escaped in the file.
            output.write(json.dumps(export_record(message)) + "\n")
        output.flush()
        os.fsync(output.fileno())
    _fsync_directory(path.resolve().parent)


def _fsync_directory(directory: Path) -> None:
    # Without it a power cut can lose the new file's name even though its data was synced.
    # Directories cannot be opened for syncing on every platform (Windows); skip there.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def read_export(path: Path, encoding: MessageEncoding) -> list[PoisonMessage]:
    """Every entry of an export file; any bad line fails the whole read, before anything is sent."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise OperatorError(f"cannot read {path}: {error.strerror or error}") from None
    entries: list[PoisonMessage] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = jsontext.parse(line, max_depth=jsontext.MAX_DEPTH + 1)  # event + record
            entries.append(message_from_record(record, encoding))
        except ValueError as error:
            raise OperatorError(f"{path}:{number}: not an export record: {error}") from None
    return entries


@dataclass(frozen=True)
class ExportReport:
    exported: int
    not_selected: int
    deleted: int = 0
    not_deleted: int = 0
    """Exported but still in the poison queue (its lease was lost, or the delete failed)."""


def export_poison_queue(
    poison: QueueClient,
    selection: Selection,
    output: Path,
    *,
    encoding: MessageEncoding,
    now: datetime,
    delete_after: bool = False,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    approve: Callable[[Sequence[PoisonMessage]], None] = lambda selected: None,
) -> ExportReport:
    """Write the selected messages to `output`; with `delete_after`, then delete them.

    `approve` sees the selection before anything is written and raises to refuse.
    """
    if not delete_after:
        messages = read_poison_queue(poison, encoding, lease_seconds=lease_seconds)
        selected = selection.select(messages, now)
        approve(selected)
        write_export(output, selected)
        return ExportReport(exported=len(selected), not_selected=len(messages) - len(selected))

    with Lease(poison, encoding, lease_seconds) as lease:
        messages = lease.receive_all()
        selected = selection.select(messages, now)
        approve(selected)
        chosen = {message.message_id for message in selected}
        lease.release(m.message_id for m in messages if m.message_id not in chosen)
        write_export(output, selected)
        deleted = 0
        for message in selected:
            if not lease.confirm_held(message):
                continue
            with contextlib.suppress(AzureError):
                lease.delete(message)
                deleted += 1
    return ExportReport(
        exported=len(selected),
        not_selected=len(messages) - len(selected),
        deleted=deleted,
        not_deleted=len(selected) - deleted,
    )
