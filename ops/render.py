"""How the poison-queue CLI shows messages, plans and results (tables, text, JSON, progress)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ops.cli import Column
from ops.ledger_view import NO_RECORD, state_summary
from ops.messages import (
    BodyKind,
    JsonObject,
    MessageEncoding,
    PoisonMessage,
    decode_text,
    format_timestamp,
)
from ops.poison_queue import ReplayReport
from ops.selection import ReplayPlan

# Characters a terminal may act on or that hide and reorder text: controls (escape sequences
# start with ESC or the C1 CSI), format characters (bidi overrides, zero-width), surrogates,
# line and paragraph separators, private-use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn"})

PROGRESS_THRESHOLD = 20
"""Batches smaller than this finish before a progress bar would tell anyone anything."""

_KIND_DESCRIPTIONS = {
    BodyKind.FAILURE_RECORDED: "failure recorded by the function (lastFailure)",
    BodyKind.HOST_POISONED: "poisoned by the Functions host (body only)",
    BodyKind.NOT_AN_EVENT: "not an event (not base64, not UTF-8, or not a JSON object)",
}


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """Text from a message, fit for the operator's terminal: every unsafe character escaped."""
    out = []
    for char in text:
        if char == "\n" and keep_newlines:
            out.append(char)
        elif unicodedata.category(char) in _UNSAFE_CATEGORIES:
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else
                f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
        else:
            out.append(char)
    return "".join(out)


def _when(value: datetime | None) -> str:
    return format_timestamp(value) if value is not None else ""


def _expiry(message: PoisonMessage) -> str:
    return "never" if message.never_expires else _when(message.expires_on)


def _ledger_members(
    message: PoisonMessage, views: Mapping[str, dict[str, Any] | None], consulted: bool
) -> JsonObject:
    """ledgerState as the machine value: a HireState value, "no-record", "unreadable", or
    null when the ledger was not read (or the message has no eventId)."""
    if not consulted or message.event_id is None or message.event_id not in views:
        return {"ledgerState": None, "ledgerLastOutcome": None}
    view = views[message.event_id]
    if view is None:
        return {"ledgerState": NO_RECORD, "ledgerLastOutcome": None}
    return {"ledgerState": view.get("state"), "ledgerLastOutcome": view.get("lastOutcome")}


def list_record(
    message: PoisonMessage,
    views: Mapping[str, dict[str, Any] | None] | None = None,
    *,
    consulted: bool = False,
) -> JsonObject:
    """The same facts as a row of the table, whole."""
    return {
        **_ledger_members(message, views or {}, consulted),
        "messageId": message.message_id,
        "eventId": message.event_id,
        "customerTenantId": message.customer_tenant_id,
        "userPrincipalName": message.user_principal_name,
        "kind": message.kind.value,
        "category": message.category,
        "failureMessage": message.failure_message,
        "attempts": message.attempts,
        "poisonedAt": _when(message.poisoned_at) or None,
        "insertedOn": _when(message.inserted_on) or None,
        "expiresOn": None if message.never_expires else _when(message.expires_on),
        "dequeueCount": message.dequeue_count,
        "replayCount": message.replay_count,
    }


def show_record(
    message: PoisonMessage, views: Mapping[str, dict[str, Any] | None], *, consulted: bool
) -> JsonObject:
    """`show --json`: the list's facts plus the body (as an export record carries it)."""
    record = list_record(message, views, consulted=consulted)
    if message.event is not None:
        record["event"] = message.event
    else:
        record["rawBody"] = message.raw_body
        record["unreadable"] = message.unreadable
    return record


def _ledger_text(
    message: PoisonMessage, views: Mapping[str, dict[str, Any] | None], consulted: bool
) -> str:
    if not consulted or message.event_id is None or message.event_id not in views:
        return "-"
    return state_summary(views[message.event_id])


def messages_columns(
    messages: list[PoisonMessage], views: Mapping[str, dict[str, Any] | None] | None = None
) -> list[Column]:
    views = views or {}
    consulted = bool(views)

    def cells(pick: Callable[[PoisonMessage], str]) -> list[str]:
        # Bodies come from outside: every cell is made terminal-safe.
        return [terminal_safe(pick(m)) for m in messages]

    return [
        Column("Event ID", cells(lambda m: m.event_id or "-"), "id", keep=10),
        Column("Category", cells(lambda m: m.category), "id", keep=9),
        Column("Failure", cells(lambda m: m.failure_message), "text", keep=8),
        Column("Poisoned", cells(lambda m: _when(m.poisoned_at)), "id", keep=7),
        Column("Ledger", cells(lambda m: _ledger_text(m, views, consulted)), "text", keep=6),
        Column("Message ID", cells(lambda m: m.message_id), "id", keep=5),
        Column("UPN", cells(lambda m: m.user_principal_name or "-"), "text", keep=4),
        Column(
            "Attempts",
            cells(lambda m: "" if m.attempts is None else str(m.attempts)),
            "id",
            keep=3,
        ),
        Column("Customer", cells(lambda m: m.customer_tenant_id or "-"), "id", keep=2),
        Column("Expires", cells(_expiry), "id", keep=1),
    ]


