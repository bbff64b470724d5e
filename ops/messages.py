"""Poison-queue messages as an operator sees them: decoded, classified and re-encoded.

Pure code, no I/O: everything here is used alike for messages read from the queue and for
entries read back from an export file.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.domain import jsontext

JsonObject = dict[str, Any]

FAILURE_CATEGORIES = (
    "credentials",
    "permission",
    "validation",
    "conflict",
    "invalid_event",
    "throttled",
    "unavailable",
)

LAST_FAILURE = "lastFailure"
REPLAY = "replay"

# Azure reports "never expires" (a time-to-live of -1) as the last second of year 9999.
_NEVER_EXPIRES_YEAR = 9999
_EARLIEST = datetime.min.replace(tzinfo=UTC)


class MessageEncoding(StrEnum):
    """How a body sits on the queue; must match the app's host.json `messageEncoding`."""

    BASE64 = "base64"
    NONE = "none"


class BodyKind(StrEnum):
    FAILURE_RECORDED = "failure-recorded"
    """(a) the function poisoned it and recorded why in `lastFailure`."""
    HOST_POISONED = "host-poisoned"
    """(b) the Functions host poisoned it after maxDequeueCount failures: body only."""
    NOT_AN_EVENT = "not-an-event"
    """(c) not valid base64, not UTF-8, not JSON, or JSON but not an object."""


def decode_text(raw_body: str, encoding: MessageEncoding) -> str | None:
    """The body's text, or None when it does not decode (not base64, or not UTF-8)."""
    if encoding is MessageEncoding.NONE:
        return raw_body
    try:
        data = base64.b64decode(raw_body, validate=True)
        return data.decode("utf-8")
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text; UnicodeDecodeError
        return None


def encode_text(text: str, encoding: MessageEncoding) -> str:
    if encoding is MessageEncoding.NONE:
        return text
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def read_body(raw_body: str, encoding: MessageEncoding) -> tuple[JsonObject | None, str | None]:
    """The body as a JSON object, or None and why it is unreadable. Never raises.

    Read as strictly as the function reads it (shared.domain.jsontext): a body the function could
    not take as an event (too deep, a repeated member name, a lone surrogate...) is kept as
    raw text, so an export or a replay carries it byte for byte.
    """
    if encoding is MessageEncoding.NONE:
        text = raw_body
    else:
        try:
            data = base64.b64decode(raw_body, validate=True)
        except (binascii.Error, ValueError):
            return None, "not base64"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            return None, f"not UTF-8 text (byte {error.start})"
    try:
        value = jsontext.parse(text)
    except jsontext.JsonRejected as error:
        return None, str(error)
    if not isinstance(value, dict):
        return None, "JSON but not an object"
    return value, None


def decode_event(raw_body: str, encoding: MessageEncoding) -> JsonObject | None:
    """The body as a JSON object, or None when it is anything else."""
    return read_body(raw_body, encoding)[0]


def event_to_body(event: JsonObject, encoding: MessageEncoding) -> str:
    return encode_text(json.dumps(event, ensure_ascii=False, separators=(",", ":")), encoding)


def parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class PoisonMessage:
    """One poison-queue message (or one export-file entry standing for it)."""

    message_id: str
    raw_body: str
    """Exactly as on the queue (still base64-encoded with the default encoding)."""
    event: JsonObject | None
    """The decoded JSON object; None for kind (c)."""
    inserted_on: datetime | None
    expires_on: datetime | None
    dequeue_count: int | None
    unreadable: str | None = None
    """Why the body is not an event, for kind (c)."""

    @property
    def kind(self) -> BodyKind:
        if self.event is None:
            return BodyKind.NOT_AN_EVENT
        if isinstance(self.event.get(LAST_FAILURE), dict):
            return BodyKind.FAILURE_RECORDED
        return BodyKind.HOST_POISONED

    @property
    def last_failure(self) -> JsonObject | None:
        failure = self.event.get(LAST_FAILURE) if self.event is not None else None
        return failure if isinstance(failure, dict) else None

    @property
    def event_id(self) -> str | None:
        return _text(self.event.get("eventId")) if self.event is not None else None

    @property
    def customer_tenant_id(self) -> str | None:
        return _text(self.event.get("customerTenantId")) if self.event is not None else None

    @property
    def user_principal_name(self) -> str | None:
        user = self.event.get("user") if self.event is not None else None
        return _text(user.get("userPrincipalName")) if isinstance(user, dict) else None

    @property
    def category(self) -> str:
        """The failure category, or the kind for messages that carry none."""
        failure = self.last_failure
        if failure is not None and isinstance(failure.get("category"), str):
            return str(failure["category"])
        return self.kind.value

    @property
    def failure_message(self) -> str:
        failure = self.last_failure
        if failure is not None:
            return _text(failure.get("message")) or ""
        if self.kind is BodyKind.HOST_POISONED:
            return "(poisoned by host)"
        return f"(not an event: {self.unreadable})" if self.unreadable else "(not an event)"

    @property
    def attempts(self) -> int | None:
        failure = self.last_failure
        value = failure.get("attempts") if failure is not None else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def poisoned_at(self) -> datetime | None:
        """When it was poisoned: the function's `lastFailure.at`, else the insertion time."""
        failure = self.last_failure
        recorded = parse_timestamp(failure.get("at")) if failure is not None else None
        return recorded or self.inserted_on

    @property
    def never_expires(self) -> bool:
        return self.expires_on is None or self.expires_on.year >= _NEVER_EXPIRES_YEAR

    @property
    def replay_count(self) -> int:
        history = self.event.get(REPLAY) if self.event is not None else None
        count = history.get("count") if isinstance(history, dict) else None
        return count if isinstance(count, int) and not isinstance(count, bool) else 0

    @property
    def event_content(self) -> JsonObject | None:
        """The event without the members this project adds, to compare copies of one event."""
        if self.event is None:
            return None
        added = (LAST_FAILURE, REPLAY)
        return {key: value for key, value in self.event.items() if key not in added}

    def sort_key(self) -> tuple[datetime, bool, datetime]:
        """Orders copies by when they were poisoned; on a tie (timestamps have whole seconds)
        a copy that says why it failed ranks above one that does not."""
        return (
            self.poisoned_at or _EARLIEST,
            self.last_failure is not None,
            self.inserted_on or _EARLIEST,
        )


def body_for_replay(
    message: PoisonMessage, *, previous_replays: int, now: datetime, encoding: MessageEncoding
) -> str:
    """The body to send back to the request queue.

    An event keeps `lastFailure` (informational; the function ignores it) and gains or updates
    its `replay` history. Anything else goes back byte for byte: there is nothing to annotate.
    """
    if message.event is None:
        return message.raw_body
    event = dict(message.event)
    event[REPLAY] = {"count": previous_replays + 1, "lastReplayedAt": format_timestamp(now)}
    return event_to_body(event, encoding)
