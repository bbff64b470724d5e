"""Issue 17 item 3, "Fewer writes per hire": a hire's likely first delivery (dequeueCount 1, no
``replay`` member, a UPN created without look-ups up front) writes the password, inserts the
record already in ``creating`` (claimed, with the send), creates the user and updates the record:
two table calls and one Key Vault write. Every other delivery, and every delivery that meets an
existing record, goes on as before. Run under both MS-RequestId behaviours."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.domain.errors import LedgerConflict, RedeliveryRequested, ServiceUnavailableError
from shared.domain.model import HireState
from shared.domain.outcomes import Outcome, Status
from shared.domain.passwords import fingerprint
from shared.service.intake import hire_status
from tests.unit.conftest import Bench, Killed, event
from tests.unit.test_ledger_learns import UPN, generated, lose, preview

ONE_WRITE = ["vault.store", "ledger.add", "pc.create_user", "ledger.update"]


@pytest.fixture(params=[True, False], ids=["remembers-request-id", "forgets-request-id"])
def bench(request: pytest.FixtureRequest) -> Bench:
    bench = Bench(remembers=request.param, directory_mode="consented")
    bench.partner_center.clock = bench.clock
    return bench


def record_calls(bench: Bench) -> list[str]:
    """Every call the decision makes to the vault, the ledger and Partner Center, in order."""
    calls: list[str] = []

    def wrap(prefix: str, port: Any, names: tuple[str, ...]) -> None:
        for name in names:
            inner: Callable[..., Any] = getattr(port, name)

            def recorded(*args: Any, _name: str = name, _inner: Any = inner, **kw: Any) -> Any:
                calls.append(f"{prefix}.{_name}")
                return _inner(*args, **kw)

            setattr(port, name, recorded)

    wrap("vault", bench.vault, ("store", "read"))
    wrap("ledger", bench.ledger, ("get", "add", "update"))
    wrap(
        "pc",
        bench.partner_center,
        ("create_user", "find_user_by_upn", "get_user", "restore_user", "reset_password"),
    )
    if bench.directory is not None:
        wrap("directory", bench.directory, ("find_user_by_upn",))
    return calls


def named_secrets(bench: Bench) -> set[str]:
    record = bench.ledger.records["hr-1"]
    named = {record.password_secret_id} | {send.password_secret_id for send in record.sends}
    named |= {o.initial_password_secret_id for o in bench.outcomes}
    return {secret for secret in named if secret}


def assert_created_with_its_password(bench: Bench, outcome: Any, *, attempts: int = 1) -> None:
    assert outcome.status is Status.CREATED, outcome
    (user,) = bench.partner_center.holders(UPN)
    assert outcome.user_id == user.id
    secret = outcome.initial_password_secret_id
    assert fingerprint(bench.vault.secrets[secret]) == user.password_digest
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.CREATED and record.password_secret_id == secret
    assert record.claim_owner is None and record.attempts == attempts


@pytest.mark.parametrize("immutable_id", ["E1", None])
def test_the_common_path_is_one_vault_write_an_insert_the_create_and_an_update(
    bench: Bench, immutable_id: str | None
) -> None:
    calls = record_calls(bench)
    outcome = bench.deliver(event(immutable_id=immutable_id))
    assert calls == ONE_WRITE
    assert_created_with_its_password(bench, outcome)
    assert bench.ledger.records["hr-1"].last_outcome == outcome.as_message()


def test_the_insert_carries_the_send_before_the_create_goes_out(bench: Bench) -> None:
    seen: list[Any] = []
    bench.partner_center.on_create = lambda: seen.append(bench.ledger.records["hr-1"])
    bench.deliver(event())
    (record,) = seen
    assert record.state is HireState.CREATING and record.attempts == 1
    assert record.claim_owner is not None and record.identity_fixed
    (send,) = record.sends
    assert send.user_principal_name == UPN and send.immutable_id == "E1" and send.calls == 1
    assert not send.upn_checked and send.first_sent_at == bench.clock.now
    assert send.password_secret_id == record.password_secret_id
    assert send.password_expires_on == bench.vault.expiries[send.password_secret_id]


@pytest.mark.parametrize(
    "case",
    ["redelivery", "replay", "generated-upn", "no-immutable-id-unknown-directory", "no-directory"],
)
def test_every_other_delivery_inserts_the_new_record_first_as_before(case: str) -> None:
    bench = Bench(
        remembers=True,
        directory_mode=None
        if case == "no-directory"
        else ("unknown" if case.startswith("no-immutable") else "consented"),
    )
    calls = record_calls(bench)
    body = event(immutable_id=None if case.startswith("no-immutable") else "E1")
    if case == "replay":
        body["replay"] = {"count": 1, "lastReplayedAt": "2026-11-30T10:00:00Z"}
    if case == "generated-upn":
        body = generated(immutable_id="E1")
    outcome = bench.deliver(body, delivery=2 if case == "redelivery" else 1)
    assert outcome.status is Status.CREATED, outcome
    assert calls[0] == "ledger.add" and calls.index("ledger.add") < calls.index("vault.store")
    assert calls.count("ledger.update") == 2


def test_a_duplicate_first_delivery_loses_the_insert_and_its_version_is_never_named(
    bench: Bench,
) -> None:
    # The first delivery stops before its create (port calls: store, add, create).
    paused = bench.run_paused(3, event(), delivery=1, message_id="m1")
    assert bench.ledger.records["hr-1"].state is HireState.CREATING
    calls = record_calls(bench)
    with pytest.raises(RedeliveryRequested):
        bench.deliver(event(), delivery=1, message_id="m2")  # waits, then asks again
    assert calls[:3] == ["vault.store", "ledger.add", "ledger.get"]
    assert "pc.create_user" not in calls
    first = paused.finish()
    assert isinstance(first, Outcome)
    assert_created_with_its_password(bench, first)
    second = bench.deliver(event(), delivery=2, message_id="m2")
    assert second.status is Status.ALREADY_EXISTS
    assert second.initial_password_secret_id == first.initial_password_secret_id
    assert len(bench.vault.secrets) == 2 and named_secrets(bench) == {
        first.initial_password_secret_id
    }


def test_a_vault_failure_before_the_insert_leaves_nothing_behind(bench: Bench) -> None:
    bench.vault.fail_next = [ServiceUnavailableError("vault 503", http_status=503)] * 3
    with pytest.raises(RedeliveryRequested):
        bench.deliver(event())  # every retry within the invocation fails too
    assert bench.ledger.records == {} and bench.vault.secrets == {}
    assert bench.partner_center.calls["create"] == 0
    outcome = bench.deliver(event(), delivery=2)
    assert_created_with_its_password(bench, outcome)


def test_a_vault_failure_is_retried_within_the_invocation_on_the_same_path(bench: Bench) -> None:
    calls = record_calls(bench)
    bench.vault.fail_next = [ServiceUnavailableError("vault 503", http_status=503)]
    outcome = bench.deliver(event())
    assert calls == ["vault.store", *ONE_WRITE]
    assert_created_with_its_password(bench, outcome)


def test_an_insert_that_failed_before_it_applied_is_retried_by_reading_first(
    bench: Bench,
) -> None:
    bench.ledger.fail_next["add"] = [ServiceUnavailableError("table 503", http_status=503)]
    outcome = bench.deliver(event())
    assert_created_with_its_password(bench, outcome)
    # The first version was never inserted: no record or outcome names it.
    assert len(bench.vault.secrets) == 2 and len(named_secrets(bench)) == 1


def test_an_insert_whose_answer_was_lost_is_taken_up_as_this_deliverys_own(
    bench: Bench,
) -> None:
    calls = record_calls(bench)
    bench.ledger.lose_answer["add"] = [ServiceUnavailableError("connection reset")]
    outcome = bench.deliver(event())
    assert_created_with_its_password(bench, outcome)
    # Read, recognised as its own claim (no wait, no take-over), the create sent once.
    assert calls[:3] == ["vault.store", "ledger.add", "ledger.get"]
    assert bench.partner_center.calls["create"] == 1 and len(bench.vault.secrets) == 1


@pytest.mark.parametrize("immutable_id", ["E1", None])
def test_a_lost_insert_answer_counts_the_create_once_and_a_taken_refusal_is_no_applied_call(
    bench: Bench, immutable_id: str | None
) -> None:
    """F14 on the insert path: the insert that records the create call applies but its answer
    is lost; the retry reads it back and sends under it (one call counted, one sent). Someone
    else took the UPN meanwhile: the refusal leaves no call that may have made that user, so
    the hire is a conflict, never someone else's user reported created."""
    bench.ledger.lose_answer["add"] = [ServiceUnavailableError("connection reset")]
    someone: list[Any] = []
    bench.partner_center.on_create = lambda: someone or someone.append(
        bench.partner_center.seed(UPN, immutable_id="SOMEONE-ELSE", created_at=bench.clock())
    )

    outcome = bench.deliver(event(immutable_id=immutable_id))

    assert outcome.status is Status.REJECTED and outcome.failure is not None
    assert outcome.failure.category.value == "conflict", outcome
    assert bench.partner_center.calls["create"] == 1


