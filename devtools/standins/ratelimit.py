"""A request-rate limit a stand-in enforces: N matching calls per window, then 429.

Partner Center documents the answer (429, ``Retry-After`` in seconds, and the gateway's body
``{"statusCode": 429, "message": "Rate limit is exceeded. Try again in N seconds."}``) and that
limits are per partner tenant or per partner tenant and customer tenant, but not how the
window moves. The message counting down to the next minute reads like a fixed window, so
that is what this is: the first matching call opens a window of ``window_seconds``; up to
``limit`` calls in it are served; the rest are answered 429 with the seconds left in the
window (rounded up) and do not count. Refused calls never reach the service.

``scope="customer"`` keeps one window per customer (the ``{id}`` after ``/customers/`` in the
path); ``"partner"`` one for every call the stand-in gets (it serves one partner).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .faults import matches

Scope = Literal["partner", "customer"]
CREATE_USERS = "POST /v1/customers/*/users"


@dataclass
class Window:
    """One window of one key: when it opened, what it served and what it refused."""

    key: str
    opened: float
    served: int = 0
    refused: int = 0


@dataclass
class RateLimit:
    limit: int
    window_seconds: float = 60.0
    match: str | None = CREATE_USERS
    scope: Scope = "partner"
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _current: dict[str, Window] = field(default_factory=dict, repr=False)
    _history: list[Window] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a rate limit serves at least one call per window")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")

    def take(self, method: str, path: str) -> int | None:
        """None when the call may be served (and counts), else the Retry-After seconds."""
        if not matches(self.match, method, path):
            return None
        key = self._key(path)
        with self._lock:
            now = self.clock()
            window = self._current.get(key)
            if window is None or now >= window.opened + self.window_seconds:
                window = Window(key, now)
                self._current[key] = window
                self._history.append(window)
            if window.served < self.limit:
                window.served += 1
                return None
            window.refused += 1
            return max(1, math.ceil(window.opened + self.window_seconds - now))

    @property
    def windows(self) -> list[Window]:
        """Every window so far, oldest first (copies)."""
        with self._lock:
            return [Window(w.key, w.opened, w.served, w.refused) for w in self._history]

    def _key(self, path: str) -> str:
        if self.scope == "customer":
            parts = path.split("/")
            if "customers" in parts and parts.index("customers") + 1 < len(parts):
                return parts[parts.index("customers") + 1].lower()
        return "partner"
