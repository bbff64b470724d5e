"""Thread-safe counters a stand-in keeps for tests and benchmarks.

Two shapes: a plain total (``"users_created"``) and a tally by key
(``"calls"`` by route, ``"secret_reads"`` by secret name). A snapshot is a plain dict.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any


class Counters:
    def __init__(self, *, totals: Iterable[str], tallies: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._total_names = tuple(totals)
        self._tally_names = tuple(tallies)
        self._totals: dict[str, int] = {}
        self._tallies: dict[str, Counter[str]] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._totals = dict.fromkeys(self._total_names, 0)
            self._tallies = {name: Counter() for name in self._tally_names}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._totals[name] += amount

    def tally(self, name: str, key: str) -> None:
        with self._lock:
            self._tallies[name][key] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self._totals,
                # Counter copies read 0 for keys never counted, which is what a test expects.
                **{name: Counter(tally) for name, tally in self._tallies.items()},
            }
