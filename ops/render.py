"""How the poison-queue CLI shows messages, plans and results (tables, text, JSON, progress)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

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


def list_record(message: PoisonMessage, ledger_state: str | None = None) -> JsonObject:
    failure = message.last_failure
    return {
        "ledgerState": ledger_state,
        "messageId": message.message_id,
        "eventId": message.event_id,
        "customerTenantId": message.customer_tenant_id,
        "userPrincipalName": message.user_principal_name,
        "kind": message.kind.value,
        "category": message.category,
        "failureMessage": failure.get("message") if failure is not None else None,
        "attempts": message.attempts,
        "poisonedAt": _when(message.poisoned_at) or None,
        "insertedOn": _when(message.inserted_on) or None,
        "expiresOn": None if message.never_expires else _when(message.expires_on),
        "dequeueCount": message.dequeue_count,
        "replayCount": message.replay_count,
    }


def messages_table(
    messages: list[PoisonMessage], ledger_states: dict[str, str] | None = None
) -> Table:
    states = ledger_states or {}
    table = Table(show_lines=False)
    for heading in ("Event ID", "Ledger", "Customer", "UPN", "Category", "Failure", "Attempts",
                    "Poisoned", "Expires", "Message ID"):
        table.add_column(heading, overflow="fold")
    for message in messages:
        attempts = message.attempts
        # Text, not str: bodies come from outside and must not be read as rich markup.
        table.add_row(
            *(
                Text(terminal_safe(cell))
                for cell in (
                    message.event_id or "-",
                    states.get(message.event_id or "", "-"),
                    message.customer_tenant_id or "-",
                    message.user_principal_name or "-",
                    message.category,
                    message.failure_message,
                    "" if attempts is None else str(attempts),
                    _when(message.poisoned_at),
                    _expiry(message),
                    message.message_id,
                )
            )
        )
    return table


def show_text(
    message: PoisonMessage, encoding: MessageEncoding, ledger_state: str | None = None
) -> str:
    lines = [
        f"Message ID:     {message.message_id}",
        f"Kind:           {_KIND_DESCRIPTIONS[message.kind]}",
        f"Event ID:       {message.event_id or '-'}",
        f"Ledger state:   {ledger_state or '-'}  (hires show <eventId> for the whole record)",
        f"Category:       {message.category}",
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


def plan_table(plan: ReplayPlan) -> Table:
    table = Table(title="would replay")
    for heading in ("Event ID", "Category", "Poisoned", "Duplicates removed", "Message ID"):
        table.add_column(heading, overflow="fold")
    for item in plan.items:
        table.add_row(
            *(
                Text(terminal_safe(cell))
                for cell in (
                    item.chosen.event_id or "-",
                    item.chosen.category,
                    _when(item.chosen.poisoned_at),
                    str(len(item.duplicates)),
                    item.chosen.message_id,
                )
            )
        )
    return table


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
