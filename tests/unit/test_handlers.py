"""The decision against in-memory fakes: every scenario under both MS-RequestId behaviours."""

from __future__ import annotations

import contextlib

import pytest

from shared.domain.errors import RedeliveryRequested, ServiceUnavailableError
from shared.domain.model import HireState
from shared.domain.outcomes import Status
from tests.unit.conftest import RETRY, Bench, Killed, event

UPN = "jane1@contoso.onmicrosoft.com"


def test_a_hire_creates_one_user_with_the_stored_password(bench: Bench) -> None:
    outcome = bench.deliver(event())
    assert outcome.status is Status.CREATED
    bench.assert_one_correct_account(UPN)
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.CREATED and record.user_id == outcome.user_id
    assert record.claim_owner is None
    assert bench.vault.writes == 1 and bench.vault.reads == 0


def test_a_replay_of_a_created_hire_answers_from_the_ledger(bench: Bench) -> None:
    first = bench.deliver(event())
    creates = bench.partner_center.calls["create"]
    again = bench.deliver(event(firstName="Janet"), message_id="m2")  # republished, changed
    assert again.status is Status.ALREADY_EXISTS
    assert again.user_id == first.user_id
    assert again.initial_password_secret_id == first.initial_password_secret_id
    assert bench.partner_center.calls["create"] == creates
    bench.assert_one_correct_account(UPN)


def test_lost_answer_then_failing_lookups_then_throttled_create(bench: Bench) -> None:
    bench.partner_center.create_script = ["lost-after", "throttle"]
    # "ok" is the check before the first create; then the look-ups after the lost answer fail.
    bench.partner_center.find_script = ["ok", "unavailable", "unavailable", "unavailable"]
    outcome = bench.deliver_until_outcome(event())
    assert outcome.status is Status.CREATED  # its own create made the user
    bench.assert_one_correct_account(UPN)


def test_lost_answer_before_apply_creates_on_the_next_try(bench: Bench) -> None:
    bench.partner_center.create_script = ["lost-before"]
    outcome = bench.deliver_until_outcome(event())
    assert outcome.status is Status.CREATED
    bench.assert_one_correct_account(UPN)


@pytest.mark.parametrize("immutable_id", [None, "E1"])
@pytest.mark.parametrize("fault", ["unavailable", "lost-before", None])
def test_a_namesake_holding_the_upn_is_a_conflict(
    bench: Bench, immutable_id: str | None, fault: str | None
) -> None:
    namesake = bench.partner_center.seed(UPN, immutable_id="OTHER" if immutable_id else None)
    if fault:
        bench.partner_center.create_script = [fault]
    outcome = bench.deliver_until_outcome(event(immutable_id=immutable_id))
    assert outcome.status is Status.REJECTED
    assert outcome.failure is not None and outcome.failure.category.value == "conflict"
    assert outcome.user_id is None
    assert namesake.id in outcome.failure.message
    assert len(bench.users(UPN)) == 1
    if immutable_id is None:
        assert bench.partner_center.calls["create"] == 0  # found by the check before it
    else:
        # With an immutableId the create's duplicate answer reveals the holder.
        assert bench.partner_center.calls["create"] <= 2
    assert len(bench.poison.copies) == 1


def test_the_same_person_from_before_already_exists_without_a_password(bench: Bench) -> None:
    existing = bench.partner_center.seed(UPN, immutable_id="E1")
    outcome = bench.deliver(event())
    assert outcome.status is Status.ALREADY_EXISTS
    assert outcome.user_id == existing.id
    assert outcome.initial_password_secret_id is None
    assert bench.partner_center.calls["create"] <= 1  # answered "taken", then looked up


def test_immutable_id_must_match_exactly(bench: Bench) -> None:
    bench.partner_center.seed(UPN, immutable_id="e1")
    outcome = bench.deliver(event(immutable_id="E1"))
    assert outcome.status is Status.REJECTED


def test_a_failed_ledger_write_after_the_create_then_a_corrected_republish(bench: Bench) -> None:
    failures = [ServiceUnavailableError("table 503")] * 3

    def fail_the_created_write(record: object) -> None:
        if getattr(record, "state", None) is HireState.CREATED and failures:
            raise failures.pop()

    bench.ledger.before_update = fail_the_created_write
    with pytest.raises(RedeliveryRequested):
        bench.deliver(event())
    bench.ledger.before_update = None
    outcome = bench.deliver(event(displayName="Jane Q. Doe"), message_id="m2")
    assert outcome.status is Status.CREATED
    bench.assert_one_correct_account(UPN)


