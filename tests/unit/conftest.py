"""The unit tier: the decision against in-memory fakes (no network, no Azurite)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from shared.domain.errors import RedeliveryRequested
from shared.domain.outcomes import Outcome
from shared.domain.passwords import fingerprint
from shared.domain.retry import RetryPolicy
from shared.service.provisioning import Delivery, Provisioner
from tests.unit.fakes import (
    Clock,
    FakeDirectory,
    FakePartnerCenter,
    FakePoison,
    FakeVault,
    InMemoryLedger,
)

CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
RETRY = RetryPolicy(
    attempts=3, base_delay=0.5, max_delay=2, budget=60, max_deliveries=5, claim_wait=10
)


def event(number: int = 1, *, immutable_id: str | None = "E1", **user: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaVersion": "1.0",
        "eventId": f"hr-{number}",
        "customerTenantId": CUSTOMER,
        "user": {
            "userPrincipalName": f"jane{number}@contoso.onmicrosoft.com",
            "firstName": "Jane",
            "lastName": "Doe",
            "displayName": "Jane Doe",
            "usageLocation": "US",
            **user,
        },
    }
    if immutable_id is not None:
        body["user"]["immutableId"] = immutable_id
    return body


class Killed(BaseException):
    """A host dying mid-invocation: nothing in the handler may catch it."""


class Gate:
    """Pauses (or kills) one chosen thread at its n-th call to any port."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.count = 0
        self.at: int | None = None
        self.kill = False
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __call__(self) -> None:
        if threading.current_thread() is not self.thread:
            return
        self.count += 1
        if self.count == self.at:
            if self.kill:
                raise Killed()
            self.paused.set()
            self.resume.wait(timeout=10)


class Gated:
    """A port whose every method first passes the gate."""

    def __init__(self, inner: Any, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._gate()
            return attribute(*args, **kwargs)

        return call


@dataclass
class Bench:
    remembers: bool
    clock: Clock = field(default_factory=Clock)
    ledger: InMemoryLedger = field(default_factory=InMemoryLedger)
    poison: FakePoison = field(default_factory=FakePoison)
    gate: Gate = field(default_factory=Gate)
    outcomes: list[Outcome] = field(default_factory=list)
    # A one-call UPN directory (issue 17): None, "consented" (known to answer) or "unknown"
    # (not asked yet; turns out not consented).
    directory_mode: str | None = None

    def __post_init__(self) -> None:
        self.partner_center = FakePartnerCenter(remembers_request_ids=self.remembers)
        self.vault = FakeVault(self.clock)
        self.directory: FakeDirectory | None = None
        if self.directory_mode is not None:
            consented = self.directory_mode == "consented"
            self.directory = FakeDirectory(
                self.partner_center, consented=consented, known=True if consented else None
            )
        self.service = Provisioner(
            partner_center=Gated(self.partner_center, self.gate),
            passwords=Gated(self.vault, self.gate),
            ledger=Gated(self.ledger, self.gate),
            poison=self.poison,
            retry=RETRY,
            password_ttl=timedelta(days=7),
            claim_ttl=timedelta(minutes=4),
            now=self.clock,
            sleep=self.clock.sleep,
            monotonic=self.clock.monotonic,
            jitter=lambda: 0.5,
            directory=Gated(self.directory, self.gate) if self.directory else None,
        )

    def deliver(
        self, body: dict[str, Any] | bytes, *, delivery: int = 1, message_id: str = "m1"
    ) -> Outcome:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        outcome = self.service.handle(
            Delivery(body=raw, dequeue_count=delivery, message_id=message_id)
        )
        self.outcomes.append(outcome)
        return outcome

    def deliver_until_outcome(
        self, body: dict[str, Any], *, first: int = 1, message_id: str = "m1"
    ) -> Outcome:
        """Deliver as the host does: again after each redelivery request, up to the last."""
        for number in range(first, RETRY.max_deliveries + 1):
            try:
                return self.deliver(body, delivery=number, message_id=message_id)
            except RedeliveryRequested:
                self.clock.advance(60)  # visibilityTimeout
        raise AssertionError("the last delivery raised")

    def run_paused(self, at: int, body: dict[str, Any], **kwargs: Any) -> _Paused:
        """Start a delivery in a thread that stops at its ``at``-th port call."""
        return _Paused(self, at, body, kwargs)

    # -------------------------------------------------------------- invariants

    def users(self, upn: str) -> list[Any]:
        return self.partner_center.holders(upn)

    def assert_one_correct_account(self, upn: str, *, created_by_hire: bool = True) -> None:
        """At most one user; every success names it and a secret holding its password."""
        holders = self.users(upn)
        assert len(holders) == 1, f"{len(holders)} users hold {upn}"
        user = holders[0]
        successes = [o for o in self.outcomes if o.status.value in ("created", "already_exists")]
        assert successes, "no successful outcome"
        for outcome in successes:
            assert outcome.user_id == user.id
            if created_by_hire:
                assert outcome.initial_password_secret_id, outcome
                stored = self.vault.secrets[outcome.initial_password_secret_id]
                assert fingerprint(stored) == user.password_digest
        created = [o for o in self.outcomes if o.status.value == "created"]
        assert len(created) <= 1 or all(o.user_id == user.id for o in created)
        failures = [o for o in self.outcomes if o.status.value in ("rejected", "failed")]
        assert not failures, failures


class _Paused:
    def __init__(self, bench: Bench, at: int, body: dict[str, Any], kwargs: dict[str, Any]) -> None:
        self.bench = bench
        self.result: Outcome | BaseException | None = None
        bench.gate.at = at
        bench.gate.count = 0
        bench.gate.paused.clear()
        bench.gate.resume.clear()

        def run() -> None:
            try:
                self.result = bench.deliver(body, **kwargs)
            except BaseException as error:  # reported to the test
                self.result = error
            finally:
                bench.gate.paused.set()

        self.thread = threading.Thread(target=run, daemon=True)
        bench.gate.thread = self.thread
        self.thread.start()
        bench.gate.paused.wait(timeout=10)

    def finish(self) -> Outcome | BaseException | None:
        self.bench.gate.resume.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        self.bench.gate.thread = None
        return self.result


@pytest.fixture(params=[True, False], ids=["remembers-request-id", "forgets-request-id"])
def bench(request: pytest.FixtureRequest) -> Bench:
    return Bench(remembers=request.param)


BenchFactory = Callable[[], Bench]
