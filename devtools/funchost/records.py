"""What the host remembers about each message it handled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Outcome = Literal["succeeded", "failed", "poisoned"]


@dataclass(frozen=True)
class InvocationRecord:
    """One handling of one message.

    ``outcome`` is "succeeded" (message deleted, outputs written), "failed" (the function or
    an output write failed; the message becomes visible again after visibilityTimeout) or
    "poisoned" (the body went to ``<queue>-poison``). ``invoked`` is False when the host
    poisoned the message without calling the function: a body that is not valid base64, or a
    dequeue count already above maxDequeueCount. ``to_json`` leaves the error text out: it
    may quote the function's exception.
    """

    function_name: str
    message_id: str
    dequeue_count: int
    outcome: Outcome
    duration: float  # seconds the function ran; 0.0 when it was not invoked
    queue_name: str
    invocation_id: str
    started_at: datetime
    invoked: bool = True
    error: str | None = None
    # CPU seconds of the thread that ran the (sync) function; None when unknown.
    cpu_time: float | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "function": self.function_name,
            "messageId": self.message_id,
            "dequeueCount": self.dequeue_count,
            "outcome": self.outcome,
            "duration": self.duration,
            "cpuTime": self.cpu_time,
            "startedAt": self.started_at.isoformat(),
            "invoked": self.invoked,
        }