def test_the_last_delivery_retries_longer_before_it_gives_up(bench: Bench) -> None:
    # The create went through but its answer was lost; then five throttled answers. Earlier
    # deliveries would hand it back after three tries; the last one has no redelivery behind
    # it and keeps going, so the hire ends created instead of failed with a user nobody knows.
    bench.partner_center.create_script = ["lost-after"] + ["throttle"] * 5
    with pytest.raises(RedeliveryRequested):
        bench.deliver(event(), delivery=1)
    outcome = bench.deliver(event(), delivery=RETRY.max_deliveries)
    assert outcome.status is Status.CREATED
    bench.assert_one_correct_account(UPN)
    assert bench.poison.copies == []


def test_the_last_delivery_tries_ten_times_within_the_budget(bench: Bench) -> None:
    # Nine throttled creates: the last delivery's tenth attempt still ends it created.
    bench.partner_center.create_script = ["throttle"] * 9
    outcome = bench.deliver(event(), delivery=RETRY.max_deliveries)
    assert outcome.status is Status.CREATED
    assert bench.partner_center.calls["create"] == 10
    bench.assert_one_correct_account(UPN)
    assert RETRY.attempts_for(RETRY.max_deliveries) == 10
    assert RETRY.attempts_for(1) == 3


def test_the_budget_ends_the_last_delivery_before_its_attempts_do(bench: Bench) -> None:
    # Long waits asked by the service: the 60 s budget, not the attempt count, ends it.
    bench.partner_center.create_script = ["throttle-30s"] * 9
    started = bench.clock.monotonic()
    outcome = bench.deliver(event(), delivery=RETRY.max_deliveries)
    assert outcome.status is Status.FAILED
    # Waits of 30 s: attempts at 0, 30 and 60 s; a third wait would pass the 60 s budget.
    assert bench.partner_center.calls["create"] == 3
    assert bench.clock.monotonic() - started <= RETRY.budget


def test_a_transient_answer_never_marks_a_hire_refused(bench: Bench) -> None:
    bench.partner_center.create_script = ["throttle"] * 40
    outcome = bench.deliver_until_outcome(event())
    assert outcome.status is Status.FAILED
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.CREATING and record.generation == 0
    assert record.last_outcome and record.last_outcome["status"] == "failed"
    assert record.claim_owner is None
    bench.partner_center.create_script = []
    replayed = bench.deliver(event(), message_id="replay")
    assert replayed.status is Status.CREATED
    assert replayed.initial_password_secret_id == record.password_secret_id


def test_a_refusal_is_recorded_and_a_replay_is_a_new_request(bench: Bench) -> None:
    bench.partner_center.create_script = ["permission"]
    refused = bench.deliver(event())
    assert refused.status is Status.REJECTED
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.REJECTED and record.generation == 1
    assert record.last_outcome and record.last_outcome["status"] == "rejected"
    outcome = bench.deliver(event(), message_id="replay")
    assert outcome.status is Status.CREATED
    bench.outcomes.remove(refused)
    bench.assert_one_correct_account(UPN)


def test_an_expired_password_is_replaced_before_the_user_exists(bench: Bench) -> None:
    bench.partner_center.create_script = ["refuse"]
    bench.deliver(event())
    first_secret = bench.ledger.records["hr-1"].password_secret_id
    bench.clock.advance(8 * 24 * 3600)
    bench.outcomes.clear()
    outcome = bench.deliver(event(), message_id="replay")
    assert outcome.status is Status.CREATED
    assert outcome.initial_password_secret_id != first_secret
    bench.assert_one_correct_account(UPN)


def test_an_expired_password_is_kept_once_a_create_may_have_used_it(bench: Bench) -> None:
    bench.partner_center.create_script = ["lost-after"] + ["throttle"] * 40
    bench.partner_center.find_script = ["ok"] + ["unavailable"] * 40
    assert bench.deliver_until_outcome(event()).status is Status.FAILED
    secret = bench.ledger.records["hr-1"].password_secret_id
    bench.clock.advance(8 * 24 * 3600)
    bench.partner_center.create_script = []
    bench.partner_center.find_script = []
    bench.outcomes.clear()
    outcome = bench.deliver(event(), message_id="replay")
    assert outcome.status is Status.CREATED
    assert outcome.initial_password_secret_id == secret
    bench.assert_one_correct_account(UPN)


def test_a_dead_deliverys_claim_is_taken_over(bench: Bench) -> None:
    bench.gate.kill = True
    paused = bench.run_paused(6, event())  # dies right after its create call was sent
    assert isinstance(paused.finish(), Killed)
    bench.gate.kill = False
    with pytest.raises(RedeliveryRequested):  # the claim is still live: no second create
        bench.deliver(event(), delivery=2)
    bench.clock.advance(300)  # the claim runs out
    outcome = bench.deliver(event(), delivery=3)
    assert outcome.status is Status.CREATED
    bench.assert_one_correct_account(UPN)


