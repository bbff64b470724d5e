"""Schema 1.1 in the decision: generated UPNs, rehires, licences (both MS-RequestId behaviours)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from shared.domain.errors import RedeliveryRequested
from shared.domain.model import HireState
from shared.domain.outcomes import Status
from shared.domain.passwords import fingerprint
from tests.unit.conftest import RETRY, Bench, event

DOMAIN = "contoso.onmicrosoft.com"
JANE = f"jane.doe@{DOMAIN}"
SKU_A = "c42b9cae-ea4f-4ab7-9717-81576235ccac"
SKU_B = "18181a46-0d4e-45cd-891e-60aabd171b4e"
SKU_C = "6fd2c87f-b296-42f0-b197-1e91e994b900"


def generated(number: int = 1, *, immutable_id: str | None = "E1", **extra: Any) -> dict[str, Any]:
    body = event(number, immutable_id=immutable_id)
    del body["user"]["userPrincipalName"]
    body["user"]["upnDomain"] = DOMAIN
    body["schemaVersion"] = "1.1"
    body.update(extra)
    return body


def assert_holds_password(bench: Bench, user_id: str, secret_id: str | None) -> None:
    assert secret_id, "no secret id"
    user = bench.partner_center.user(user_id)
    assert fingerprint(bench.vault.secrets[secret_id]) == user.password_digest


# ---------------------------------------------------------------------------- generated UPNs


def test_a_generated_upn_is_recorded_before_the_create(bench: Bench) -> None:
    recorded: list[str | None] = []

    def before_create() -> None:
        recorded.append(bench.ledger.records["hr-1"].user_principal_name)

    bench.partner_center.on_create = before_create
    outcome = bench.deliver(generated())
    assert outcome.status is Status.CREATED
    assert outcome.user_principal_name == JANE
    assert recorded == [JANE]
    bench.assert_one_correct_account(JANE)


@pytest.mark.parametrize("immutable_id", [None, "E1"])
def test_a_generated_upn_colliding_three_times_gets_the_fourth(
    bench: Bench, immutable_id: str | None
) -> None:
    bench.partner_center.seed(JANE, immutable_id="OTHER")
    bench.partner_center.seed(f"jane.doe2@{DOMAIN}", immutable_id=None)
    bench.partner_center.seed(f"jane.doe3@{DOMAIN}", immutable_id="OTHER3", state="inactive")
    outcome = bench.deliver(generated(immutable_id=immutable_id))
    assert outcome.status is Status.CREATED
    assert outcome.user_principal_name == f"jane.doe4@{DOMAIN}"
    bench.assert_one_correct_account(f"jane.doe4@{DOMAIN}")
    assert bench.partner_center.calls["create"] == 1


def test_a_generated_upn_held_by_this_person_is_this_hires(bench: Bench) -> None:
    bench.partner_center.seed(JANE, immutable_id="OTHER")
    mine = bench.partner_center.seed(f"jane.doe2@{DOMAIN}", immutable_id="E1")
    outcome = bench.deliver(generated())
    assert outcome.status is Status.ALREADY_EXISTS
    assert outcome.user_id == mine.id and outcome.user_principal_name == f"jane.doe2@{DOMAIN}"
    assert bench.partner_center.calls["create"] == 0


@pytest.mark.parametrize("immutable_id", [None, "E1"])
def test_a_lost_answer_never_moves_a_generated_upn_to_the_next_counter(
    bench: Bench, immutable_id: str | None
) -> None:
    bench.partner_center.create_script = ["lost-after"]
    outcome = bench.deliver_until_outcome(generated(immutable_id=immutable_id))
    assert outcome.status is Status.CREATED
    assert outcome.user_principal_name == JANE
    assert bench.users(f"jane.doe2@{DOMAIN}") == []
    bench.assert_one_correct_account(JANE)
    # A replay keeps the recorded UPN, though the first candidate is now held (by this hire).
    again = bench.deliver(generated(immutable_id=immutable_id), message_id="replay")
    assert again.status is Status.ALREADY_EXISTS and again.user_principal_name == JANE


def test_someone_taking_the_upn_between_check_and_create_moves_to_the_next(bench: Bench) -> None:
    def namesake_first() -> None:
        if not bench.users(JANE):
            bench.partner_center.seed(JANE, immutable_id="OTHER")

    bench.partner_center.on_create = namesake_first
    outcome = bench.deliver(generated())
    assert outcome.status is Status.CREATED
    assert outcome.user_principal_name == f"jane.doe2@{DOMAIN}"
    bench.assert_one_correct_account(f"jane.doe2@{DOMAIN}")
    assert bench.ledger.records["hr-1"].user_principal_name == f"jane.doe2@{DOMAIN}"


@pytest.mark.parametrize("pause_at", range(1, 14))
@pytest.mark.parametrize("immutable_id", [None, "E1"])
def test_two_deliveries_of_an_event_without_a_upn_at_once(
    bench: Bench, pause_at: int, immutable_id: str | None
) -> None:
    """One account, one UPN, whatever the interleaving."""
    body = generated(immutable_id=immutable_id)
    paused = bench.run_paused(pause_at, body, message_id="a")
    with contextlib.suppress(RedeliveryRequested):
        bench.deliver(body, delivery=1, message_id="b")
    first = paused.finish()
    if isinstance(first, RedeliveryRequested):
        bench.deliver_until_outcome(body, first=2, message_id="a")
    elif isinstance(first, BaseException):
        raise first
    if not any(o.status in (Status.CREATED, Status.ALREADY_EXISTS) for o in bench.outcomes):
        bench.deliver_until_outcome(body, first=2, message_id="b")
    bench.assert_one_correct_account(JANE)
    assert len(bench.partner_center.users) == 1
    assert {o.user_principal_name for o in bench.outcomes} == {JANE}


def test_names_without_a_letter_or_digit_are_rejected_naming_the_fields(bench: Bench) -> None:
    body = generated()
    body["user"].update(firstName="😀", lastName="…")
    outcome = bench.deliver(body)
    assert outcome.status is Status.REJECTED
    assert outcome.failure is not None and outcome.failure.category.value == "invalid_event"
    assert "user.firstName" in outcome.failure.message
    assert bench.partner_center.calls["create"] == 0 and len(bench.poison.copies) == 1


def test_every_candidate_held_is_a_conflict(bench: Bench) -> None:
    for n in range(1, 100):
        bench.partner_center.seed(f"jane.doe{'' if n == 1 else n}@{DOMAIN}", immutable_id="X")
    outcome = bench.deliver(generated())
    assert outcome.status is Status.REJECTED
    assert outcome.failure is not None and outcome.failure.category.value == "conflict"
    assert "counter 99" in outcome.failure.message


# ---------------------------------------------------------------------------- rehires


def _seed_deleted(bench: Bench, upn: str = JANE, immutable_id: str = "E1") -> Any:
    return bench.partner_center.seed(upn, immutable_id=immutable_id, state="inactive")


@pytest.mark.parametrize("make", [generated, lambda: event(1, userPrincipalName=JANE)])
def test_a_rehire_is_restored_with_a_new_password(bench: Bench, make: Any) -> None:
    deleted = _seed_deleted(bench)
    outcome = bench.deliver(make())
    assert outcome.status is Status.RESTORED
    assert outcome.user_id == deleted.id and outcome.user_principal_name == JANE
    assert deleted.state == "active"
    assert_holds_password(bench, deleted.id, outcome.initial_password_secret_id)
    assert bench.partner_center.calls["create"] == 0
    record = bench.ledger.records["hr-1"]
    assert record.state is HireState.RESTORED and record.user_id == deleted.id
    again = bench.deliver(make(), message_id="replay")
    assert again.status is Status.ALREADY_EXISTS
    assert again.initial_password_secret_id == outcome.initial_password_secret_id
    assert bench.partner_center.calls["restore"] == 1
    assert not bench.poison.copies


@pytest.mark.parametrize("script", ["restore_script", "reset_script"])
def test_a_rehire_whose_answer_is_lost_is_finished_by_the_next_delivery(
    bench: Bench, script: str
) -> None:
    deleted = _seed_deleted(bench)
    setattr(bench.partner_center, script, ["lost-after"] * 3)  # every in-invocation try
    outcomes = []
    for number in range(1, RETRY.max_deliveries + 1):
        try:
            outcomes.append(bench.deliver(generated(), delivery=number))
            break
        except RedeliveryRequested:
            assert bench.ledger.records["hr-1"].state is HireState.RESTORING
            bench.clock.advance(60)
    (outcome,) = outcomes
    assert outcome.status is Status.RESTORED and outcome.user_id == deleted.id
    assert_holds_password(bench, deleted.id, outcome.initial_password_secret_id)
    assert len(bench.vault.secrets) == 1  # one password, recorded before the first restore


@pytest.mark.parametrize("kill_at", range(1, 12))
def test_a_rehire_killed_anywhere_is_finished_by_the_next(bench: Bench, kill_at: int) -> None:
    deleted = _seed_deleted(bench)
    bench.gate.kill = True
    bench.run_paused(kill_at, generated()).finish()
    bench.gate.kill = False
    bench.clock.advance(300)
    outcome = bench.deliver_until_outcome(generated(), first=2)
    assert outcome.status in (Status.RESTORED, Status.ALREADY_EXISTS)
    assert outcome.user_id == deleted.id and deleted.state == "active"
    assert_holds_password(bench, deleted.id, outcome.initial_password_secret_id)
    assert bench.partner_center.calls["create"] == 0


def test_a_deleted_user_who_is_someone_else_is_a_conflict_for_a_given_upn(bench: Bench) -> None:
    deleted = _seed_deleted(bench, immutable_id="OTHER")
    outcome = bench.deliver(event(1, userPrincipalName=JANE))
    assert outcome.status is Status.REJECTED
    assert outcome.failure is not None and outcome.failure.category.value == "conflict"
    assert deleted.id in outcome.failure.message and "someone else" in outcome.failure.message
    assert deleted.state == "inactive" and bench.partner_center.calls["restore"] == 0


def test_a_deleted_holder_found_only_on_create_without_immutable_id_is_a_conflict(
    bench: Bench,
) -> None:
    deleted = _seed_deleted(bench, immutable_id="OTHER")
    outcome = bench.deliver(event(1, userPrincipalName=JANE, immutable_id=None))
    assert outcome.status is Status.REJECTED
    assert outcome.failure is not None and "deleted user" in outcome.failure.message
    assert deleted.id in outcome.failure.message


# ---------------------------------------------------------------------------- licences


def _licensed(*skus: str, **extra: Any) -> dict[str, Any]:
    return generated(licenses=[{"skuId": sku} for sku in skus], **extra)


def test_licences_are_assigned_one_group_per_request(bench: Bench) -> None:
    bench.partner_center.skus = {SKU_A: ["g1", 3], SKU_B: ["g2", 1], SKU_C: ["g1", 1]}
    outcome = bench.deliver(_licensed(SKU_A, SKU_B, SKU_C))
    assert outcome.status is Status.CREATED
    assert outcome.licenses is not None
    assert outcome.licenses.assigned == (SKU_A, SKU_B, SKU_C) and outcome.licenses.failed == ()
    assert bench.partner_center.calls["assign"] == 2
    user = bench.partner_center.user(str(outcome.user_id))
    assert sorted(user.licenses) == sorted([SKU_A, SKU_B, SKU_C])
    assert set(bench.ledger.records["hr-1"].licenses_assigned) == {SKU_A, SKU_B, SKU_C}
    assert not bench.poison.copies
    assert outcome.as_message()["licenses"] == {"assigned": [SKU_A, SKU_B, SKU_C], "failed": []}


def test_an_event_without_licences_has_no_licences_in_its_outcome(bench: Bench) -> None:
    outcome = bench.deliver(generated())
    assert "licenses" not in outcome.as_message()
    assert bench.partner_center.calls["skus"] == 0


def test_a_licence_shortfall_is_created_plus_a_poison_copy_and_a_replay_assigns_it(
    bench: Bench,
) -> None:
    bench.partner_center.skus = {SKU_A: ["g1", 3], SKU_B: ["g1", 0]}
    outcome = bench.deliver(_licensed(SKU_A, SKU_B, SKU_C))
    assert outcome.status is Status.CREATED
    assert outcome.licenses is not None and outcome.licenses.assigned == (SKU_A,)
    failed = {f.sku_id: f for f in outcome.licenses.failed}
    assert failed[SKU_B].code == 60012 and "buy more units" in failed[SKU_B].message
    assert failed[SKU_C].category.value == "validation" and "no subscription" in (
        failed[SKU_C].message
    )
    (copy,) = bench.poison.copies
    assert isinstance(copy, dict)
    assert SKU_B in copy["lastFailure"]["message"] and SKU_C in copy["lastFailure"]["message"]
    assert SKU_A not in copy["lastFailure"]["message"].split("licence(s):")[1]
    # The operator buys units and the missing product, then replays the poison copy.
    bench.partner_center.skus[SKU_B][1] = 1
    bench.partner_center.skus[SKU_C] = ["g2", 5]
    creates = bench.partner_center.calls["create"]
    replay = bench.deliver(copy, message_id="replay")
    assert replay.status is Status.ALREADY_EXISTS and replay.user_id == outcome.user_id
    assert replay.licenses is not None and replay.licenses.failed == ()
    assert replay.licenses.assigned == (SKU_A, SKU_B, SKU_C)
    assert bench.partner_center.calls["create"] == creates
    assert bench.partner_center.skus[SKU_A][1] == 2  # not assigned twice
    assert len(bench.poison.copies) == 1


def test_a_missing_licence_role_leaves_the_user_created(bench: Bench) -> None:
    bench.partner_center.skus = {SKU_A: ["g1", 3]}
    bench.partner_center.assign_script = ["permission"]
    outcome = bench.deliver(_licensed(SKU_A))
    assert outcome.status is Status.CREATED
    assert outcome.licenses is not None and outcome.licenses.failed[0].category.value == (
        "permission"
    )
    assert len(bench.poison.copies) == 1


def test_a_licence_step_that_keeps_failing_ends_created_on_the_last_delivery(
    bench: Bench,
) -> None:
    bench.partner_center.skus = {SKU_A: ["g1", 3]}
    bench.partner_center.assign_script = ["unavailable"] * 100
    outcome = bench.deliver_until_outcome(_licensed(SKU_A))
    assert outcome.status in (Status.CREATED, Status.ALREADY_EXISTS)
    assert outcome.licenses is not None and outcome.licenses.failed[0].category.value == (
        "unavailable"
    )
    bench.assert_one_correct_account(JANE)
    assert len(bench.poison.copies) == 1


def test_a_licence_answer_lost_after_it_was_applied_takes_one_unit(bench: Bench) -> None:
    bench.partner_center.skus = {SKU_A: ["g1", 1]}
    bench.partner_center.assign_script = ["lost-after"]
    outcome = bench.deliver_until_outcome(_licensed(SKU_A))
    assert outcome.licenses is not None and outcome.licenses.assigned == (SKU_A,)
    assert outcome.licenses.failed == ()  # held already: the zero units left are no shortfall
    assert bench.partner_center.skus[SKU_A][1] == 0


def test_a_rehire_gets_its_licences(bench: Bench) -> None:
    deleted = _seed_deleted(bench)
    bench.partner_center.skus = {SKU_A: ["g1", 1]}
    outcome = bench.deliver(_licensed(SKU_A))
    assert outcome.status is Status.RESTORED
    assert outcome.licenses is not None and outcome.licenses.assigned == (SKU_A,)
    assert deleted.licenses == [SKU_A]


def test_a_republish_in_another_domain_does_not_reuse_the_recorded_upn(bench: Bench) -> None:
    bench.partner_center.create_script = ["permission"]
    assert bench.deliver(generated()).status is Status.REJECTED
    assert bench.ledger.records["hr-1"].user_principal_name == JANE
    republished = generated()
    republished["user"]["upnDomain"] = "contoso.com"
    outcome = bench.deliver(republished, message_id="republished")
    assert outcome.status is Status.CREATED
    assert outcome.user_principal_name == "jane.doe@contoso.com"
