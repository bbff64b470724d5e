"""Which poison messages a command acts on, and how a replay treats several copies of one event.

Pure code, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ops.messages import FAILURE_CATEGORIES, BodyKind, PoisonMessage
from shared.domain.events import InvalidEvent, parse_event

CATEGORY_CHOICES = (*FAILURE_CATEGORIES, BodyKind.HOST_POISONED.value, BodyKind.NOT_AN_EVENT.value)

_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `3d` or `1w`."""
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"not an age: {text!r} (expected a number and s, m, h, d or w, e.g. 2h)")
    amount, unit = match.groups()
    return timedelta(**{_AGE_UNITS[unit]: int(amount)})


@dataclass(frozen=True)
class Selection:
    """Filters combine with AND; the values of one filter combine with OR."""

    categories: frozenset[str] = frozenset()
    customers: frozenset[str] = frozenset()
    event_ids: frozenset[str] = frozenset()
    message_ids: frozenset[str] = frozenset()
    older_than: timedelta | None = None
    newer_than: timedelta | None = None

    def __post_init__(self) -> None:
        # Tenant ids are GUIDs: compare them the way Entra does, case-insensitively.
        object.__setattr__(self, "customers", frozenset(c.lower() for c in self.customers))

    @property
    def is_everything(self) -> bool:
        return self == Selection()

    def matches(self, message: PoisonMessage, now: datetime) -> bool:
        if self.categories and message.category not in self.categories:
            return False
        customer = (message.customer_tenant_id or "").lower()
        if self.customers and customer not in self.customers:
            return False
        if self.event_ids and message.event_id not in self.event_ids:
            return False
        if self.message_ids and message.message_id not in self.message_ids:
            return False
        if self.older_than is None and self.newer_than is None:
            return True
        poisoned_at = message.poisoned_at
        if poisoned_at is None:
            return False
        age = now - poisoned_at
        if self.older_than is not None and age < self.older_than:
            return False
        return self.newer_than is None or age <= self.newer_than

    def select(self, messages: Iterable[PoisonMessage], now: datetime) -> list[PoisonMessage]:
        return [message for message in messages if self.matches(message, now)]

    def describe(self) -> dict[str, object]:
        """The filters in force, for the audit trail."""
        described: dict[str, object] = {}
        for name in ("categories", "customers", "event_ids", "message_ids"):
            values = getattr(self, name)
            if values:
                described[name] = sorted(values)
        for name in ("older_than", "newer_than"):
            value = getattr(self, name)
            if value is not None:
                described[name] = str(value)
        return described


@dataclass(frozen=True)
class ReplayItem:
    """One replay: a message to send, and the copies of the same event made redundant by it."""

    chosen: PoisonMessage
    duplicates: tuple[PoisonMessage, ...] = ()
    """Same event content (ignoring `lastFailure` and `replay`); removed once `chosen` is sent."""
    previous_replays: int = 0
    """The highest replay count among the copies: the history continues from there."""


@dataclass(frozen=True)
class ReplayPlan:
    items: tuple[ReplayItem, ...]
    left_in_place: tuple[tuple[PoisonMessage, str], ...] = field(default=())
    """Selected messages the plan does not touch, each with the reason."""


DIVERGENT_COPY = "another copy of this eventId with different content is replayed"
BEYOND_LIMIT = "beyond --limit"


def plan_replay(messages: Sequence[PoisonMessage], *, limit: int | None = None) -> ReplayPlan:
    """One replay per eventId, oldest poisoned first.

    Of several copies of one eventId the most recently poisoned is replayed: if HR corrected and
    republished the event, that copy is the corrected one. Copies with the same content are
    redundant once it is sent, because the function processes an eventId once at most. Copies
    with different content are left in the poison queue for a person to look at: deleting them
    would silently discard data. Messages without an eventId are each replayed on their own.
    """
    groups: dict[str, list[PoisonMessage]] = {}
    planned: list[tuple[ReplayItem, list[PoisonMessage]]] = []
    for message in messages:
        if message.event_id is None:
            planned.append((ReplayItem(message), []))
        else:
            groups.setdefault(message.event_id, []).append(message)

    for copies in groups.values():
        chosen = max(copies, key=PoisonMessage.sort_key)
        others = [copy for copy in copies if copy is not chosen]
        duplicates = tuple(c for c in others if c.event_content == chosen.event_content)
        divergent = [c for c in others if c.event_content != chosen.event_content]
        previous = max(copy.replay_count for copy in (chosen, *duplicates))
        planned.append((ReplayItem(chosen, duplicates, previous), divergent))

    planned.sort(key=lambda entry: entry[0].chosen.sort_key())
    kept = planned if limit is None else planned[:limit]
    left_in_place: list[tuple[PoisonMessage, str]] = []
    for _, divergent in kept:
        left_in_place += [(copy, DIVERGENT_COPY) for copy in divergent]
    for item, divergent in planned[len(kept):]:
        abandoned = (item.chosen, *item.duplicates, *divergent)
        left_in_place += [(copy, BEYOND_LIMIT) for copy in abandoned]
    return ReplayPlan(tuple(item for item, _ in kept), tuple(left_in_place))


# --- what a replay should refuse without --force -------------------------------------------

_FAILS_UNCHANGED = {
    "invalid_event": "the event breaks the contract; correct it (export, edit, replay "
    "--from-file) or have HR republish it",
    "validation": "Partner Center refused the user's data; correct it first",
    "conflict": "the UPN belongs to someone else; give the hire another UPN, or remove the "
    "other holder first",
    BodyKind.NOT_AN_EVENT.value: "the body is not an event at all",
}


def fails_unchanged(message: PoisonMessage) -> str | None:
    """Why a replay of this copy, as it is, would come straight back; None if it may succeed.

    An invalid event that now passes the contract (edited in an export file) may succeed.
    """
    reason = _FAILS_UNCHANGED.get(message.category)
    if reason is None:
        return None
    if message.category == "invalid_event" and message.event_content is not None:
        try:
            parse_event(message.event_content)
        except InvalidEvent:
            return reason
        return None
    return reason


def unmatched_names(selection: Selection, messages: Iterable[PoisonMessage]) -> list[str]:
    """The --event-id and --message-id values that name no message (a typo, or gone)."""
    seen = list(messages)
    event_ids = {m.event_id for m in seen}
    message_ids = {m.message_id for m in seen}
    missing = [f"eventId {value}" for value in sorted(selection.event_ids - event_ids)]
    missing += [f"message id {value}" for value in sorted(selection.message_ids - message_ids)]
    return missing
