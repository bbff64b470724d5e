"""Reading, leasing and replaying the poison queue (`<request-queue>-poison`).

Reading without disturbing the queue
------------------------------------
Peek is the only operation that leaves a queue exactly as it was, and it returns at most 32
messages. So a read peeks first, and when the peek comes back full (there may be more) it
receives every message with a visibility timeout (a lease), never deletes, and makes each one
visible again at once with `update_message(visibility_timeout=0)`. The cost, accepted because
nothing consumes the poison queue but this tool:

- each such read adds 1 to every message's dequeue count (shown by `show`);
- while the read runs, and for at most `lease_seconds` if the tool dies mid-read, the messages are
  invisible to any other reader (another operator running this tool would see fewer);
- messages are ordered by when they became visible again, not by insertion.
Messages someone else holds invisible at that moment are not seen by either method.

Replaying
---------
A replay receives the messages with a lease, sends each selected one to the request queue and
only then deletes it from the poison queue. A failure (or a crash) between the two leaves the
event in both queues: a duplicate, which the function absorbs (idempotent per eventId), never a
loss. The lease is renewed before each send when half of it has run out, so a long replay never
sends an event whose poison copy another reader has taken meanwhile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient

from ops.messages import MessageEncoding, PoisonMessage, body_for_replay, read_body
from ops.selection import ReplayItem, ReplayPlan, Selection, plan_replay
from shared.adapters.poison import NEVER_EXPIRES

PEEK_LIMIT = 32
"""The most messages one peek (or one receive) returns."""
DEFAULT_LEASE_SECONDS = 300

LEASE_LOST = "its lease was lost (someone else received it); still in the poison queue"
REPLAYED_COPY_NOT_DELETED = "the replayed copy could not be deleted, so its duplicates stay too"


class OperatorError(Exception):
    """A condition the operator has to fix; the message says what to do."""


def poison_queue_name(request_queue_name: str) -> str:
    return f"{request_queue_name}-poison"


@dataclass(frozen=True)
class Queues:
    request: QueueClient
    poison: QueueClient

    @classmethod
    def connect(
        cls,
        request_queue_name: str,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: TokenCredential | None = None,
        **client_options: Any,
    ) -> Queues:
        """A connection string, or else an account URL signed in with `credential`
        (DefaultAzureCredential unless given).

        No message encode/decode policy is set: bodies are handled as the text on the queue, so
        that bodies which are not valid base64 can still be read and moved unchanged.
        """
        if connection_string is not None:
            service = QueueServiceClient.from_connection_string(connection_string, **client_options)
        elif account_url is not None:
            service = QueueServiceClient(
                account_url, credential=credential or DefaultAzureCredential(), **client_options
            )
        else:
            raise OperatorError(
                "no storage account: pass --connection-string or --account-url, or set "
                "AzureWebJobsStorage"
            )
        return cls(
            request=service.get_queue_client(request_queue_name),
            poison=service.get_queue_client(poison_queue_name(request_queue_name)),
        )


def to_poison_message(message: QueueMessage, encoding: MessageEncoding) -> PoisonMessage:
    raw_body = "" if message.content is None else str(message.content)
    event, unreadable = read_body(raw_body, encoding)
    return PoisonMessage(
        message_id=message.id,
        raw_body=raw_body,
        event=event,
        inserted_on=message.inserted_on,
        expires_on=message.expires_on,
        dequeue_count=message.dequeue_count,
        unreadable=unreadable,
    )


def require_queue(queue: QueueClient) -> None:
    try:
        queue.get_queue_properties()
    except ResourceNotFoundError:
        raise OperatorError(
            f"queue {queue.queue_name!r} does not exist in account {queue.account_name!r}: "
            "check --queue (the request queue's name; the poison queue is <queue>-poison, made "
            "when the first message is poisoned) and the storage account"
        ) from None


def approximate_message_count(queue: QueueClient) -> int:
    """What the service reports, including invisible messages; 0 when the queue does not exist."""
    try:
        return queue.get_queue_properties().approximate_message_count or 0
    except ResourceNotFoundError:
        return 0


@dataclass
class _Hold:
    pop_receipt: str
    held_until: float


class Lease:
    """Messages received from a queue and kept invisible to others until deleted or released.

    Used as a context manager: whatever is still held at the end is made visible again at once
    (even when the block raised), rather than staying hidden until the lease runs out.
    """

    def __init__(
        self,
        queue: QueueClient,
        encoding: MessageEncoding,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._encoding = encoding
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._holds: dict[str, _Hold] = {}

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release_all()

    def receive_all(self) -> list[PoisonMessage]:
        """Every visible message, each once; an absent queue holds none."""
        received: list[PoisonMessage] = []
        while True:
            requested_at = self._clock()
            try:
                page = list(
                    self._queue.receive_messages(
                        messages_per_page=PEEK_LIMIT,
                        max_messages=PEEK_LIMIT,
                        visibility_timeout=self._lease_seconds,
                    )
                )
            except ResourceNotFoundError:
                return received
            fresh = [message for message in page if message.id not in self._holds]
            for message in page:
                self._hold(message.id, message.pop_receipt, requested_at)
            received += [to_poison_message(message, self._encoding) for message in fresh]
            if not fresh:
                # Empty, or only messages already held whose lease ran out during a long scan:
                # the scan has come round to its start, so everything visible has been seen.
                return received

    def confirm_held(self, message: PoisonMessage) -> bool:
        """Whether this lease still holds the message, renewing it when half has run out."""
        hold = self._holds.get(message.message_id)
        if hold is None:
            return False
        if hold.held_until - self._clock() > self._lease_seconds / 2:
            return True
        requested_at = self._clock()
        try:
            # By id, not by QueueMessage: given a message object the SDK rewrites its content.
            renewed = self._queue.update_message(
                message.message_id,
                pop_receipt=hold.pop_receipt,
                visibility_timeout=self._lease_seconds,
            )
        except AzureError:
            del self._holds[message.message_id]
            return False
        self._hold(message.message_id, renewed.pop_receipt, requested_at)
        return True

    def delete(self, message: PoisonMessage) -> None:
        hold = self._holds[message.message_id]
        self._queue.delete_message(message.message_id, hold.pop_receipt)
        del self._holds[message.message_id]

    def release(self, message_ids: Iterable[str]) -> None:
        """Make these messages visible again now, if still held."""
        for message_id in message_ids:
            hold = self._holds.pop(message_id, None)
            if hold is None:
                continue
            # Taken by someone else, or unreachable: either way the lease runs out by itself.
            with contextlib.suppress(AzureError):
                self._queue.update_message(
                    message_id, pop_receipt=hold.pop_receipt, visibility_timeout=0
                )

    def release_all(self) -> None:
        self.release(list(self._holds))

    def _hold(self, message_id: str, pop_receipt: str | None, requested_at: float) -> None:
        if pop_receipt is None:
            raise RuntimeError(f"the service returned message {message_id} without a pop receipt")
        self._holds[message_id] = _Hold(pop_receipt, requested_at + self._lease_seconds)


def read_poison_queue(
    queue: QueueClient, encoding: MessageEncoding, *, lease_seconds: int = DEFAULT_LEASE_SECONDS
) -> list[PoisonMessage]:
    """Every visible message, the queue left as found (see the module's docstring)."""
    try:
        peeked = queue.peek_messages(max_messages=PEEK_LIMIT)
    except ResourceNotFoundError:
        return []
    if len(peeked) < PEEK_LIMIT:
        return [to_poison_message(message, encoding) for message in peeked]
    with Lease(queue, encoding, lease_seconds) as lease:
        return lease.receive_all()


class ReplaySource(Protocol):
    """Where replayed messages come from, when it is a queue they must be removed from."""

    def confirm_held(self, message: PoisonMessage) -> bool: ...

    def delete(self, message: PoisonMessage) -> None: ...


@dataclass
class ReplayReport:
    replayed: list[PoisonMessage] = field(default_factory=list)
    """Sent to the request queue (including those in `sent_not_deleted`)."""
    duplicates_dropped: list[PoisonMessage] = field(default_factory=list)
    """Copies made redundant by a replayed one: deleted from the queue, or not sent from a file."""
    sent_not_deleted: list[PoisonMessage] = field(default_factory=list)
    """Sent, but still in the poison queue too: a safe duplicate; the next replay resends it."""
    left_in_place: list[tuple[PoisonMessage, str]] = field(default_factory=list)
    """Selected but deliberately not replayed, with the reason."""
    not_sent: list[tuple[PoisonMessage, str]] = field(default_factory=list)
    """Not sent because sending failed; nothing was deleted for them."""
    not_selected: int = 0

    @property
    def succeeded(self) -> bool:
        return not self.sent_not_deleted and not self.not_sent

    def counts(self) -> dict[str, int]:
        return {
            "replayed": len(self.replayed),
            "duplicates_dropped": len(self.duplicates_dropped),
            "skipped": len(self.left_in_place),
            "sent_not_deleted": len(self.sent_not_deleted),
            "not_sent": len(self.not_sent),
            "not_selected": self.not_selected,
        }


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def execute_replay(
    plan: ReplayPlan,
    *,
    send: Callable[[str], None],
    source: ReplaySource | None,
    now: datetime,
    encoding: MessageEncoding,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> ReplayReport:
    """Send each planned message, then delete it and its duplicates from `source` (if any).

    Stops at the first failed send: the request queue or the credentials are then most likely
    wrong for every message alike. Exceptions other than storage errors propagate; a `Lease`
    releases what it still holds.
    """
    report = ReplayReport(left_in_place=list(plan.left_in_place))
    for done, item in enumerate(plan.items, start=1):
        try:
            _replay_item(item, report, send=send, source=source, now=now, encoding=encoding)
        except AzureError as error:
            reason = f"send failed: {first_line(error)}"
            report.not_sent += [(rest.chosen, reason) for rest in plan.items[done - 1 :]]
            break
        on_progress(done, len(plan.items))
    return report


def _replay_item(
    item: ReplayItem,
    report: ReplayReport,
    *,
    send: Callable[[str], None],
    source: ReplaySource | None,
    now: datetime,
    encoding: MessageEncoding,
) -> None:
    """Raises AzureError only when the send failed."""
    if source is not None and not source.confirm_held(item.chosen):
        report.left_in_place += [(copy, LEASE_LOST) for copy in (item.chosen, *item.duplicates)]
        return
    send(
        body_for_replay(
            item.chosen, previous_replays=item.previous_replays, now=now, encoding=encoding
        )
    )
    report.replayed.append(item.chosen)
    if source is None:
        report.duplicates_dropped += item.duplicates
        return
    try:
        source.delete(item.chosen)
    except AzureError:
        report.sent_not_deleted.append(item.chosen)
        report.left_in_place += [(copy, REPLAYED_COPY_NOT_DELETED) for copy in item.duplicates]
        return
    for duplicate in item.duplicates:
        try:
            source.delete(duplicate)
        except AzureError as error:
            report.left_in_place.append((duplicate, f"not deleted: {first_line(error)}"))
        else:
            report.duplicates_dropped.append(duplicate)


def sender(queue: QueueClient) -> Callable[[str], None]:
    def send(body: str) -> None:
        # The poison copies the function writes never expire; with the default 7-day TTL a
        # replayed event would vanish if the function app stayed stopped for a week.
        queue.send_message(body, time_to_live=NEVER_EXPIRES)

    return send


LeaseFactory = Callable[[QueueClient, MessageEncoding, int], Lease]


def replay_poison_queue(
    queues: Queues,
    selection: Selection,
    *,
    encoding: MessageEncoding,
    now: datetime,
    limit: int | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    lease_factory: LeaseFactory = Lease,
    approve: Callable[[Sequence[PoisonMessage], ReplayPlan], None] = lambda selected, plan: None,
) -> ReplayReport:
    """Move the selected poison messages back to the request queue (send first, delete second).

    `lease_factory` is the seam tests use to make deletes fail.
    """
    require_queue(queues.request)
    with lease_factory(queues.poison, encoding, lease_seconds) as lease:
        messages = lease.receive_all()
        selected = selection.select(messages, now)
        plan = plan_replay(selected, limit=limit)
        approve(selected, plan)  # raises to refuse: the lease then releases everything
        planned = {
            copy.message_id for item in plan.items for copy in (item.chosen, *item.duplicates)
        }
        # Let go at once of what this run leaves alone, so other readers need not wait for it.
        lease.release(m.message_id for m in messages if m.message_id not in planned)
        report = execute_replay(
            plan,
            send=sender(queues.request),
            source=lease,
            now=now,
            encoding=encoding,
            on_progress=on_progress,
        )
    report.not_selected = len(messages) - len(selected)
    return report


def replay_entries(
    entries: Sequence[PoisonMessage],
    request_queue: QueueClient,
    selection: Selection,
    *,
    encoding: MessageEncoding,
    now: datetime,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    approve: Callable[[Sequence[PoisonMessage], ReplayPlan], None] = lambda selected, plan: None,
) -> ReplayReport:
    """Send entries read from an export file to the request queue (one per eventId)."""
    require_queue(request_queue)
    selected = selection.select(entries, now)
    plan = plan_replay(selected, limit=limit)
    approve(selected, plan)
    report = execute_replay(
        plan,
        send=sender(request_queue),
        source=None,
        now=now,
        encoding=encoding,
        on_progress=on_progress,
    )
    report.not_selected = len(entries) - len(selected)
    return report
