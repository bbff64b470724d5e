"""One delivery of a queue message, and what the invocation handling it has learnt so far."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from shared.domain.model import HireState
from shared.domain.outcomes import Outcome

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """A message as the host hands it over: its body and how often it has been delivered."""

    body: bytes
    dequeue_count: int
    message_id: str | None = None


class Invocation:
    """What one invocation knows about its hire (never the password)."""

    def __init__(self, delivery: Delivery, *, last: bool = False) -> None:
        self.delivery_number = max(1, delivery.dequeue_count)
        # The host's last delivery of this message: nothing may be left to a redelivery.
        self.last = last
        # The claim names this invocation: a redelivery of the same message is another owner.
        self.owner = f"{delivery.message_id or 'message'}/{self.delivery_number}/{uuid.uuid4().hex}"
        self.calls = 0  # calls to Partner Center, for the decision log
        self.request_id: str | None = None
        self.state: HireState | None = None
        # Set when this invocation found another delivery at work on the hire.
        self.waited_for_other = False
        # The hire's record was (or may have been) inserted by this invocation: it reads first
        # from then on.
        self.insert_tried = False
        # The message carries the operator tool's ``replay`` member (a poison copy sent back).
        self.replayed = False
        self.event_id: str | None = None  # once the body parsed as a hire event
        # The hire's last outcome when this invocation first read its record: a refusal
        # adopted from a delivery it waited for must be a later one.
        self.outcome_at_first_read: dict[str, Any] | None = None
        self.record_read = False
        self.counted = False
        # The user's outcome once the user exists; licences are assigned after it.
        self.user_outcome: Outcome | None = None
        # A create call this invocation wrote into the record (generation, the send's call
        # count, the write's ``updated_at``) and has not sent yet. When that write's answer is
        # lost, the retry reads the write back and sends under it instead of counting a
        # second call that never went out.
        self.unsent_create: tuple[int, int, datetime] | None = None

    def call(self, method: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Every Partner Center call of the invocation goes through here: counted in one place
        (the decision log's ``calls``)."""
        self.calls += 1
        return method(*args, **kwargs)
