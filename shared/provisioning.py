"""The provisioning decision: one hire event in, exactly one outcome out.

Every decision is taken from the hire's record in the ledger, never from a guess. A delivery
first *claims* the hire (a conditional write naming it as owner, for a limited time); only the
claim holder stores a password, calls Partner Center or moves the record on. The record is
written *before* each create call ("a create of generation g may have been sent"), so a
delivery that dies between the create and the record leaves enough behind for the next one to
finish the hire by a look-up. Who may be this hire's user (docs/design.md, "The identity rule"):

- with ``immutableId`` in the event, only a user with exactly that ``immutableId``;
- without it, a user found holding the UPN only when the ledger proves this hire's create could
  have made it: the UPN was free when checked before this generation's first create, and a
  create of this generation may have been applied. Anyone else is a ``conflict``.

No SDK and no adapter in sight: the service works through the ports in ``shared.ports``.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from shared.decisions import DecisionLog
from shared.errors import (
    AnswerLost,
    LedgerConflict,
    ProvisioningError,
    RedeliveryRequested,
    Refused,
    ServiceUnavailableError,
    UpnTaken,
)
from shared.events import (
    HireEvent,
    InvalidEvent,
    NotAnEvent,
    decode_body,
    invalid_event_message,
    parse_event,
)
from shared.invocation import Delivery, Invocation
from shared.licensing import LicenceStep
from shared.model import (
    PASSWORD_STATES,
    SUCCESS_STATES,
    FoundUser,
    HireRecord,
    HireState,
    NewUser,
)
from shared.outcomes import (
    Category,
    Failure,
    Outcome,
    Status,
    outcome_from_message,
    utc_now_text,
)
from shared.passwords import fingerprint, generate_password
from shared.planning import (
    UpnChoice,
    UpnVerdict,
    choose_upn,
    exhausted_message,
    generation_failure_message,
)
from shared.ports import (
    HireLedger,
    NoTelemetry,
    PartnerCenter,
    PasswordVault,
    PoisonSink,
    Telemetry,
)
from shared.retry import RetryPolicy
from shared.upn import DEFAULT_TEMPLATE, UpnGenerationError

__all__ = ["Delivery", "Provisioner", "RetryPolicy"]

logger = logging.getLogger("hire_provisioning")

# A password about to expire is not handed to a new create: the person needs time to use it.
PASSWORD_FRESHNESS = timedelta(hours=1)
# A hire's record is re-read at most this many times in one step when others write it.
MAX_LEDGER_RACES = 5
# How often one step may pass a generated UPN that someone else took after it was checked.
MAX_UPN_MOVES = 5
_USER_EXISTS = frozenset({Status.CREATED, Status.RESTORED, Status.ALREADY_EXISTS})
_STATE_OF = {
    Status.CREATED: HireState.CREATED,
    Status.RESTORED: HireState.RESTORED,
    Status.ALREADY_EXISTS: HireState.EXISTING,
}


class _DecideAgain(Exception):
    """The record was moved on (a generated UPN turned out to be someone else's): decide anew."""


class _Busy(Exception):
    """Another delivery holds the hire's claim and this one may not wait any longer."""


class Provisioner:
    def __init__(
        self,
        *,
        partner_center: PartnerCenter,
        passwords: PasswordVault,
        ledger: HireLedger,
        poison: PoisonSink,
        retry: RetryPolicy | None = None,
        password_ttl: timedelta = timedelta(days=7),
        claim_ttl: timedelta = timedelta(minutes=4),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        new_password: Callable[[], str] = generate_password,
        upn_template: str = DEFAULT_TEMPLATE,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._partner_center = partner_center
        self._passwords = passwords
        self._ledger = ledger
        self._poison = poison
        self._retry = retry or RetryPolicy()
        self._password_ttl = password_ttl
        self._claim_ttl = claim_ttl
        self._now = now
        self._sleep = sleep
        self._monotonic = monotonic
        self._jitter = jitter
        self._new_password = new_password
        self._upn_template = upn_template
        self._telemetry: Telemetry = telemetry or NoTelemetry()
        self._licences = LicenceStep(
            partner_center=partner_center, ledger=ledger, poison=poison, now=now
        )
        self._decisions = DecisionLog(telemetry=self._telemetry, monotonic=monotonic)

    # ------------------------------------------------------------------ entry point

    def handle(self, delivery: Delivery) -> Outcome:
        """Decide one delivery. Raises ``RedeliveryRequested`` when the host should retry."""
        with self._telemetry.invocation(delivery.body, max(1, delivery.dequeue_count)) as trace:
            outcome = self._decide(delivery)
        # The outcome names its trace when the event carried one (docs/contract.md section 2).
        return replace(outcome, traceparent=trace.traceparent) if trace.traceparent else outcome

    def _decide(self, delivery: Delivery) -> Outcome:
        started = self._monotonic()
        invocation = Invocation(delivery)
        try:
            outcome = self._handle(delivery, invocation)
        except RedeliveryRequested:
            raise
        except Exception as error:  # the last delivery must still end well
            outcome = self._last_resort(delivery, invocation, error)
        self._decisions.decided(
            outcome, started=started, invocation=invocation, message_id=delivery.message_id
        )
        return outcome

    def _handle(self, delivery: Delivery, invocation: Invocation) -> Outcome:
        attempts = invocation.delivery_number
        try:
            document = decode_body(delivery.body)
        except NotAnEvent as error:
            failure = Failure(category=Category.INVALID_EVENT, message=_invalid_message(error))
            self._poison.poison_body(delivery.body, failure, attempts=attempts)
            return _unreadable_outcome(failure, attempts, event_id=error.event_id)
        try:
            event = parse_event(document)
        except InvalidEvent as error:
            failure = Failure(category=Category.INVALID_EVENT, message=_invalid_message(error))
            return self._give_up(document, failure, attempts, event_id=error.event_id)

        try:
            outcome = self._provision_with_retries(event, invocation)
            self._licences.poison_failures(document, outcome, attempts)
            return outcome
        except _Busy:
            problem: ProvisioningError = ServiceUnavailableError(
                "another delivery of this hire is at work on it"
            )
        except ProvisioningError as error:
            problem = error
        except Exception as error:  # unclassified: transient, located, not quoted
            problem = _unexpected(error)
        if invocation.user_outcome is not None and (
            not problem.is_transient or self._retry.is_last(attempts)
        ):
            # The user exists: it stays created; only the licences still missing failed.
            outcome = self._licences.given_up(event, invocation.user_outcome, problem.failure)
            self._licences.poison_failures(document, outcome, attempts)
            return outcome
        if problem.is_transient and not self._retry.is_last(attempts):
            self._release_claim(event, invocation)
            self._decisions.redelivering(
                event, problem, invocation=invocation, message_id=delivery.message_id
            )
            # Raised here, outside the handlers, so nothing chains to the adapters' exceptions.
            raise RedeliveryRequested(
                f"event {event.event_id}: {problem.failure.message} (delivery {attempts} of "
                f"{self._retry.max_deliveries}; the host delivers it again)"
            )
        failure = problem.failure
        if failure.is_transient:
            failure = replace(
                failure,
                message=f"{failure.message}. Gave up after {attempts} deliveries: once the "
                "service has recovered, replay the event from the poison queue",
            )
        outcome = self._give_up(document, failure, attempts, event_id=event.event_id, event=event)
        self._record_end(event, invocation, outcome)
        return outcome

    # ------------------------------------------------------------------ the hire

    def _provision_with_retries(self, event: HireEvent, invocation: Invocation) -> Outcome:
        started = self._monotonic()
        attempts = self._retry.attempts_for(invocation.delivery_number)
        retry_number = 0
        while True:
            try:
                return self._step(event, invocation)
            except ProvisioningError as error:
                if not error.is_transient or retry_number + 1 >= attempts:
                    raise
                pause = self._retry.delay(retry_number, error.retry_after, self._jitter())
                if self._monotonic() - started + pause > self._retry.budget:
                    raise
                self._telemetry.retried(error.failure.category.value)
                self._sleep(pause)
                retry_number += 1

    def _step(self, event: HireEvent, invocation: Invocation) -> Outcome:
        for _ in range(MAX_LEDGER_RACES + MAX_UPN_MOVES):
            try:
                if invocation.user_outcome is None:
                    invocation.user_outcome = self._step_once(event, invocation)
                if not event.licenses or invocation.user_outcome.status not in _USER_EXISTS:
                    return invocation.user_outcome
                return self._licences.assign(event, invocation.user_outcome, invocation)
            except (LedgerConflict, _DecideAgain):
                continue  # someone wrote the record since we read it: decide again from it
        raise ServiceUnavailableError(
            "the hire's ledger record kept changing under this delivery; it is delivered again"
        )

    def _step_once(self, event: HireEvent, invocation: Invocation) -> Outcome:
        record = self._first_read(event, invocation)
        invocation.state = record.state
        if record.state in SUCCESS_STATES:
            return self._answer_from_record(event, record, invocation)
        if record.claimed_by_other(invocation.owner, self._now()):
            record = self._wait_for_other(event, record, invocation)
            invocation.state = record.state
            if record.state in SUCCESS_STATES:
                return self._answer_from_record(event, record, invocation)
            adopted = self._adopt_refusal(record, invocation)
            if adopted is not None:
                return adopted
        record = self._claim(record, invocation)
        if record.state is HireState.CREATING:
            return self._resume_create(event, record, invocation)
        if record.state is HireState.RESTORING:
            return self._resume_restore(event, record, invocation)
        return self._first_create(event, record, invocation)

    def _first_read(self, event: HireEvent, invocation: Invocation) -> HireRecord:
        """The hire's record, claimed by this delivery when it is new.

        Most deliveries are a hire's first: the insert is tried before any read (one table
        call instead of two); a record that exists is then read as it is.
        """
        if not invocation.insert_tried:
            invocation.insert_tried = True
            try:
                return self._open_record(event, invocation)
            except LedgerConflict:
                pass
        return self._ledger.get(event.event_id) or self._open_record(event, invocation)

    def _open_record(self, event: HireEvent, invocation: Invocation) -> HireRecord:
        now = self._now()
        record = HireRecord(
            event_id=event.event_id,
            customer_tenant_id=event.customer_tenant_id,
            user_principal_name=event.user.user_principal_name,
            attempts=1,
            claim_owner=invocation.owner,
            claim_expires_at=now + self._claim_ttl,
            created_at=now,
            updated_at=now,
        )
        added = self._ledger.add(record)  # LedgerConflict: another delivery was first
        invocation.counted = True
        return added

    def _claim(self, record: HireRecord, invocation: Invocation) -> HireRecord:
        if record.claim_owner == invocation.owner:
            return record
        return self._write(
            record,
            invocation,
            attempts=record.attempts + (0 if invocation.counted else 1),
        )

    def _write(self, record: HireRecord, invocation: Invocation, **changes: Any) -> HireRecord:
        """A conditional update that also renews this invocation's claim."""
        now = self._now()
        updated = self._ledger.update(
            record.evolve(
                **{
                    "claim_owner": invocation.owner,
                    "claim_expires_at": now + self._claim_ttl,
                    "updated_at": now,
                    **changes,
                }
            )
        )
        invocation.counted = True
        invocation.state = updated.state
        return updated

    def _wait_for_other(
        self, event: HireEvent, record: HireRecord, invocation: Invocation
    ) -> HireRecord:
        """Another delivery is at work: give it time instead of calling Partner Center too.

        An early delivery waits briefly and then asks for redelivery; the last one waits until
        the hire ends or the other's claim runs out (a dead delivery's claim is taken over).
        """
        invocation.waited_for_other = True
        self._telemetry.claim_lost()
        last = self._retry.is_last(invocation.delivery_number)
        give_up_at = self._monotonic() + self._retry.claim_wait
        while record.claimed_by_other(invocation.owner, self._now()):
            if record.state in SUCCESS_STATES:
                return record
            if not last and self._monotonic() >= give_up_at:
                raise _Busy()
            self._sleep(self._retry.poll_interval)
            latest = self._ledger.get(event.event_id)
            if latest is None:  # removed by an operator: start afresh
                raise LedgerConflict("the hire's record disappeared")
            record = latest
        return record

    def _adopt_refusal(self, record: HireRecord, invocation: Invocation) -> Outcome | None:
        """The delivery we waited for refused the hire: say the same, do not try again."""
        if record.state is not HireState.REJECTED or not record.last_outcome:
            return None
        earlier = outcome_from_message(record.last_outcome)
        if earlier is None or earlier.status is not Status.REJECTED:
            return None
        return replace(earlier, attempts=invocation.delivery_number, completed_at=utc_now_text())

    def _first_create(
        self, event: HireEvent, record: HireRecord, invocation: Invocation
    ) -> Outcome:
        """No create of this generation was sent yet: choose and check the UPN, then create
        (or restore the deleted user of a rehire)."""
        choice = self._choose_upn(event, record, invocation)
        upn = choice.upn
        if choice.verdict in (UpnVerdict.THIS_HIRES, UpnVerdict.HELD):
            assert choice.holder is not None
            return self._settle_found(
                event, record.evolve(user_principal_name=upn), choice.holder, invocation, sends=0
            )
        if choice.verdict is UpnVerdict.HELD_DELETED:
            assert choice.holder is not None
            raise self._refuse(event, record, invocation, _deleted_conflict(event, choice))
        if choice.verdict is UpnVerdict.REHIRE:
            assert choice.holder is not None
            return self._start_restore(event, record, choice, invocation)
        password, record = self._fresh_password(event, record, invocation)
        record = self._write(
            record,
            invocation,
            state=HireState.CREATING,
            user_principal_name=upn,
            upn_checked=True,
            create_calls=1,
        )
        return self._send_create(event, record, password, invocation)

    def _resume_create(
        self, event: HireEvent, record: HireRecord, invocation: Invocation
    ) -> Outcome:
        """A create of this generation may have been applied: send it again, the same request
        with the same password. Partner Center either answers with the user (it remembers the
        MS-RequestId), creates it (the first never arrived), or says the UPN is taken, and the
        look-up that follows finds this hire's user by the identity rule."""
        if not record.password_secret_id:  # written before every create; repaired if lost
            password, record = self._fresh_password(event, record, invocation)
        else:
            password = self._passwords.read(record.password_secret_id)
        record = self._write(record, invocation, create_calls=record.create_calls + 1)
        return self._send_create(event, record, password, invocation)

    def _send_create(
        self, event: HireEvent, record: HireRecord, password: str, invocation: Invocation
    ) -> Outcome:
        upn = _upn_of(event, record)
        invocation.calls += 1
        invocation.request_id = event.request_id_for(record.generation)
        try:
            user = self._partner_center.create_user(
                event.customer_tenant_id,
                _new_user(event, upn, password),
                request_id=invocation.request_id,
                correlation_id=event.correlation_guid,
            )
        except AnswerLost:
            raise  # the record says CREATING: the next step looks the user up first
        except UpnTaken as taken:
            found = self._find(event, upn, invocation)
            if found is not None:
                # This call was refused, so only the sends before it could have made the user.
                return self._settle_found(
                    event, record, found, invocation, sends=record.create_calls - 1, said=taken
                )
            deleted = self._find(event, upn, invocation, inactive=True)
            if deleted is not None:
                choice = UpnChoice(
                    upn=upn,
                    verdict=UpnVerdict.REHIRE
                    if _same_person(event, deleted)
                    else UpnVerdict.HELD_DELETED,
                    holder=deleted,
                    generated=event.user.user_principal_name is None,
                )
                if choice.verdict is UpnVerdict.REHIRE:
                    # Refused, so nothing was created: this generation is over; restore.
                    record = self._write(
                        record, invocation, generation=record.generation + 1, create_calls=0
                    )
                    return self._start_restore(event, record, choice, invocation)
                if choice.generated:
                    self._move_to_next_upn(record, invocation)
                raise self._refuse(
                    event, record, invocation, _deleted_conflict(event, choice, said=taken)
                ) from None
            raise ServiceUnavailableError(
                f"Partner Center says userPrincipalName {upn} is taken but does not list the "
                "user yet",
                http_status=taken.failure.http_status,
                code=taken.failure.code,
            ) from None
        except Refused as refusal:
            if record.create_calls > 1 and refusal.failure.category is not Category.PERMISSION:
                # An earlier send of this generation may have made the user, and a duplicate
                # is not always answered in words we recognise: look before calling it refused.
                found = self._find(event, upn, invocation)
                if found is not None:
                    return self._settle_found(
                        event,
                        record,
                        found,
                        invocation,
                        sends=record.create_calls - 1,
                        said=refusal,
                    )
            raise self._refuse(event, record, invocation, refusal) from None
        if user.password_fingerprint and user.password_fingerprint != fingerprint(password):
            # Partner Center answered with an earlier create of this MS-RequestId, made with a
            # password this hire does not hold: never report a secret the user does not have.
            raise self._refuse(
                event,
                record,
                invocation,
                Refused(
                    Category.CONFLICT,
                    f"Partner Center returned user {user.id} for this hire's request id with an "
                    "initial password the ledger does not hold: reset that user's password by "
                    "hand, or delete the user and replay",
                ),
            ) from None
        return self._succeed(event, record, invocation, Status.CREATED, user)

    def _settle_found(
        self,
        event: HireEvent,
        record: HireRecord,
        found: FoundUser,
        invocation: Invocation,
        *,
        sends: int,
        said: ProvisioningError | None = None,
    ) -> Outcome:
        """A user holds the hire's UPN: this hire's own, the same person from before, or not."""
        wanted = event.user.immutable_id
        if wanted is not None and found.immutable_id is None:
            # A user list may leave immutableId out: ask for the whole user before deciding.
            invocation.calls += 1
            found = (
                self._partner_center.get_user(
                    event.customer_tenant_id, found.id, correlation_id=event.correlation_guid
                )
                or found
            )
        same_person = wanted is not None and found.immutable_id == wanted
        made_here = sends > 0 and (same_person if wanted is not None else record.upn_checked)
        if made_here:
            return self._succeed(event, record, invocation, Status.CREATED, found)
        if same_person:
            return self._succeed(event, record, invocation, Status.ALREADY_EXISTS, found)
        if event.user.user_principal_name is None:
            # A generated UPN someone else took meanwhile: unique UPNs mean no create of this
            # hire made that user, so the next candidate is safe (with a new MS-RequestId).
            self._move_to_next_upn(record, invocation)
        raise self._refuse(
            event,
            record,
            invocation,
            Refused(
                Category.CONFLICT,
                f"userPrincipalName {_upn_of(event, record)} already belongs to another user "
                f"(id {found.id}) in customer "
                f"{event.customer_tenant_id}: correct the HR record (another UPN, or the right "
                "immutableId) and republish",
                http_status=said.failure.http_status if said else None,
                code=said.failure.code if said else None,
            ),
        )

    # ------------------------------------------------------------------ generated UPNs

    def _choose_upn(
        self, event: HireEvent, record: HireRecord, invocation: Invocation
    ) -> UpnChoice:
        generated = event.user.user_principal_name is None
        try:
            choice = choose_upn(
                event,
                self._upn_template,
                lambda upn, inactive: self._find(event, upn, invocation, inactive=inactive),
                recorded=record.user_principal_name if generated else None,
                # With an immutableId, identity is settled by it, so the duplicate answer of
                # the create can reveal a holder: no list of every active user up front.
                # Without one, only a check before the first create proves a user found later
                # is this hire's (the identity rule).
                check_given_upn=event.user.immutable_id is None,
            )
        except UpnGenerationError as error:
            raise self._refuse(
                event,
                record,
                invocation,
                Refused(Category.INVALID_EVENT, generation_failure_message(error)),
            ) from None
        except Refused as refusal:  # no such customer, no GDAP role: as definite as a create's
            raise self._refuse(event, record, invocation, refusal) from None
        if choice.verdict is UpnVerdict.EXHAUSTED:
            raise self._refuse(
                event,
                record,
                invocation,
                Refused(Category.CONFLICT, exhausted_message(event, choice)),
            )
        return choice

    def _move_to_next_upn(self, record: HireRecord, invocation: Invocation) -> NoReturn:
        """Forget a generated UPN someone else holds; the next step chooses another."""
        self._write(
            record,
            invocation,
            state=HireState.NEW,
            user_principal_name=None,
            user_id=None,
            generation=record.generation + 1,
            create_calls=0,
            upn_checked=False,
        )
        raise _DecideAgain()

    # ------------------------------------------------------------------ rehires

    def _start_restore(
        self, event: HireEvent, record: HireRecord, choice: UpnChoice, invocation: Invocation
    ) -> Outcome:
        """A deleted user with this immutableId holds the UPN: bring it back.

        The new password is stored and the record says RESTORING before the restore and reset
        are sent, so a lost answer is finished by the next delivery.
        """
        assert choice.holder is not None
        password, record = self._fresh_password(event, record, invocation)
        record = self._write(
            record,
            invocation,
            state=HireState.RESTORING,
            user_principal_name=choice.upn,
            user_id=choice.holder.id,
        )
        return self._finish_restore(event, record, password, invocation, known_inactive=True)

    def _resume_restore(
        self, event: HireEvent, record: HireRecord, invocation: Invocation
    ) -> Outcome:
        if not record.password_secret_id or not record.user_id:  # written together; repaired
            self._write(record, invocation, state=HireState.NEW, user_id=None)
            raise _DecideAgain()
        password = self._passwords.read(record.password_secret_id)
        return self._finish_restore(event, record, password, invocation, known_inactive=False)

    def _finish_restore(
        self,
        event: HireEvent,
        record: HireRecord,
        password: str,
        invocation: Invocation,
        *,
        known_inactive: bool,
    ) -> Outcome:
        user_id = str(record.user_id)
        customer = event.customer_tenant_id
        correlation = event.correlation_guid
        user: FoundUser | None = None
        if not known_inactive:
            invocation.calls += 1
            user = self._partner_center.get_user(customer, user_id, correlation_id=correlation)
            if user is None:
                raise self._refuse(
                    event,
                    record.evolve(user_id=None),
                    invocation,
                    Refused(
                        Category.CONFLICT,
                        f"the deleted user {user_id} this rehire restores is gone from customer "
                        f"{customer} (purged, or deleted permanently): replay the event to "
                        "create the user anew",
                    ),
                )
        if user is None or not user.active:
            invocation.calls += 1
            try:
                user = self._partner_center.restore_user(
                    customer, user_id, correlation_id=correlation
                )
            except UpnTaken as taken:
                raise self._refuse(
                    event,
                    record.evolve(user_id=None),
                    invocation,
                    Refused(
                        Category.CONFLICT,
                        f"the deleted user {user_id} cannot be restored: another active user "
                        f"holds userPrincipalName {record.user_principal_name} in customer "
                        f"{customer}; correct the HR record and republish",
                        http_status=taken.failure.http_status,
                        code=taken.failure.code,
                    ),
                ) from None
            except Refused as refusal:
                raise self._refuse(event, record, invocation, refusal) from None
        invocation.calls += 1
        try:
            # Resetting with the same password again is harmless: a repeat changes nothing.
            self._partner_center.reset_password(
                customer, user_id, password, correlation_id=correlation
            )
        except Refused as refusal:
            raise self._refuse(event, record, invocation, refusal) from None
        return self._succeed(event, record, invocation, Status.RESTORED, user)

    def _fresh_password(
        self, event: HireEvent, record: HireRecord, invocation: Invocation
    ) -> tuple[str, HireRecord]:
        """The hire's password for a create no earlier create can have used.

        Kept when recorded and fresh (so every outcome names the same secret); replaced when
        missing, expired or about to expire, since no user can hold it yet.
        """
        expires = record.password_expires_on
        if (
            record.password_secret_id
            and expires is not None
            and expires > self._now() + PASSWORD_FRESHNESS
        ):
            return self._passwords.read(record.password_secret_id), record
        password = self._new_password()
        stored = self._passwords.store(
            event.event_id, password, expires_on=self._now() + self._password_ttl
        )
        return password, record.evolve(
            password_secret_id=stored.id, password_expires_on=stored.expires_on
        )

    def _succeed(
        self,
        event: HireEvent,
        record: HireRecord,
        invocation: Invocation,
        status: Status,
        user: FoundUser,
    ) -> Outcome:
        created = status in (Status.CREATED, Status.RESTORED)
        outcome = Outcome(
            event_id=event.event_id,
            status=status,
            customer_tenant_id=event.customer_tenant_id,
            user_principal_name=user.user_principal_name or record.user_principal_name,
            correlation_id=event.correlation_id,
            attempts=invocation.delivery_number,
            user_id=user.id,
            initial_password_secret_id=record.password_secret_id if created else None,
            completed_at=utc_now_text(),
        )
        self._write(
            record,
            invocation,
            state=_STATE_OF[status],
            user_id=user.id,
            user_principal_name=outcome.user_principal_name,
            password_secret_id=record.password_secret_id if created else None,
            password_expires_on=record.password_expires_on if created else None,
            claim_owner=None,
            claim_expires_at=None,
            last_failure=None,
            last_outcome=outcome.as_message(),
        )
        return outcome

    def _answer_from_record(
        self, event: HireEvent, record: HireRecord, invocation: Invocation
    ) -> Outcome:
        """The hire succeeded before: say so, with the same user and password, and nothing else.

        The record wins over the event: an eventId that made a user never makes another, even
        when HR republishes it with changes.
        """
        return Outcome(
            event_id=event.event_id,
            status=Status.ALREADY_EXISTS,
            customer_tenant_id=record.customer_tenant_id,
            user_principal_name=record.user_principal_name,
            correlation_id=event.correlation_id,
            attempts=invocation.delivery_number,
            user_id=record.user_id,
            initial_password_secret_id=(
                record.password_secret_id if record.state in PASSWORD_STATES else None
            ),
            completed_at=utc_now_text(),
        )

    def _refuse(
        self,
        event: HireEvent,
        record: HireRecord,
        invocation: Invocation,
        refusal: ProvisioningError,
    ) -> ProvisioningError:
        """A definite answer: nothing was created, and the next try is a new request.

        Only ever for a definite refusal; a transient answer never marks a hire refused.
        """
        self._write(
            record,
            invocation,
            state=HireState.REJECTED,
            # A new MS-RequestId only once a create of this generation was sent.
            generation=record.generation + (1 if record.create_calls else 0),
            create_calls=0,
            upn_checked=False,
            last_failure=refusal.failure.as_error(),
        )
        return refusal

    def _find(
        self, event: HireEvent, upn: str, invocation: Invocation, *, inactive: bool = False
    ) -> FoundUser | None:
        invocation.calls += 1
        return self._partner_center.find_user_by_upn(
            event.customer_tenant_id,
            upn,
            correlation_id=event.correlation_guid,
            inactive=inactive,
        )

    # ------------------------------------------------------------------ endings

    def _record_end(self, event: HireEvent, invocation: Invocation, outcome: Outcome) -> None:
        """Keep the final outcome on the record and let go of the claim (best effort)."""
        try:
            record = self._ledger.get(event.event_id)
            if record is None or record.claimed_by_other(invocation.owner, self._now()):
                return
            self._ledger.update(
                record.evolve(
                    claim_owner=None,
                    claim_expires_at=None,
                    updated_at=self._now(),
                    last_failure=outcome.failure.as_error() if outcome.failure else None,
                    last_outcome=outcome.as_message(),
                )
            )
        except Exception as error:  # the outcome stands; the record is a memo
            logger.warning(
                "could not keep the outcome of %s on its ledger record (%s)",
                event.event_id,
                type(error).__name__,
            )

    def _release_claim(self, event: HireEvent, invocation: Invocation) -> None:
        """Free the hire for the next delivery at once instead of after the claim expires."""
        try:
            record = self._ledger.get(event.event_id)
            if record is not None and record.claim_owner == invocation.owner:
                self._ledger.update(record.evolve(claim_owner=None, claim_expires_at=None))
        except Exception as error:  # the claim expires by itself anyway
            logger.info(
                "could not release the claim on %s (%s)", event.event_id, type(error).__name__
            )

    def _give_up(
        self,
        document: dict[str, Any],
        failure: Failure,
        attempts: int,
        *,
        event_id: str | None,
        event: HireEvent | None = None,
    ) -> Outcome:
        # The poison copy goes first: if it cannot be written, the error propagates and the
        # host delivers the message again, so nothing is lost.
        self._poison.poison_event(document, failure, attempts=attempts)
        user = document.get("user")
        user = user if isinstance(user, dict) else {}
        return Outcome(
            event_id=event_id,
            status=Status.FAILED if failure.is_transient else Status.REJECTED,
            customer_tenant_id=event.customer_tenant_id
            if event
            else _text(document.get("customerTenantId")),
            user_principal_name=event.user.user_principal_name
            if event
            else _text(user.get("userPrincipalName")),
            correlation_id=event.correlation_id if event else _text(document.get("correlationId")),
            attempts=attempts,
            failure=failure,
            completed_at=utc_now_text(),
        )

    def _last_resort(self, delivery: Delivery, invocation: Invocation, error: Exception) -> Outcome:
        """Something failed outside every expected path (a bug, or the poison queue down)."""
        problem = _unexpected(error)
        attempts = invocation.delivery_number
        if not self._retry.is_last(attempts):
            raise RedeliveryRequested(
                f"{problem.failure.message} (delivery {attempts} of "
                f"{self._retry.max_deliveries}; the host delivers it again)"
            ) from None
        failure = replace(
            problem.failure,
            message=f"{problem.failure.message}. Gave up after {attempts} deliveries: replay "
            "the event from the poison queue once the cause is fixed",
        )
        # Unchanged body, so nothing of a half-understood event is re-serialised. If even this
        # fails, the host's own poison copy keeps the body.
        self._poison.poison_body(delivery.body, failure, attempts=attempts)
        return replace(_unreadable_outcome(failure, attempts), status=Status.FAILED)


def _upn_of(event: HireEvent, record: HireRecord) -> str:
    """The UPN this hire uses: the recorded one, else the event's (checked before use)."""
    upn = record.user_principal_name or event.user.user_principal_name
    if upn is None:  # a generated UPN is recorded before anything uses it
        raise ServiceUnavailableError("the hire's generated userPrincipalName is not recorded")
    return upn


def _same_person(event: HireEvent, user: FoundUser) -> bool:
    return event.user.immutable_id is not None and user.immutable_id == event.user.immutable_id


def _deleted_conflict(
    event: HireEvent, choice: UpnChoice, *, said: ProvisioningError | None = None
) -> Refused:
    holder = choice.holder
    assert holder is not None
    return Refused(
        Category.CONFLICT,
        f"userPrincipalName {choice.upn} belongs to a deleted user (id {holder.id}) in "
        f"customer {event.customer_tenant_id} who is someone else (another immutableId): "
        "delete that user permanently or give this hire another UPN, then replay from the "
        "poison queue",
        http_status=said.failure.http_status if said else None,
        code=said.failure.code if said else None,
    )


def _new_user(event: HireEvent, upn: str, password: str) -> NewUser:
    user = event.user
    return NewUser(
        user_principal_name=upn,
        first_name=user.first_name,
        last_name=user.last_name,
        display_name=user.display_name,
        usage_location=user.usage_location,
        immutable_id=user.immutable_id,
        password=password,
    )


def _unreadable_outcome(failure: Failure, attempts: int, *, event_id: str | None = None) -> Outcome:
    return Outcome(
        event_id=event_id,
        status=Status.REJECTED,
        customer_tenant_id=None,
        user_principal_name=None,
        correlation_id=None,
        attempts=attempts,
        failure=failure,
        completed_at=utc_now_text(),
    )


def _invalid_message(error: InvalidEvent) -> str:
    return invalid_event_message(error)


def _text(value: object) -> str | None:
    return value[:256] if isinstance(value, str) else None


def _unexpected(error: Exception) -> ProvisioningError:
    """A failure no adapter classified: treated as transient, located but not quoted."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    logger.error("unexpected %s%s while provisioning", type(error).__name__, where)
    return ProvisioningError(
        Category.UNAVAILABLE,
        f"unexpected {type(error).__name__}{where} while provisioning; see the function's logs",
    )
