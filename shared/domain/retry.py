"""When to try again, apart from what to do: in-invocation retries, waits and redeliveries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Bounds every invocation so the host's lease never lapses and the last delivery ends.

    Transient failures are retried in the invocation ``attempts`` times within ``budget``
    seconds; then the host redelivers after ``visibilityTimeout``, up to ``max_deliveries``
    (one less than host.json ``maxDequeueCount``: ``for_host``), and the last delivery writes
    the outcome instead.
    """

    attempts: int = 3
    # The last delivery has no redelivery behind it: a transient failure there becomes a
    # failed outcome and a poison copy (and, after a create whose answer was lost, a user
    # nobody was told about), so it retries more often within the same budget; with the
    # default delays ten attempts nearly fill it, so in practice the budget ends it. Six was
    # too few under the soak's 22 % faults: a hire whose every attempt takes three or four
    # calls spent all five deliveries once in about 44,000 (docs/benchmarks.md).
    last_delivery_attempts: int = 10
    base_delay: float = 0.5
    max_delay: float = 8.0
    budget: float = 60.0
    max_deliveries: int = 5
    # A delivery that finds another delivery of the same hire at work waits this long for it
    # before asking for redelivery; the last delivery waits until that claim expires.
    claim_wait: float = 10.0
    poll_interval: float = 0.5

    @classmethod
    def for_host(cls, max_dequeue_count: int) -> RetryPolicy:
        """The policy for a host that delivers a message up to ``max_dequeue_count`` times.

        The function ends an event on the delivery before the host's last, which is kept
        spare. A host dies (scale-in, a crash, a deployment) without finishing its
        invocations; a message it held comes back with a higher dequeue count, and one above
        ``maxDequeueCount`` goes to the host's own poison copy without reaching the function
        (body only, no outcome, gone after 7 days). So if the function's last delivery itself
        dies, the spare one still runs the function, which ends the event (``is_last`` holds
        for it too). Only two deaths in a row on one event's last deliveries leave it to the
        host (the soak found the single case: a host killed during a last delivery).
        """
        return cls(max_deliveries=max(1, max_dequeue_count - 1))

    def delay(self, retry_number: int, retry_after: float | None, jitter: float) -> float:
        backoff = min(self.max_delay, self.base_delay * 2.0**retry_number) * (0.5 + jitter)
        return max(backoff, retry_after or 0.0)

    def attempts_for(self, delivery_number: int) -> int:
        if self.is_last(delivery_number):
            return max(self.attempts, self.last_delivery_attempts)
        return self.attempts

    def is_last(self, delivery_number: int) -> bool:
        return delivery_number >= self.max_deliveries
