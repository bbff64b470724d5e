"""A host dying between the create and the ledger update: the next delivery finishes the hire."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import composition
from shared.adapters.partner_center import Timeouts
from shared.domain.model import HireRecord, HireState
from shared.hostconfig import QueueHostConfig
from shared.settings import Settings

from .conftest import CUSTOMER, FAST_RETRY, FunctionHarness, hire_event


class HostDied(BaseException):
    """Like SIGKILL: nothing in the function may catch it."""


class DiesAfterCreatingInsert:
    """Dies right after the insert that records the first create call (the one-write path):
    the call is on the record, and was never sent."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def add(self, record: HireRecord) -> HireRecord:
        added = self._inner.add(record)
        if added.state is HireState.CREATING:
            raise HostDied()
        return added  # type: ignore[no-any-return]


class DiesOnCreatedWrite:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def update(self, record: HireRecord) -> HireRecord:
        if record.state is HireState.CREATED:
            raise HostDied()
        return self._inner.update(record)  # type: ignore[no-any-return]


def _install(harness: FunctionHarness, *, dying: type | None) -> None:
    """The function, its ledger wrapped in ``dying`` (which raises ``HostDied`` somewhere)."""
    settings = Settings.from_environment()
    service = composition.build_provisioner(
        settings,
        QueueHostConfig.load(),
        retry=FAST_RETRY,
        partner_center_timeouts=Timeouts(connect=2.0, read=1.0),
    )
    if dying:
        # The delivery handling and the hire workflow share the one ledger port.
        dying_ledger = dying(service._ledger)  # type: ignore[attr-defined]
        service._ledger = dying_ledger  # type: ignore[attr-defined]
        service._services = replace(service._services, ledger=dying_ledger)  # type: ignore[attr-defined]
    composition.install(service)


def test_a_delivery_killed_after_its_create_is_finished_by_the_next(
    harness: FunctionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIRE_CLAIM_SECONDS", "5")
    event = hire_event(80)
    _install(harness, dying=DiesOnCreatedWrite)
    with pytest.raises(HostDied):
        harness.invoke(event)
    (user,) = harness.users()  # the create went through; the ledger never heard of it
    record = harness.ledger_record(event["eventId"])
    assert record.state is HireState.CREATING and record.claim_owner

    _install(harness, dying=None)
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


@pytest.mark.parametrize("duplicate_status", [400, 409])
@pytest.mark.parametrize("remembers", [True, False], ids=["remembers", "forgets"])
def test_the_same_person_given_the_upn_long_after_an_unsent_call_stays_theirs(
    harness: FunctionHarness,
    monkeypatch: pytest.MonkeyPatch,
    remembers: bool,
    duplicate_status: int,
) -> None:
    """F15 over real HTTP: the first delivery records its create call and dies before sending
    it; the call is on the record a week ago. The same person (same immutableId) was given
    the UPN an hour ago by other means. The next delivery's call is refused as a duplicate,
    and Graph dates the holder long after the only call that could have applied:
    ``already_exists`` without an initial password, not ``created`` with a password that
    account does not have. Every combination of the undocumented variants."""
    monkeypatch.setenv("HIRE_CLAIM_SECONDS", "5")
    harness.stack.partner_center.configure(
        idempotent_request_ids=remembers, duplicate_upn_status=duplicate_status
    )
    event = hire_event(81)
    _install(harness, dying=DiesAfterCreatingInsert)
    with pytest.raises(HostDied):
        harness.invoke(event)
    assert harness.users() == []  # the call never went out

    ledger = composition.build_ledger(Settings.from_environment(harness.settings))
    record = ledger.get(event["eventId"])
    assert record is not None
    (send,) = record.sends
    assert send.first_sent_at is not None and send.last_sent_at is not None
    week = timedelta(days=7)
    a_week_ago = replace(
        send, first_sent_at=send.first_sent_at - week, last_sent_at=send.last_sent_at - week
    )
    ledger.update(replace(record, sends=(a_week_ago,)))
    harness.stack.partner_center.add_user(
        CUSTOMER,
        {
            "userPrincipalName": event["user"]["userPrincipalName"],
            "immutableId": event["user"]["immutableId"],
            "createdDateTime": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        },
    )
    (person,) = harness.users()

    _install(harness, dying=None)
    time.sleep(5.5)  # the dead delivery's claim runs out
    outcome = harness.invoke(event, dequeue_count=2)

    assert outcome["status"] == "already_exists", outcome
    assert outcome["userId"] == person["id"]
    assert outcome["initialPasswordSecretId"] is None
    assert len(harness.users()) == 1
