"""Faults a stand-in injects into its own answers, scripted or at random.

A fault is chosen per request, before the stand-in handles it, by matching ``"METHOD /path"``
against a glob (``"POST /v1/customers/*/users"``; a pattern without a space matches the path
under any method; ``None`` matches every request). Scripted faults are used first, in the
order they were added; random rules apply only when no scripted fault matches.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

DEFAULT_HANG_SECONDS = 30.0
# Throttling answers always carry Retry-After: that is what the documentation promises.
DEFAULT_THROTTLE_RETRY_AFTER = 1


class FaultKind(StrEnum):
    STATUS = "status"
    LATENCY = "latency"
    HANG = "hang"
    DROP = "drop"
    APPLY_THEN_DROP = "apply_then_drop"
    APPLY_THEN_HANG = "apply_then_hang"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status_code: int | None = None
    retry_after: int | None = None
    seconds: float = 0.0
    bare: bool = False

    @classmethod
    def status(cls, status_code: int, *, retry_after: int | None = None) -> Fault:
        """Answer ``status_code`` without handling the request (429 gets Retry-After)."""
        if retry_after is None and status_code == 429:
            retry_after = DEFAULT_THROTTLE_RETRY_AFTER
        return cls(FaultKind.STATUS, status_code=status_code, retry_after=retry_after)

    @classmethod
    def bare_status(cls, status_code: int, *, retry_after: int | None = None) -> Fault:
        """Answer ``status_code`` as a gateway or proxy in front of the service would: a plain
        text body, not the service's error format, and Retry-After only when given."""
        return cls(FaultKind.STATUS, status_code=status_code, retry_after=retry_after, bare=True)

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """Wait, then handle the request normally."""
        return cls(FaultKind.LATENCY, seconds=seconds)

    @classmethod
    def hang(cls, seconds: float = DEFAULT_HANG_SECONDS) -> Fault:
        """Say nothing for ``seconds``, then close the connection; the request is not handled."""
        return cls(FaultKind.HANG, seconds=seconds)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection at once without answering; the request is not handled."""
        return cls(FaultKind.DROP)

    @classmethod
    def apply_then_drop(cls) -> Fault:
        """Handle the request (a create succeeds) but close the connection instead of answering."""
        return cls(FaultKind.APPLY_THEN_DROP)

    @classmethod
    def apply_then_hang(cls, seconds: float = DEFAULT_HANG_SECONDS) -> Fault:
        """Handle the request, then say nothing for ``seconds`` and close the connection."""
        return cls(FaultKind.APPLY_THEN_HANG, seconds=seconds)

    @property
    def handles_request(self) -> bool:
        return self.kind in (
            FaultKind.LATENCY,
            FaultKind.APPLY_THEN_DROP,
            FaultKind.APPLY_THEN_HANG,
        )

    @property
    def label(self) -> str:
        """The name counters use: ``"status_429"``, ``"drop"``, ``"apply_then_hang"``..."""
        if self.kind is FaultKind.STATUS:
            return f"{'bare_' if self.bare else ''}status_{self.status_code}"
        return self.kind.value

    @classmethod
    def parse(cls, spec: str, options: Mapping[str, str] | None = None) -> Fault:
        """Read the compact form used by the CLI: ``429``, ``status=503``, ``latency=0.2``,
        ``hang=5``, ``drop``, ``apply_then_drop``, ``apply_then_hang=5``; ``options`` may
        carry ``retry_after``."""
        name, _, argument = spec.strip().partition("=")
        retry_after = _optional_int((options or {}).get("retry_after"))
        if name.isdigit():
            return cls.status(int(name), retry_after=retry_after)
        kind = FaultKind(name)
        if kind is FaultKind.STATUS:
            return cls.status(int(argument), retry_after=retry_after)
        if kind in (FaultKind.DROP, FaultKind.APPLY_THEN_DROP):
            return cls(kind)
        if kind is FaultKind.LATENCY and not argument:
            raise ValueError("latency needs seconds, e.g. latency=0.2")
        seconds = float(argument) if argument else DEFAULT_HANG_SECONDS
        return cls(kind, seconds=seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "status": self.status_code,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
            "bare": self.bare,
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> Fault:
        kind = FaultKind(payload["kind"])
        if kind is FaultKind.STATUS:
            make = cls.bare_status if payload.get("bare") else cls.status
            return make(int(payload["status"]), retry_after=payload.get("retry_after"))
        seconds = payload.get("seconds")
        if seconds is None:
            seconds = (
                DEFAULT_HANG_SECONDS if kind in (FaultKind.HANG, FaultKind.APPLY_THEN_HANG) else 0.0
            )
        return cls(kind, seconds=float(seconds))


def _optional_int(text: str | None) -> int | None:
    return None if text is None else int(text)


def matches(pattern: str | None, method: str, path: str) -> bool:
    if pattern is None or pattern == "*":
        return True
    if " " in pattern.strip():
        wanted_method, _, path_glob = pattern.strip().partition(" ")
        return fnmatchcase(method, wanted_method.upper()) and fnmatchcase(path, path_glob.strip())
    return fnmatchcase(path, pattern)


@dataclass
class _ScriptedRule:
    fault: Fault
    match: str | None
    remaining: int | None  # None: every matching request until cleared


@dataclass
class _RandomRule:
    rate: float
    kinds: tuple[Fault, ...]
    match: str | None
    seed: int | None
    generator: random.Random = field(repr=False)


DEFAULT_RANDOM_KINDS = (Fault.status(429), Fault.status(503), Fault.drop())


class FaultPlan:
    """The faults one stand-in still has to inject. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripted: list[_ScriptedRule] = []
        self._random: list[_RandomRule] = []

    def add(self, fault: Fault, *, match: str | None = None, times: int | None = 1) -> None:
        """Inject ``fault`` into the next ``times`` matching requests (``None``: all of them)."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every matching request")
        with self._lock:
            self._scripted.append(_ScriptedRule(fault, match, times))

    def random(
        self,
        *,
        seed: int | None = None,
        rate: float,
        kinds: Iterable[Fault | str] | None = None,
        match: str | None = None,
    ) -> None:
        """Inject one of ``kinds`` into each matching request with probability ``rate``."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        chosen = tuple(
            kind if isinstance(kind, Fault) else Fault.parse(kind)
            for kind in (DEFAULT_RANDOM_KINDS if kinds is None else kinds)
        )
        if not chosen:
            raise ValueError("kinds must not be empty")
        with self._lock:
            self._random.append(_RandomRule(rate, chosen, match, seed, random.Random(seed)))

    def clear(self) -> None:
        with self._lock:
            self._scripted.clear()
            self._random.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any; a scripted fault is used up by taking it."""
        with self._lock:
            for rule in self._scripted:
                if matches(rule.match, method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._scripted.remove(rule)
                    return rule.fault
            for random_rule in self._random:
                if (
                    matches(random_rule.match, method, path)
                    and random_rule.generator.random() < random_rule.rate
                ):
                    return random_rule.generator.choice(random_rule.kinds)
        return None

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {
                "scripted": [
                    {
                        "fault": rule.fault.to_json(),
                        "match": rule.match,
                        "remaining": rule.remaining,
                    }
                    for rule in self._scripted
                ],
                "random": [
                    {
                        "rate": rule.rate,
                        "kinds": [kind.to_json() for kind in rule.kinds],
                        "match": rule.match,
                        "seed": rule.seed,
                    }
                    for rule in self._random
                ],
            }


def parse_kinds(text: str) -> Sequence[Fault]:
    """``"429|503|drop|latency=0.1"`` as used by the CLI's random faults."""
    return [Fault.parse(part) for part in text.split("|") if part.strip()]
