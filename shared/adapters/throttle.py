"""One process, one view of throttling: a 429 one invocation hears holds back all the others.

Partner Center throttles per partner tenant (or per partner and customer) and says how long to
wait in ``Retry-After``. Without a shared gate each of the dozen invocations a process runs at
once finds that out with a 429 of its own, and all of them come back together the moment the
wait is over. The gate keeps a "not before" time per key; once it has passed, one call goes
first (the probe) while the others wait for its answer, so a limit that has not renewed yet
costs one more 429, not one per invocation.

The gate knows nothing about HTTP: the caller tells it how long a result asks to wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# A 429 without Retry-After: the documentation says never to retry at once.
DEFAULT_HOLD_SECONDS = 2.0
# Longer holds are not waited out inside one invocation: the caller gets ThrottleHeld and
# decides (the provisioning retries or asks the host to deliver the message later).
DEFAULT_MAX_WAIT_SECONDS = 30.0
# A probe that never reports (its thread died) stops blocking the others after this long.
DEFAULT_PROBE_TIMEOUT_SECONDS = 35.0
PROBE_POLL_SECONDS = 0.05


class ThrottleHeld(Exception):
    """The gate would hold this call longer than the caller may wait."""

    def __init__(self, key: str, remaining: float) -> None:
        super().__init__(f"calls to {key} are held back for another {remaining:.1f}s")
        self.key = key
        self.remaining = remaining


@dataclass
class _Hold:
    not_before: float
    probe_started: float | None = None


@dataclass(frozen=True)
class GateStats:
    holds: int  # 429s that set or extended a hold
    waits: int  # calls that had to wait
    waited_seconds: float


class ThrottleGate:
    """Thread-safe "not before" times per key (a partner tenant, or a partner and customer)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = DEFAULT_MAX_WAIT_SECONDS,
        default_hold: float = DEFAULT_HOLD_SECONDS,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._default_hold = default_hold
        self._probe_timeout = probe_timeout
        self._lock = threading.Lock()
        self._holds: dict[str, _Hold] = {}
        self._held_count = 0
        self._wait_count = 0
        self._waited = 0.0

    @property
    def stats(self) -> GateStats:
        with self._lock:
            return GateStats(self._held_count, self._wait_count, self._waited)

    def call(
        self,
        key: str,
        send: Callable[[], T],
        *,
        throttled_for: Callable[[T], float | None],
    ) -> T:
        """Wait for the turn of ``key``, ``send``, and learn from the result:
        ``throttled_for(result)`` is None when the result was not throttled, otherwise the
        seconds it asks to wait (negative: it did not say, so the default hold)."""
        probe = self.wait_turn(key)
        try:
            result = send()
        except BaseException:
            # No answer says nothing about the limit: let the others go.
            self._settle(key, probe, None)
            raise
        self._settle(key, probe, throttled_for(result))
        return result

    def wait_turn(self, key: str) -> bool:
        """Block until ``key`` may be called; True when this call is the probe after a hold.
        Raises ``ThrottleHeld`` when the wait would exceed ``max_wait``."""
        waited = 0.0
        while True:
            with self._lock:
                hold = self._holds.get(key)
                if hold is None:
                    return False
                now = self._clock()
                if now < hold.not_before:
                    delay = hold.not_before - now
                elif hold.probe_started is None or now - hold.probe_started >= self._probe_timeout:
                    hold.probe_started = now
                    return True
                else:
                    delay = PROBE_POLL_SECONDS
                if waited + delay > self._max_wait:
                    raise ThrottleHeld(key, delay)
                if waited == 0.0:
                    self._wait_count += 1
                self._waited += delay
            self._sleep(delay)
            waited += delay

    def hold(self, key: str, seconds: float | None) -> None:
        """A 429 for ``key`` asked to wait ``seconds`` (None or negative: the default)."""
        wait = seconds if seconds is not None and seconds >= 0 else self._default_hold
        with self._lock:
            until = self._clock() + wait
            hold = self._holds.get(key)
            if hold is None:
                self._holds[key] = _Hold(until)
            else:
                hold.not_before = max(hold.not_before, until)
                hold.probe_started = None
            self._held_count += 1

    def _settle(self, key: str, probe: bool, throttled: float | None) -> None:
        if throttled is not None:
            self.hold(key, throttled)
            return
        with self._lock:
            hold = self._holds.get(key)
            # A call sent before the hold may answer after it: only an answer that came
            # once the wait was over reopens the gate.
            if hold is not None and self._clock() >= hold.not_before:
                del self._holds[key]
            elif hold is not None and probe:
                hold.probe_started = None