def test_an_insert_conflict_on_its_own_record_continues_it(bench: Bench) -> None:
    """A client that retried the insert itself after a lost answer gets 409 on its own row."""
    bench.ledger.lose_answer["add"] = [LedgerConflict("exists (the retry of our own insert)")]
    outcome = bench.deliver(event())
    assert_created_with_its_password(bench, outcome)
    assert bench.partner_center.calls["create"] == 1


@pytest.mark.parametrize("kill_at", [2, 3], ids=["before-insert", "before-create"])
def test_a_delivery_killed_around_the_insert_is_finished_by_the_next(
    bench: Bench, kill_at: int
) -> None:
    bench.gate.thread = threading.current_thread()
    bench.gate.at, bench.gate.kill = kill_at, True
    with pytest.raises(Killed):
        bench.deliver(event())
    bench.gate.thread = None
    if kill_at == 2:
        assert bench.ledger.records == {}
    else:
        assert bench.ledger.records["hr-1"].state is HireState.CREATING
    bench.clock.advance(300)  # the dead delivery's claim runs out
    outcome = bench.deliver(event(), delivery=2)
    assert_created_with_its_password(bench, outcome, attempts=1 if kill_at == 2 else 2)
    if kill_at == 3:  # the recorded password is the one the create carried
        assert len(bench.vault.secrets) == 1