def show_text(
    message: PoisonMessage,
    encoding: MessageEncoding,
    views: Mapping[str, dict[str, Any] | None] | None = None,
    consulted: bool = False,
) -> str:
    lines = [
        f"Message ID:     {message.message_id}",
        f"Kind:           {_KIND_DESCRIPTIONS[message.kind]}",
        f"Event ID:       {message.event_id or '-'}",
        f"Ledger state:   {_ledger_text(message, views or {}, consulted)}"
        "  (hires show <eventId> for the whole record)",
        f"Category:       {message.category}",
        f"Failure:        {message.failure_message}",
        f"Attempts:       {'' if message.attempts is None else message.attempts}",
        f"Inserted:       {_when(message.inserted_on)}",
        f"Poisoned:       {_when(message.poisoned_at)}",
        f"Expires:        {_expiry(message)}",
        f"Dequeue count:  {message.dequeue_count}",
        f"Replayed:       {message.replay_count} time(s)",
    ]
    if message.event is not None:
        lines += ["Body (decoded):", json.dumps(message.event, indent=2, ensure_ascii=False)]
    else:
        if message.unreadable:
            lines += [f"Unreadable:     {message.unreadable}"]
        lines += ["Body (raw, as on the queue):", message.raw_body]
        text = decode_text(message.raw_body, encoding)
        if text is not None and encoding is not MessageEncoding.NONE:
            lines += ["Body (base64-decoded text):", text]
    return terminal_safe("\n".join(lines), keep_newlines=True)


def plan_columns(plan: ReplayPlan, doomed: set[str] | None = None) -> list[Column]:
    """What a replay would do; '!' marks a copy that would fail again unchanged."""
    marked = doomed or set()
    items = plan.items
    return [
        Column("", ["!" if i.chosen.message_id in marked else "" for i in items], "id", keep=11),
        Column("Event ID", [terminal_safe(i.chosen.event_id or "-") for i in items], "id", keep=10),
        Column("Category", [terminal_safe(i.chosen.category) for i in items], "id", keep=9),
        Column("Poisoned", [_when(i.chosen.poisoned_at) for i in items], "id", keep=7),
        Column("Duplicates", [str(len(i.duplicates)) for i in items], "id", keep=6),
        Column("Message ID", [i.chosen.message_id for i in items], "id", keep=8),
    ]


def print_left_in_place(err: Console, entries: Iterable[tuple[PoisonMessage, str]]) -> None:
    for message, reason in entries:
        err.print(
            Text(terminal_safe(f"skipped {message.message_id} (eventId {message.event_id}): "
                               f"{reason}"))
        )


def print_replay_problems(err: Console, report: ReplayReport) -> None:
    print_left_in_place(err, report.left_in_place)
    for message in report.sent_not_deleted:
        err.print(Text(terminal_safe(f"sent but not deleted: {message.message_id}")))
    for message, reason in report.not_sent:
        err.print(Text(terminal_safe(f"not sent: {message.message_id}: {reason}")))


def report_summary(report: ReplayReport, *, from_file: bool) -> str:
    dropped = "duplicate entries not sent" if from_file else "duplicates removed"
    text = (
        f"replayed {len(report.replayed)}, {dropped} {len(report.duplicates_dropped)}, "
        f"skipped {len(report.left_in_place)}, not selected {report.not_selected}"
    )
    if report.sent_not_deleted:
        text += (
            f"; {len(report.sent_not_deleted)} sent but still in the poison queue too "
            "(safe duplicate; a later replay resends them)"
        )
    if report.not_sent:
        text += f"; {len(report.not_sent)} NOT sent (still in the poison queue)"
    return text


class ProgressBar:
    """A rich progress bar on stderr, for batches large enough to be worth watching."""

    def __init__(self, console: Console, description: str) -> None:
        self._console = console
        self._description = description
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_THRESHOLD:
            return
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self._console,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=total)
        if self._task is not None:
            self._progress.update(self._task, completed=done)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
