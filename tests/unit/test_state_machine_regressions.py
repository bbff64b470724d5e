"""Sequences the stateful test found, replayed step by step as plain regression tests (the
rules and invariants are the state machine's own; see docs/state-machine-tests.md)."""

from __future__ import annotations

import pytest

import tests.unit.test_state_machine as machine


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch) -> machine.HireMachine:
    # note() and event() report to hypothesis, which is not running here.
    monkeypatch.setattr(machine, "note", lambda *args, **kwargs: None)
    monkeypatch.setattr(machine, "event", lambda *args, **kwargs: None)
    return machine.HireMachine()


@pytest.fixture(
    params=[(False, False), (False, True), (True, False), (True, True)],
    ids=["forgets-taken", "forgets-plain-400", "remembers-taken", "remembers-plain-400"],
)
def variant(request: pytest.FixtureRequest) -> dict[str, bool]:
    """Each regression runs under every Partner Center variant the machine draws from:
    remembering ``MS-RequestId`` or not, a duplicate UPN answered as "taken" or as a plain 400
    (the wire's 400 and 409 both read as "taken": tests/unit/test_partner_center_wire.py)."""
    remembers, plain_400 = request.param
    return {
        "remembers": remembers,
        "duplicate_as_plain_400": plain_400,
        "list_omits_immutable_id": False,
    }


def test_a_refused_create_of_a_generated_upn_another_hire_took_is_not_counted_later(
    state: machine.HireMachine, variant: dict[str, bool]
) -> None:
    """F12: hr-1 checks jane.doe@ (free), pauses; hr-2 takes it; hr-1's create is refused
    "taken" while the user list lags. That refusal was the send's only call, so the record
    forgets the send; before, the resend's second refusal left the first counted as "may
    have made the holder", and hr-1 reported hr-2's user as created."""
    state.partner_center_variant(**variant, directory=None)
    state.user_list_lags(reads=1)
    state.publish(customer="right", generated_upn=True, hire=1, immutable_id=None)
    state.publish(customer="right", generated_upn=True, hire=2, immutable_id=None)
    state.interleave(first=0, pause_at=4, second=0, second_last=False)

    state.promises_hold()
    state.teardown()


def test_the_same_person_from_before_is_not_reported_created_after_a_lost_create(
    state: machine.HireMachine, variant: dict[str, bool]
) -> None:
    """F13: the same person (E1) already holds the given UPN; hr-1's create, sent without a
    look-up, loses its answer before Partner Center applies it; the resend is answered
    "taken". The directory's creation time (an hour before the first call) now tells that
    person from a user the lost create made: ``already_exists`` with no initial password.
    Before, the outcome said ``created`` with hr-1's password, which that account lacks."""
    state.partner_center_variant(**variant, directory="consented")
    state.same_person_already_holds_upn(hire=1)
    state.publish(customer="right", generated_upn=False, hire=1, immutable_id="E")
    state.partner_center_fault(call="create", fault="lost-before")
    state.deliver(pick=0, kill_at=None, last=False)

    state.promises_hold()
    state.teardown()


def test_an_edited_republish_reads_the_same_person_its_paused_first_delivery_settled_on(
    state: machine.HireMachine, variant: dict[str, bool]
) -> None:
    """Found with F13's rule (an invariant's gap, not a product bug): hr-2's delivery with
    immutableId E2 settles on the same person from before and pauses before it returns; an
    edited republish without immutableId reads the settled record and answers the same
    ``already_exists``. The invariant now accepts the person of any delivery of the hire that
    settled on that user, whichever ended first."""
    state.partner_center_variant(**variant, directory="consented")
    state.publish(customer="right", generated_upn=False, hire=2, immutable_id=None)
    state.publish(customer="right", generated_upn=True, hire=2, immutable_id="E")
    state.same_person_already_holds_upn(hire=2)
    state.interleave(first=1, pause_at=5, second=0, second_last=False)

    state.promises_hold()
    state.teardown()


def test_a_create_call_recorded_but_never_sent_is_not_counted_twice(
    state: machine.HireMachine, variant: dict[str, bool]
) -> None:
    """F14: hr-1 checks jane.doe@ (free) and writes its create call into the record; that
    write applies but its answer is lost, so the retry reads it back and, before, counted a
    second call. hr-2 takes jane.doe@ meanwhile; hr-1's create (its first real call) is refused
    "taken", and the first, never-sent call was counted as possibly applied: hr-1 reported
    hr-2's user as created, with hr-1's password. The retry now sends under its own write."""
    state.partner_center_variant(**variant, directory="consented")
    state.ledger_fault(error="answer-lost", operation="update")
    state.publish(customer="right", generated_upn=True, hire=1, immutable_id=None)
    state.publish(customer="right", generated_upn=True, hire=2, immutable_id=None)
    state.interleave(first=0, pause_at=7, second=0, second_last=False)

    state.promises_hold()
    state.teardown()


def test_a_holder_made_long_after_the_hires_calls_is_not_its_user(
    state: machine.HireMachine, variant: dict[str, bool]
) -> None:
    """F15 (session 7, the deep profile): hr-1's first delivery writes its create call and
    dies before sending it. A week later the same person (E1) gets the UPN by other means; the
    next delivery's call is answered "taken". Only the first call could have applied, and the
    directory dates the holder a week after it, so it is that person, not this hire's user:
    ``already_exists`` with no initial password. Before, the record knew only the first
    call's time, and the outcome said ``created`` with hr-1's password, which that account
    does not have."""
    state.partner_center_variant(**variant, directory="consented")
    state.publish(customer="right", generated_upn=False, hire=1, immutable_id="E")
    state.deliver(pick=0, kill_at=3, last=False)
    state.duplicate(pick=0)
    state.time_passes(seconds=603000)
    state.same_person_already_holds_upn(hire=1)

    state.promises_hold()
    state.teardown()


def test_a_holder_made_before_a_paused_resend_is_not_its_user(
    state: machine.HireMachine, variant: dict[str, bool]
) -> None:
    """F15, second form: as above, but the resend's call is written by a delivery that pauses
    before sending it, and the last delivery takes over and is refused. The paused call may
    still go out, but it was written after the holder was made, so only the first call (a
    week earlier) could have made it: ``already_exists``, no initial password."""
    state.partner_center_variant(**variant, directory="consented")
    state.publish(customer="right", generated_upn=False, hire=1, immutable_id="E")
    state.deliver(pick=0, kill_at=3, last=False)
    state.deliver(pick=0, kill_at=None, last=False)
    state.time_passes(seconds=603000)
    state.same_person_already_holds_upn(hire=1)
    state.duplicate(pick=0)
    state.interleave(first=0, pause_at=6, second=0, second_last=True)

    state.promises_hold()
    state.teardown()