def test_the_last_delivery_waits_for_the_other_and_agrees_with_it(bench: Bench) -> None:
    paused = bench.run_paused(5, event())  # holds the claim, about to create
    waiting = bench.deliver(event(), delivery=RETRY.max_deliveries, message_id="dup")
    first = paused.finish()
    assert waiting.status in (Status.CREATED, Status.ALREADY_EXISTS)
    if not isinstance(first, RedeliveryRequested):
        assert first is not None and not isinstance(first, BaseException)
    bench.assert_one_correct_account(UPN)


def _interleavings() -> range:
    return range(1, 14)


@pytest.mark.parametrize("pause_at", _interleavings())
@pytest.mark.parametrize("second_is_last", [False, True])
@pytest.mark.parametrize("immutable_id", [None, "E1"])
def test_two_deliveries_in_every_interleaving(
    bench: Bench, pause_at: int, second_is_last: bool, immutable_id: str | None
) -> None:
    """Delivery A stops at its n-th port call; B runs to its end; then A goes on."""
    body = event(immutable_id=immutable_id)
    paused = bench.run_paused(pause_at, body, message_id="a")
    with contextlib.suppress(RedeliveryRequested):
        bench.deliver(body, delivery=5 if second_is_last else 1, message_id="b")
    first = paused.finish()
    if isinstance(first, RedeliveryRequested):
        bench.deliver_until_outcome(body, first=2, message_id="a")
    elif isinstance(first, BaseException):
        raise first
    if not any(o.status in (Status.CREATED, Status.ALREADY_EXISTS) for o in bench.outcomes):
        bench.deliver_until_outcome(body, first=2, message_id="b")
    bench.assert_one_correct_account(UPN)


@pytest.mark.parametrize("kill_at", range(1, 10))
def test_a_delivery_killed_anywhere_is_finished_by_the_next(bench: Bench, kill_at: int) -> None:
    bench.gate.kill = True
    paused = bench.run_paused(kill_at, event())
    paused.finish()
    bench.gate.kill = False
    bench.clock.advance(300)
    outcome = bench.deliver_until_outcome(event(), first=2)
    assert outcome.status in (Status.CREATED, Status.ALREADY_EXISTS)
    bench.assert_one_correct_account(UPN)


def test_unreadable_and_invalid_bodies_are_rejected_and_poisoned(bench: Bench) -> None:
    unreadable = bench.deliver(b"\xff not json")
    assert unreadable.status is Status.REJECTED and unreadable.event_id is None
    invalid = bench.deliver({**event(), "customerTenantId": "nope"})
    assert invalid.status is Status.REJECTED and invalid.event_id == "hr-1"
    assert len(bench.poison.copies) == 2
    # Issue 15: an invalid event with a usable eventId gets a record in state rejected.
    (record,) = bench.ledger.records.values()
    assert record.event_id == "hr-1" and record.state is HireState.REJECTED
    assert record.customer_tenant_id == ""  # "nope" is no customer id
    assert record.last_outcome and record.last_outcome["status"] == "rejected"


def test_a_poison_write_failure_on_the_last_delivery_still_raises_for_the_host(
    bench: Bench,
) -> None:
    bench.poison.fail = [ServiceUnavailableError("queue down")]
    with pytest.raises(RedeliveryRequested):
        bench.deliver(b"not json", delivery=1)


@pytest.mark.parametrize("immutable_id", [None, "E1"])
def test_a_user_list_without_immutable_ids_still_finds_the_hires_user(
    bench: Bench, immutable_id: str | None
) -> None:
    bench.partner_center.list_omits_immutable_id = True
    bench.partner_center.create_script = ["lost-after"]
    outcome = bench.deliver_until_outcome(event(immutable_id=immutable_id))
    assert outcome.status is Status.CREATED
    bench.assert_one_correct_account(UPN)


def test_a_duplicate_answered_as_plain_400_after_a_lost_answer_is_still_ours(
    bench: Bench,
) -> None:
    bench.partner_center.duplicate_as_plain_400 = True
    bench.partner_center.create_script = ["lost-after"]
    # The look-up right after the lost answer does not see the user yet (listing lags).
    bench.partner_center.find_script = ["ok", "hide"]
    outcome = bench.deliver_until_outcome(event())
    assert outcome.status is Status.CREATED
    bench.assert_one_correct_account(UPN)
