"""A send's calls bound when the user it made can have been made (F15): not before its first
call, not long after the last call that may have applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.domain.model import (
    CLOCK_TOLERANCE,
    LATEST_APPLY_AFTER_CALL,
    FoundUser,
    HireRecord,
    Send,
    SendKind,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
UPN = "jane@contoso.onmicrosoft.com"


def send(**changes: object) -> Send:
    values: dict[str, object] = {
        "kind": SendKind.CREATE,
        "user_principal_name": UPN,
        "immutable_id": "E1",
        "calls": 1,
        "first_sent_at": T0,
        "last_sent_at": T0,
    }
    values.update(changes)
    return Send(**values)  # type: ignore[arg-type]


def user(at: datetime | None, immutable_id: str | None = "E1") -> FoundUser:
    return FoundUser(id="u1", user_principal_name=UPN, immutable_id=immutable_id, created_at=at)


def test_a_user_made_between_the_first_call_and_shortly_after_the_last_may_be_its() -> None:
    window_end = T0 + LATEST_APPLY_AFTER_CALL + CLOCK_TOLERANCE
    assert send().may_have_made(user(T0 + timedelta(seconds=2)))
    assert send().may_have_made(user(window_end))
    assert send().may_have_made(user(T0 - CLOCK_TOLERANCE))


def test_a_user_made_before_the_first_call_or_long_after_the_last_is_not() -> None:
    assert not send().may_have_made(user(T0 - CLOCK_TOLERANCE - timedelta(seconds=1)))
    late = T0 + LATEST_APPLY_AFTER_CALL + CLOCK_TOLERANCE + timedelta(seconds=1)
    assert not send().may_have_made(user(late))
    assert send().made_while_sending(user(late)) is False


def test_without_the_times_nothing_is_ruled_out() -> None:
    # Rows written before the call times were kept: only what was known before applies.
    old = send(last_sent_at=None)
    assert old.may_have_made(user(T0 + timedelta(days=7)))
    assert send().made_while_sending(user(None)) is None
    assert send(first_sent_at=None).made_while_sending(user(T0)) is None


def test_a_refused_latest_call_leaves_the_window_of_the_calls_before_it() -> None:
    week = T0 + timedelta(days=7)
    resent = send(calls=2, last_sent_at=week, previous_sent_at=T0)
    holder = user(week - timedelta(minutes=1))
    assert resent.may_have_made(holder)  # the week-later call may have made it
    earlier = resent.without_latest_call()
    assert earlier is not None and earlier.calls == 1 and earlier.last_sent_at == T0
    assert not earlier.may_have_made(holder)  # refused: only the first call counts
    assert send().without_latest_call() is None


def test_the_call_times_survive_the_record() -> None:
    resent = send(calls=2, last_sent_at=T0 + timedelta(days=7), previous_sent_at=T0)
    assert Send.from_json(resent.as_json()) == resent
    row = resent.as_json()
    del row["lastSentAt"], row["previousSentAt"]  # a row written before session 7
    old = Send.from_json(row)
    assert (old.last_sent_at, old.previous_sent_at) == (None, None)


def test_each_call_written_moves_the_window() -> None:
    opened = HireRecord.opened(
        event_id="hr-1",
        customer_tenant_id="c",
        user_principal_name=UPN,
        owner="o",
        claim_until=T0,
        now=T0,
    )
    first = opened.create_sent(
        UPN, immutable_id="E1", upn_checked=False, first_sent_at=T0, sent_at=T0
    )
    later = T0 + timedelta(days=7)
    second = first.create_sent(UPN, immutable_id="E1", upn_checked=False, sent_at=later)
    (sent,) = second.pending_creates
    assert (sent.calls, sent.first_sent_at, sent.last_sent_at, sent.previous_sent_at) == (
        2,
        T0,
        later,
        T0,
    )


def test_a_user_made_in_the_gap_before_a_resend_was_made_by_neither_call() -> None:
    week = T0 + timedelta(days=7)
    resent = send(calls=2, last_sent_at=week, previous_sent_at=T0)
    assert not resent.may_have_made(user(week - timedelta(hours=1)))
    assert resent.may_have_made(user(week + timedelta(seconds=5)))  # the resend's
    assert resent.may_have_made(user(T0 + timedelta(seconds=5)))  # the first call's
    # Three calls, the middle one's time unknown: anything from the first to the last counts.
    thrice = send(calls=3, last_sent_at=week, previous_sent_at=None)
    assert thrice.may_have_made(user(week - timedelta(hours=1)))
    # ... unless the one before the last is known.
    thrice = send(calls=3, last_sent_at=week, previous_sent_at=T0 + timedelta(minutes=1))
    assert not thrice.may_have_made(user(week - timedelta(hours=1)))