def test_a_lost_create_answer_after_the_insert_is_settled_by_the_resend(bench: Bench) -> None:
    bench.partner_center.create_script = ["lost-after"]
    outcome = bench.deliver(event())
    assert_created_with_its_password(bench, outcome)
    assert len(bench.vault.secrets) == 1


def test_a_rehire_found_by_the_create_is_restored_from_the_creating_record(
    bench: Bench,
) -> None:
    deleted = bench.partner_center.seed(UPN, immutable_id="E1", state="inactive")
    outcome = bench.deliver(event())
    assert outcome.status is Status.RESTORED and outcome.user_id == deleted.id
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.RESTORED
    secret = outcome.initial_password_secret_id
    assert secret is not None
    assert fingerprint(bench.vault.secrets[secret]) == deleted.password_digest
    assert len(bench.vault.secrets) == 1  # the password written first is the restore's


@pytest.mark.parametrize("refusal", ["permission", "refuse"])
def test_a_refusal_after_the_insert_settles_the_send(bench: Bench, refusal: str) -> None:
    bench.partner_center.create_script = [refusal]
    outcome = bench.deliver(event())
    assert outcome.status is Status.REJECTED
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.REJECTED and not record.identity_fixed
    assert record.generation == 1 and record.claim_owner is None
    # An edited republish after a definite refusal is taken (nothing was applied).
    fixed = bench.deliver(event(immutable_id="E2"), message_id="m2", delivery=2)
    assert fixed.status is Status.CREATED
    assert bench.partner_center.holders(UPN)[0].immutable_id == "E2"


def test_an_edited_republish_meets_the_fixed_identity_and_waits(bench: Bench) -> None:
    bench.partner_center.create_script = ["lost-before"] * 3  # the first create stays unsettled
    with pytest.raises(RedeliveryRequested):
        bench.deliver(event())
    assert bench.ledger.records["hr-1"].identity_fixed
    with pytest.raises(RedeliveryRequested, match="waits for it"):
        bench.deliver(event(immutable_id="E2"), message_id="m2")
    assert bench.ledger.records["hr-1"].sends[0].immutable_id == "E1"
    assert bench.partner_center.calls["create"] == 3


