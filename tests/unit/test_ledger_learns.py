"""Issue 15: the record only ever learns. Each test is one reproduced failure, run under both
MS-RequestId behaviours (the ``bench`` fixture): a create whose answer was lost stays on the
record until it is settled, whatever refusals, republishes and replays come after it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from shared.domain.errors import RedeliveryRequested
from shared.domain.model import HireState, SendKind
from shared.domain.outcomes import Status
from shared.domain.passwords import fingerprint
from tests.unit.conftest import CUSTOMER, RETRY, Bench, event

UPN = "jane1@contoso.onmicrosoft.com"
DOMAIN = "contoso.onmicrosoft.com"
OTHER_CUSTOMER = "0d6c4b0e-1b7a-4b8e-9d51-6f2c1a2b3c4d"


def generated(number: int = 1, *, immutable_id: str | None = None, **user: Any) -> dict[str, Any]:
    body = event(number, immutable_id=immutable_id, **user)
    del body["user"]["userPrincipalName"]
    body["schemaVersion"] = "1.1"
    body["user"]["upnDomain"] = DOMAIN
    return body


def lose_then_refuse(bench: Bench, body: dict[str, Any], refusal: str = "permission") -> None:
    """A create is applied but its answer is lost; its repeat is refused for good."""
    bench.partner_center.create_script = ["lost-after", refusal]
    refused = bench.deliver_until_outcome(body)  # the retry within the delivery is refused
    assert refused.status is Status.REJECTED, refused
    bench.outcomes.remove(refused)


def lose(bench: Bench, body: dict[str, Any]) -> None:
    """A create is applied and every answer of the first delivery is lost."""
    bench.partner_center.create_script = ["lost-after", "lost-before", "lost-before"]
    with pytest.raises(RedeliveryRequested):
        bench.deliver(body)


def assert_own_user_with_its_password(bench: Bench, outcome: Any, upn: str) -> None:
    holders = bench.users(upn)
    assert len(holders) == 1, f"{len(holders)} users hold {upn}"
    assert outcome.status is Status.CREATED, outcome
    assert outcome.user_id == holders[0].id
    assert outcome.initial_password_secret_id
    password = bench.vault.secrets[outcome.initial_password_secret_id]
    assert fingerprint(password) == holders[0].password_digest


# ------------------------------------------------------------------ item 1: lost, then refused


def test_lost_create_then_403_repeat_replay_reports_the_own_user_not_a_conflict(
    bench: Bench,
) -> None:
    body = event(immutable_id=None)
    lose_then_refuse(bench, body)
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.REJECTED
    assert [send.kind for send in record.sends] == [SendKind.CREATE]  # not forgotten
    replayed = bench.deliver(body, message_id="replay")
    assert_own_user_with_its_password(bench, replayed, UPN)
    assert bench.ledger.records["hr-1"].sends == ()  # settled: proven applied


def test_lost_create_then_plain_400_duplicate_with_a_lagging_list_replay_is_created(
    bench: Bench,
) -> None:
    bench.partner_center.duplicate_as_plain_400 = True
    bench.partner_center.create_script = ["lost-after"]
    bench.partner_center.find_script = ["ok", "hide"]  # the check, then one lagging read
    body = event(immutable_id=None)
    second = bench.deliver_until_outcome(body)
    if second.status is Status.REJECTED:  # forgets the MS-RequestId: 400, the list lags
        bench.outcomes.remove(second)
        second = bench.deliver(body, message_id="replay")
    assert_own_user_with_its_password(bench, second, UPN)


def test_lost_create_then_403_with_a_generated_upn_never_makes_a_second_user(
    bench: Bench,
) -> None:
    body = generated()
    lose_then_refuse(bench, body)
    replayed = bench.deliver(body, message_id="replay")
    assert replayed.user_principal_name == f"jane.doe@{DOMAIN}"
    assert bench.users(f"jane.doe2@{DOMAIN}") == []
    assert_own_user_with_its_password(bench, replayed, f"jane.doe@{DOMAIN}")


def test_lost_create_then_403_with_immutable_id_replay_names_the_secret(bench: Bench) -> None:
    body = event()
    lose_then_refuse(bench, body)
    replayed = bench.deliver(body, message_id="replay")
    assert_own_user_with_its_password(bench, replayed, UPN)


def test_a_rehire_whose_reset_was_refused_sends_the_reset_on_replay(bench: Bench) -> None:
    deleted = bench.partner_center.seed(UPN, immutable_id="E1", state="inactive")
    bench.partner_center.reset_script = ["permission"]
    refused = bench.deliver(event())
    assert refused.status is Status.REJECTED
    assert deleted.state == "active"  # the restore went through
    record = bench.ledger.records["hr-1"]
    assert [send.kind for send in record.sends] == [SendKind.RESTORE]
    replayed = bench.deliver(event(), message_id="replay")
    assert replayed.status is Status.RESTORED, replayed
    assert replayed.initial_password_secret_id
    password = bench.vault.secrets[replayed.initial_password_secret_id]
    assert fingerprint(password) == deleted.password_digest


def test_the_identity_rule_sees_a_create_sent_before_an_earlier_refusal(bench: Bench) -> None:
    # Lost, refused, replay refused again (before any look-up), then the fix and a replay.
    body = event(immutable_id=None)
    lose_then_refuse(bench, body)
    bench.partner_center.create_script = ["permission"]
    again = bench.deliver(body, message_id="replay-1")
    assert again.status is Status.REJECTED
    bench.outcomes.remove(again)
    replayed = bench.deliver(body, message_id="replay-2")
    assert_own_user_with_its_password(bench, replayed, UPN)


def test_an_upn_check_that_was_skipped_is_not_recorded_as_done(bench: Bench) -> None:
    lose(bench, event())  # immutableId and a given UPN: no look-up before the create
    (send,) = bench.ledger.records["hr-1"].sends
    assert send.upn_checked is False and send.immutable_id == "E1"


# ------------------------------------------------------------------ item 2: identity is fixed


@pytest.mark.parametrize(
    "edit",
    [
        {"immutable_id": None},  # removed
        {"immutable_id": "E2"},  # changed
        {"userPrincipalName": "jane.other@contoso.onmicrosoft.com"},
    ],
    ids=["immutable-id-removed", "immutable-id-changed", "upn-changed"],
)
def test_an_edit_after_a_create_that_may_have_been_applied_is_refused(
    bench: Bench, edit: dict[str, Any]
) -> None:
    lose(bench, event())
    # The edit waits for the earlier send on every delivery but the last, which refuses it.
    with pytest.raises(RedeliveryRequested):
        bench.deliver(event(**edit), message_id="republish")
    edited = bench.deliver_until_outcome(event(**edit), first=2, message_id="republish")
    assert edited.status is Status.REJECTED
    assert edited.failure is not None
    assert UPN in edited.failure.message and "E1" in edited.failure.message
    bench.outcomes.remove(edited)
    assert len(bench.partner_center.users) == 1
    # The original, replayed, finishes the hire with its own user.
    replayed = bench.deliver(event(), message_id="replay")
    assert_own_user_with_its_password(bench, replayed, UPN)


def test_an_edit_waits_for_the_earlier_send_and_then_gets_the_hires_answer(bench: Bench) -> None:
    """Found by the short soak: a changed republish met a create whose delivery was waiting
    for its redelivery; refused at once, the event had two final outcomes (rejected, then
    created). The edit now waits, and once the original settles it is answered from the
    record, like any republish of a hire that succeeded."""
    lose(bench, event())
    with pytest.raises(RedeliveryRequested):
        bench.deliver(event(userPrincipalName="jane.moved@contoso.onmicrosoft.com"), message_id="r")
    original = bench.deliver(event(), delivery=2)
    assert original.status is Status.CREATED
    edited = bench.deliver(
        event(userPrincipalName="jane.moved@contoso.onmicrosoft.com"), delivery=2, message_id="r"
    )
    assert edited.status is Status.ALREADY_EXISTS
    assert edited.user_id == original.user_id
    assert len(bench.partner_center.users) == 1


def test_adding_an_immutable_id_after_a_lost_create_is_refused(bench: Bench) -> None:
    lose(bench, event(immutable_id=None))
    edited = bench.deliver_until_outcome(event(immutable_id="E9"), message_id="republish")
    assert edited.status is Status.REJECTED
    assert len(bench.partner_center.users) == 1


def test_an_edit_after_a_definite_refusal_is_taken(bench: Bench) -> None:
    bench.partner_center.create_script = ["refuse"]
    refused = bench.deliver(event())
    assert refused.status is Status.REJECTED
    bench.outcomes.remove(refused)
    other = "jane.q@contoso.onmicrosoft.com"
    edited = bench.deliver(event(userPrincipalName=other), message_id="republish")
    assert edited.status is Status.CREATED
    assert edited.user_principal_name == other


def test_the_record_follows_a_corrected_customer(bench: Bench) -> None:
    bench.partner_center.create_script = ["permission"]  # e.g. "not a customer"
    bench.deliver(event())
    corrected = event()
    corrected["customerTenantId"] = OTHER_CUSTOMER
    outcome = bench.deliver(corrected, message_id="republish")
    assert outcome.status is Status.CREATED
    assert outcome.customer_tenant_id == OTHER_CUSTOMER
    assert bench.ledger.records["hr-1"].customer_tenant_id == OTHER_CUSTOMER
    again = bench.deliver(corrected, message_id="again")
    assert again.status is Status.ALREADY_EXISTS
    assert again.customer_tenant_id == OTHER_CUSTOMER


def test_a_customer_change_after_a_lost_create_is_refused(bench: Bench) -> None:
    lose(bench, event())
    moved = event()
    moved["customerTenantId"] = OTHER_CUSTOMER
    outcome = bench.deliver_until_outcome(moved, message_id="republish")
    assert outcome.status is Status.REJECTED
    assert outcome.failure is not None and CUSTOMER in outcome.failure.message
    assert bench.ledger.records["hr-1"].customer_tenant_id == CUSTOMER


# ------------------------------------------------------------------ item 3: one outcome story


@pytest.mark.parametrize("later", [600, 0], ids=["minutes-later", "same-second"])
def test_a_waiting_duplicate_never_adopts_an_older_rejection(bench: Bench, later: int) -> None:
    bench.partner_center.create_script = ["permission"]
    old = bench.deliver(event())
    assert old.status is Status.REJECTED
    bench.outcomes.remove(old)
    # The operator fixed the role and replayed; that replay died holding the claim.
    # (FINDINGS-15 F6: in the same second as the old refusal too.)
    bench.clock.advance(later)
    record = bench.ledger.records["hr-1"]
    bench.ledger.records["hr-1"] = record.evolve(
        claim_owner="dead-replay", claim_expires_at=bench.clock.now + timedelta(minutes=4)
    )
    outcome = bench.deliver(event(), delivery=RETRY.max_deliveries, message_id="duplicate")
    assert outcome.status is Status.CREATED, outcome
    bench.assert_one_correct_account(UPN)


# ------------------------------------------------------------------ the preview agrees


def preview(bench: Bench, body: dict[str, Any]) -> Any:
    from ops.preview import Previewer
    from shared.domain.upn import DEFAULT_TEMPLATE

    (verdict,) = Previewer(
        bench.partner_center,
        upn_template=DEFAULT_TEMPLATE,
        ledger=bench.ledger,
        directory=bench.directory,
    ).preview([json.dumps(body)])
    return verdict


@pytest.mark.parametrize("immutable_id", [None, "E1"], ids=["without-immutable-id", "with"])
def test_the_preview_of_a_hire_left_creating_predicts_created(
    bench: Bench, immutable_id: str | None
) -> None:
    body = event(immutable_id=immutable_id)
    lose(bench, body)
    verdict = preview(bench, body)
    assert verdict.expected_status == "created", verdict
    assert verdict.user_principal_name == UPN
    replayed = bench.deliver(body, message_id="replay")
    assert replayed.status.value == verdict.expected_status


def test_the_preview_of_a_generated_upn_left_creating_predicts_the_same_upn(
    bench: Bench,
) -> None:
    body = generated()
    lose_then_refuse(bench, body)
    verdict = preview(bench, body)
    assert verdict.expected_status == "created", verdict
    assert verdict.user_principal_name == f"jane.doe@{DOMAIN}"
    replayed = bench.deliver(body, message_id="replay")
    assert replayed.user_principal_name == verdict.user_principal_name


def test_the_preview_of_an_unfinished_rehire_predicts_restored(bench: Bench) -> None:
    bench.partner_center.seed(UPN, immutable_id="E1", state="inactive")
    bench.partner_center.reset_script = ["permission"]
    bench.deliver(event())
    verdict = preview(bench, event())
    assert verdict.expected_status == "restored", verdict
    assert bench.deliver(event(), message_id="replay").status.value == "restored"


def test_the_preview_of_an_edited_event_after_a_lost_create_predicts_the_refusal(
    bench: Bench,
) -> None:
    lose(bench, event())
    verdict = preview(bench, event(immutable_id="E2"))
    assert verdict.expected_status == "rejected" and "immutableId" in verdict.detail
    edited = bench.deliver_until_outcome(event(immutable_id="E2"), message_id="edit")
    assert edited.status.value == "rejected"


# ------------------------------------------------------------------ FINDINGS-15 (state machine)


def test_f1_an_old_copy_with_the_wrong_customer_reports_the_corrected_one(bench: Bench) -> None:
    wrong = event(immutable_id=None)
    wrong["customerTenantId"] = OTHER_CUSTOMER
    bench.partner_center.create_script = ["permission"]  # "not a customer"
    first = bench.deliver(wrong)
    assert first.status is Status.REJECTED
    right = event(immutable_id=None)
    created = bench.deliver(right, message_id="republish")
    assert created.status is Status.CREATED and created.customer_tenant_id == CUSTOMER
    old_copy = bench.deliver(wrong, message_id="old-copy")
    assert old_copy.status is Status.ALREADY_EXISTS
    assert old_copy.customer_tenant_id == CUSTOMER
    assert bench.ledger.records["hr-1"].customer_tenant_id == CUSTOMER


def test_f2_the_last_delivery_after_a_dead_replay_does_not_report_the_old_403(
    bench: Bench,
) -> None:
    from tests.unit.conftest import Killed

    body = event(immutable_id=None)
    bench.partner_center.create_script = ["permission"]
    old = bench.deliver(body)
    assert old.status is Status.REJECTED
    bench.outcomes.remove(old)
    bench.clock.advance(600)  # the role is restored; the poison copy replayed
    bench.gate.kill = True
    paused = bench.run_paused(4, body, message_id="replay")
    assert isinstance(paused.finish(), Killed)
    bench.gate.kill = False
    for number in range(2, RETRY.max_deliveries):
        with pytest.raises(RedeliveryRequested):
            bench.deliver(body, delivery=number, message_id="replay")
    last = bench.deliver(body, delivery=RETRY.max_deliveries, message_id="replay")
    assert last.status is Status.CREATED, last
    bench.assert_one_correct_account(UPN)


def test_a_waiting_duplicate_adopts_the_refusal_of_the_delivery_it_waited_for(
    bench: Bench,
) -> None:
    from shared.domain.outcomes import Category, Failure, Outcome

    # Another delivery holds the claim of a hire nothing was sent for yet ...
    bench.deliver(event())  # creates the user (the record is then reset below)
    bench.outcomes.clear()
    record = bench.ledger.records["hr-1"]
    bench.ledger.records["hr-1"] = record.evolve(
        state=HireState.NEW,
        last_outcome=None,
        claim_owner="other",
        claim_expires_at=bench.clock.now + timedelta(minutes=4),
    )
    refusal = Outcome(
        event_id="hr-1",
        status=Status.REJECTED,
        customer_tenant_id=CUSTOMER,
        user_principal_name=UPN,
        correlation_id=None,
        attempts=1,
        failure=Failure(category=Category.VALIDATION, message="refused meanwhile"),
        completed_at="2026-11-30T09:00:00Z",
    )
    reads = 0
    real_get = bench.ledger.get

    def get(event_id: str) -> Any:
        nonlocal reads
        reads += 1
        if reads == 2:  # ... and refuses the hire while this one waits
            current = bench.ledger.records[event_id]
            bench.ledger.records[event_id] = current.evolve(
                state=HireState.REJECTED,
                last_outcome=refusal.as_message(),
                claim_owner=None,
                claim_expires_at=None,
            )
        return real_get(event_id)

    bench.ledger.get = get  # type: ignore[method-assign]
    calls = dict(bench.partner_center.calls)
    outcome = bench.deliver(event(), delivery=RETRY.max_deliveries, message_id="duplicate")
    assert outcome.status is Status.REJECTED
    assert outcome.failure is not None and outcome.failure.message == "refused meanwhile"
    assert bench.partner_center.calls == calls  # it called nobody


# ------------------------------------------------------------------ invalid events


def test_an_invalid_event_gets_a_rejected_record_and_a_valid_republish_creates(
    bench: Bench,
) -> None:
    invalid = event()
    invalid["user"]["usageLocation"] = "XX"
    refused = bench.deliver(invalid)
    assert refused.status is Status.REJECTED
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.REJECTED and record.customer_tenant_id == CUSTOMER
    bench.outcomes.remove(refused)
    created = bench.deliver(event(), message_id="republish")
    assert created.status is Status.CREATED
    bench.assert_one_correct_account(UPN)


def test_an_invalid_copy_never_touches_an_existing_record(bench: Bench) -> None:
    created = bench.deliver(event())
    before = bench.ledger.records["hr-1"]
    invalid = event()
    invalid["user"]["usageLocation"] = "XX"
    assert bench.deliver(invalid, message_id="bad-copy").status is Status.REJECTED
    assert bench.ledger.records["hr-1"] == before
    assert bench.ledger.records["hr-1"].etag == before.etag
    assert created.status is Status.CREATED


# ------------------------------------------------------------------ rows from before


@pytest.mark.parametrize("immutable_id", [None, "E1"], ids=["without-immutable-id", "with"])
def test_a_creating_row_written_before_sends_were_kept_is_finished(
    bench: Bench, immutable_id: str | None
) -> None:
    from shared.adapters.ledger import to_entity, to_record

    body = event(immutable_id=immutable_id)
    lose(bench, body)
    # The row as the previous version wrote it: no Sends column, UpnChecked and CreateCalls.
    entity = to_entity(bench.ledger.records["hr-1"])
    entity.pop("Sends")

    class Row(dict):  # type: ignore[type-arg]
        metadata: dict[str, str] = {}  # noqa: RUF012

    old = to_record(Row(entity)).evolve(etag=bench.ledger.records["hr-1"].etag)
    assert [send.identity_known for send in old.sends] == [False]
    bench.ledger.records["hr-1"] = old
    replayed = bench.deliver(body, delivery=2)
    assert_own_user_with_its_password(bench, replayed, UPN)


def test_f7_a_ledger_fault_on_the_first_read_never_lets_an_old_refusal_be_adopted(
    bench: Bench,
) -> None:
    from shared.domain.errors import ServiceUnavailableError

    body = event(immutable_id=None)
    bench.partner_center.create_script = ["permission"]
    old = bench.deliver(body)
    assert old.status is Status.REJECTED
    bench.outcomes.remove(old)
    record = bench.ledger.records["hr-1"]
    bench.ledger.records["hr-1"] = record.evolve(
        claim_owner="dead-replay", claim_expires_at=bench.clock.now + timedelta(minutes=4)
    )
    # The insert tried first fails (not a conflict): the record is read on the retry.
    bench.ledger.fail_next["add"] = [ServiceUnavailableError("table unavailable")]
    outcome = bench.deliver(body, delivery=RETRY.max_deliveries, message_id="duplicate")
    assert outcome.status is Status.CREATED, outcome
    bench.assert_one_correct_account(UPN)


def test_f8_a_holder_with_an_immutable_id_was_not_made_by_a_create_without_one(
    bench: Bench,
) -> None:
    from tests.unit.conftest import Killed

    body = event(immutable_id=None)
    bench.gate.kill = True
    # Dies just before its create goes out; the record says a create may have been sent.
    paused = bench.run_paused(5, body)  # add, look-up, password, record, (create)
    assert isinstance(paused.finish(), Killed)
    bench.gate.kill = False
    assert bench.ledger.records["hr-1"].state is HireState.CREATING
    assert bench.partner_center.calls["create"] == 0
    other = bench.partner_center.seed(UPN, immutable_id="SOMEONE-ELSE")
    bench.clock.advance(300)  # the dead delivery's claim runs out
    outcome = bench.deliver(body, delivery=2)
    assert outcome.status is Status.REJECTED
    assert outcome.failure is not None and other.id in outcome.failure.message
    assert bench.ledger.records["hr-1"].sends == ()  # settled: it never applied


def test_f9_a_delivery_that_fails_unexpectedly_frees_the_claim(bench: Bench) -> None:
    from shared.domain.errors import ServiceUnavailableError

    bench.partner_center.create_script = ["permission", "permission"]
    bench.poison.fail = [ServiceUnavailableError("queue down")]
    with pytest.raises(RedeliveryRequested):
        bench.deliver(event(), delivery=1)
    assert bench.ledger.records["hr-1"].claim_owner is None
    refused = bench.deliver(event(), delivery=2)  # no waiting for a dead claim
    assert refused.status is Status.REJECTED


def test_f10_a_refusal_after_another_delivery_finished_the_hire_reports_that_success(
    bench: Bench,
) -> None:
    body = event(immutable_id=None)
    bench.partner_center.create_script = ["permission"]
    real_get = bench.ledger.get
    made: list[Any] = []

    def get(event_id: str) -> Any:
        current = bench.ledger.records.get(event_id)
        if current is not None and current.state is HireState.REJECTED and not made:
            # This delivery's claim ran out while it was refused; another delivery took the
            # hire over and made its user.
            user = bench.partner_center.seed(UPN)
            made.append(user)
            bench.ledger.records[event_id] = current.evolve(
                state=HireState.CREATED,
                user_id=user.id,
                claim_owner=None,
                claim_expires_at=None,
                last_outcome={"status": "created", "userId": user.id},
            )
        return real_get(event_id)

    bench.ledger.get = get  # type: ignore[method-assign]
    outcome = bench.deliver(body)
    assert outcome.status is Status.ALREADY_EXISTS, outcome
    assert outcome.user_id == made[0].id
    assert bench.poison.copies == []
    last = bench.ledger.records["hr-1"].last_outcome
    assert last is not None and last["status"] == "created"


def test_f11_a_success_written_while_the_poison_copy_was_written_is_reported(
    bench: Bench,
) -> None:
    body = event(immutable_id=None)
    bench.partner_center.create_script = ["permission"]
    real_poison = bench.poison.poison_event
    made: list[Any] = []

    def poison_event(document: dict[str, Any], failure: Any, *, attempts: int) -> None:
        real_poison(document, failure, attempts=attempts)
        # Meanwhile another delivery (this one's claim ran out) made the hire's user.
        user = bench.partner_center.seed(UPN)
        made.append(user)
        current = bench.ledger.records["hr-1"]
        bench.ledger.records["hr-1"] = current.evolve(
            state=HireState.CREATED, user_id=user.id, claim_owner=None, claim_expires_at=None
        )

    bench.poison.poison_event = poison_event  # type: ignore[method-assign]
    outcome = bench.deliver(body)
    assert outcome.status is Status.ALREADY_EXISTS, outcome
    assert outcome.user_id == made[0].id
    assert bench.ledger.records["hr-1"].state is HireState.CREATED
