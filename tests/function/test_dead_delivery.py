"""A host dying between the create and the ledger update: the next delivery finishes the hire."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from shared import composition
from shared.adapters.partner_center import Timeouts
from shared.domain.model import HireRecord, HireState
from shared.hostconfig import QueueHostConfig
from shared.settings import Settings

from .conftest import FAST_RETRY, FunctionHarness, hire_event


class HostDied(BaseException):
    """Like SIGKILL: nothing in the function may catch it."""


class DiesOnCreatedWrite:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def update(self, record: HireRecord) -> HireRecord:
        if record.state is HireState.CREATED:
            raise HostDied()
        return self._inner.update(record)  # type: ignore[no-any-return]


def _install(harness: FunctionHarness, *, dying: bool) -> None:
    settings = Settings.from_environment()
    service = composition.build_provisioner(
        settings,
        QueueHostConfig.load(),
        retry=FAST_RETRY,
        partner_center_timeouts=Timeouts(connect=2.0, read=1.0),
    )
    if dying:
        # The delivery handling and the hire workflow share the one ledger port.
        dying_ledger = DiesOnCreatedWrite(service._ledger)  # type: ignore[attr-defined]
        service._ledger = dying_ledger  # type: ignore[attr-defined]
        service._services = replace(service._services, ledger=dying_ledger)  # type: ignore[attr-defined]
    composition.install(service)


def test_a_delivery_killed_after_its_create_is_finished_by_the_next(
    harness: FunctionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIRE_CLAIM_SECONDS", "5")
    event = hire_event(80)
    _install(harness, dying=True)
    with pytest.raises(HostDied):
        harness.invoke(event)
    (user,) = harness.users()  # the create went through; the ledger never heard of it
    record = harness.ledger_record(event["eventId"])
    assert record.state is HireState.CREATING and record.claim_owner

    _install(harness, dying=False)
    time.sleep(5.5)  # the dead delivery's claim runs out; the host redelivers after its lease
    outcome = harness.invoke(event, dequeue_count=2)

    assert outcome["status"] == "created"  # its own create made the user
    assert outcome["userId"] == user["id"]
    assert len(harness.users()) == 1
    harness.assert_secret_holds_users_password(outcome)
    record = harness.ledger_record(event["eventId"])
    assert record.state is HireState.CREATED and record.claim_owner is None


def test_the_composed_function_ends_events_a_delivery_before_the_host(
    harness: FunctionHarness,
) -> None:
    # The host's last delivery is spare for a last delivery that died (RetryPolicy.for_host).
    service = composition.build_provisioner(
        Settings.from_environment(), QueueHostConfig(max_dequeue_count=6)
    )
    policy = service._retry  # type: ignore[attr-defined]
    assert policy.max_deliveries == 5 and policy.is_last(6)
