"""Issue 17 item 1, "look only when it matters": with a directory that finds a UPN's holder in
one call (``UpnDirectory``), a given UPN is created without the up-front scan, and a "taken" or
a lost answer is settled afterwards by the identity rule (immutableId, or the holder's creation
time against this hire's first create). Run under both MS-RequestId behaviours."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.outcomes import Status
from shared.service.provisioning import Provisioner
from tests.unit.conftest import RETRY, Bench, Gated, event
from tests.unit.fakes import FakeDirectory
from tests.unit.test_ledger_learns import UPN, assert_own_user_with_its_password, lose_then_refuse


def with_directory(
    bench: Bench, *, known: bool | None = True, consented: bool = True
) -> FakeDirectory:
    bench.partner_center.clock = bench.clock
    directory = FakeDirectory(bench.partner_center, consented=consented, known=known)
    bench.service = Provisioner(
        partner_center=Gated(bench.partner_center, bench.gate),
        passwords=Gated(bench.vault, bench.gate),
        ledger=Gated(bench.ledger, bench.gate),
        poison=bench.poison,
        retry=RETRY,
        password_ttl=timedelta(days=7),
        claim_ttl=timedelta(minutes=4),
        now=bench.clock,
        sleep=bench.clock.sleep,
        monotonic=bench.clock.monotonic,
        jitter=lambda: 0.5,
        directory=Gated(directory, bench.gate),
    )
    return directory


def test_with_immutable_id_the_create_goes_first_without_any_look_up(bench: Bench) -> None:
    directory = with_directory(bench, known=None)
    outcome = bench.deliver(event())
    assert outcome.status is Status.CREATED
    assert bench.partner_center.calls["find"] == 0 and directory.calls == 0
    bench.assert_one_correct_account(UPN)


def test_with_immutable_id_a_taken_upn_of_a_deleted_same_person_is_a_rehire(
    bench: Bench,
) -> None:
    with_directory(bench)
    deleted = bench.partner_center.seed(UPN, immutable_id="E1", state="inactive")
    outcome = bench.deliver(event())
    assert outcome.status is Status.RESTORED
    assert outcome.user_id == deleted.id


def test_without_immutable_id_and_a_known_directory_the_create_goes_first(
    bench: Bench,
) -> None:
    directory = with_directory(bench, known=True)
    outcome = bench.deliver(event(immutable_id=None))
    assert outcome.status is Status.CREATED
    assert bench.partner_center.calls["find"] == 0 and directory.calls == 0


def test_a_lost_create_refused_on_its_repeat_is_settled_by_the_creation_time(
    bench: Bench,
) -> None:
    with_directory(bench, known=True)
    body = event(immutable_id=None)
    lose_then_refuse(bench, body)
    bench.clock.advance(600)
    replayed = bench.deliver(body, message_id="replay")
    assert_own_user_with_its_password(bench, replayed, UPN)


def test_a_holder_made_before_the_first_create_is_someone_else(bench: Bench) -> None:
    with_directory(bench, known=True)
    other = bench.partner_center.seed(UPN, created_at=bench.clock.now - timedelta(days=30))
    outcome = bench.deliver(event(immutable_id=None))
    assert outcome.status is Status.REJECTED
    assert outcome.failure is not None and other.id in outcome.failure.message
    assert bench.ledger.records["hr-1"].sends == ()  # settled: it never applied


def test_an_unknown_directory_is_asked_once_up_front(bench: Bench) -> None:
    directory = with_directory(bench, known=None)
    outcome = bench.deliver(event(immutable_id=None))
    assert outcome.status is Status.CREATED
    assert directory.calls == 1 and bench.partner_center.calls["find"] == 0


def test_a_directory_without_consent_falls_back_to_the_user_list(bench: Bench) -> None:
    directory = with_directory(bench, known=None, consented=False)
    outcome = bench.deliver(event(immutable_id=None))
    assert outcome.status is Status.CREATED
    assert directory.calls == 1 and bench.partner_center.calls["find"] == 1
    bench.assert_one_correct_account(UPN)


@pytest.mark.parametrize("immutable_id", [None, "E1"], ids=["without-immutable-id", "with"])
def test_a_directory_that_lags_after_a_lost_create_only_delays_the_answer(
    bench: Bench, immutable_id: str | None
) -> None:
    directory = with_directory(bench, known=True)
    directory.script = ["hide"]
    bench.partner_center.create_script = ["lost-after"]
    outcome = bench.deliver_until_outcome(event(immutable_id=immutable_id))
    assert outcome.status is Status.CREATED
    bench.assert_one_correct_account(UPN)