def test_a_creating_record_reads_as_creating_for_the_status_api(bench: Bench) -> None:
    paused = bench.run_paused(3, event(), delivery=1)
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.CREATING and record.create_calls == 1
    assert record.user_principal_name == UPN and record.current_secret is not None
    status = hire_status(record)
    assert status.state is HireState.CREATING and status.attempts == 1
    assert status.user_principal_name == UPN and status.initial_password_secret_id is None
    paused.finish()
    assert hire_status(bench.ledger.records["hr-1"]).state is HireState.CREATED


@pytest.mark.parametrize("immutable_id", ["E1", None], ids=["with", "without-immutable-id"])
def test_the_preview_of_a_one_write_record_left_creating_predicts_created(
    bench: Bench, immutable_id: str | None
) -> None:
    # Without immutableId the send is unchecked and only the directory's creation time tells
    # the hire's user: hire-preview looks the UPN up where the function does (the directory,
    # here consented), not in Partner Center's user list, which has no creation time.
    body = event(immutable_id=immutable_id)
    lose(bench, body)  # applied; every answer of the first delivery lost
    assert bench.ledger.records["hr-1"].state is HireState.CREATING
    verdict = preview(bench, body)
    assert verdict.expected_status == "created", verdict
    assert verdict.user_principal_name == UPN
    replayed = bench.deliver(body, delivery=2)
    assert replayed.status.value == verdict.expected_status
    assert_created_with_its_password(bench, replayed, attempts=2)


def test_a_user_list_without_immutable_ids_never_makes_someone_else_the_hires_user() -> None:
    """Found by the state machine (a vault fault rule): a create without immutableId whose
    every call was lost before it applied, someone else (with an immutableId) takes the UPN,
    and a user list that leaves immutableId out made the resend's look-up call that person
    this hire's user. The decision now asks for the whole user first."""
    bench = Bench(remembers=False)  # no directory: the path before the one-write one
    bench.partner_center.list_omits_immutable_id = True
    bench.partner_center.create_script = ["lost-before"] * 3
    body = event(immutable_id=None)
    with pytest.raises(RedeliveryRequested):
        bench.deliver(body)
    someone = bench.partner_center.seed(UPN, immutable_id="SOMEONE-ELSE")
    outcome = bench.deliver(body, delivery=2)
    assert outcome.status is Status.REJECTED, outcome
    assert outcome.failure is not None and someone.id in outcome.failure.message
    assert bench.partner_center.holders(UPN) == [someone]


@pytest.mark.parametrize("lost", [["lost-before"], ["lost-before", "lost-before"]])
def test_the_same_person_from_before_is_not_passed_off_as_made_by_a_lost_create(
    bench: Bench, lost: list[str]
) -> None:
    """The identity rule's residual case, closed where the directory gives creation times:
    the same person (same immutableId) already holds the UPN, the create is sent without a
    look-up, its answer is lost, and the resend is answered "taken" (Partner Center never
    applied it, or forgot the MS-RequestId). The holder was made an hour before the first
    call, so no call of this hire made it: ``already_exists`` with no initial password, not
    ``created`` with a password that account does not have."""
    person = bench.partner_center.seed(
        UPN, immutable_id="E1", created_at=bench.clock() - timedelta(hours=1)
    )
    person.tenant = None
    bench.partner_center.create_script = list(lost)

    outcome = bench.deliver(event(immutable_id="E1"))

    assert outcome.status is Status.ALREADY_EXISTS, outcome
    assert outcome.user_id == person.id and outcome.initial_password_secret_id is None
    assert bench.partner_center.holders(UPN) == [person]
    assert bench.ledger.records["hr-1"].state is HireState.EXISTING


def test_the_hires_own_user_after_a_lost_answer_is_still_created(bench: Bench) -> None:
    """The other side of the rule above: a user the lost create did make (created after the
    first call, by the directory's clock) is this hire's, with its password."""
    bench.partner_center.create_script = ["lost-after"]

    outcome = bench.deliver(event(immutable_id="E1"))

    assert_created_with_its_password(bench, outcome)
