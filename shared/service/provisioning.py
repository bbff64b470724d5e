"""The delivery handling: one queue message in, exactly one outcome out.

Every decision is taken from the hire's record in the ledger, never from a guess. A delivery
first *claims* the hire (a conditional write naming it as owner, for a limited time); only the
claim holder stores a password, calls Partner Center or moves the record on. This module owns
the delivery's side: reading the body, the claim (waiting for another delivery, taking over a
dead one's), retries within an invocation, redelivery, the last delivery, poison copies and the
outcome. What is done with a claimed hire is the hire workflow (``shared.service.workflow``), which
writes the record *before* each create or restore call, so a delivery that dies between the
call and the record leaves enough behind for the next one to finish the hire.

No SDK and no adapter in sight: the service works through the ports in ``shared.domain.ports``.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.domain.errors import (
    LedgerConflict,
    ProvisioningError,
    RedeliveryRequested,
    ServiceUnavailableError,
)
from shared.domain.events import (
    HireEvent,
    InvalidEvent,
    NotAnEvent,
    decode_body,
    invalid_event_message,
    parse_event,
)
from shared.domain.model import SUCCESS_STATES, HireRecord, HireState
from shared.domain.outcomes import (
    Category,
    Failure,
    Outcome,
    Status,
    outcome_from_message,
    utc_now_text,
)
from shared.domain.passwords import generate_password
from shared.domain.ports import (
    HireLedger,
    NoTelemetry,
    PartnerCenter,
    PasswordVault,
    PoisonSink,
    Telemetry,
    UpnDirectory,
)
from shared.domain.retry import RetryPolicy
from shared.domain.upn import DEFAULT_TEMPLATE
from shared.service.decisions import DecisionLog
from shared.service.invocation import Delivery, Invocation
from shared.service.licensing import LicenseStep
from shared.service.workflow import DecideAgain, HireServices, HireWorkflow, WaitForEarlierSend

__all__ = ["Delivery", "Provisioner", "RetryPolicy"]

logger = logging.getLogger("hire_provisioning")

# A hire's record is re-read at most this many times in one step when others write it.
MAX_LEDGER_RACES = 5
# How often one step may pass a generated UPN that someone else took after it was checked.
MAX_UPN_MOVES = 5
_USER_EXISTS = frozenset({Status.CREATED, Status.RESTORED, Status.ALREADY_EXISTS})


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
        license_step: LicenseStep | None = None,
        decisions: DecisionLog | None = None,
        directory: UpnDirectory | None = None,
    ) -> None:
        """``now`` is the one clock of the decision (claims, records, outcomes' completedAt).
        ``licences`` and ``decisions`` are wired by the composition root; the defaults build
        them from the same ports (the unit tier)."""
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
        self._license_step = license_step or LicenseStep(
            partner_center=partner_center, ledger=ledger, poison=poison, now=now
        )
        self._decisions = decisions or DecisionLog(telemetry=self._telemetry, monotonic=monotonic)
        self._services = HireServices(
            partner_center=partner_center,
            passwords=passwords,
            ledger=ledger,
            now=now,
            new_password=new_password,
            password_ttl=password_ttl,
            claim_ttl=claim_ttl,
            upn_template=upn_template,
            directory=directory,
        )

    # ------------------------------------------------------------------ entry point

    def handle(self, delivery: Delivery) -> Outcome:
        """Decide one delivery. Raises ``RedeliveryRequested`` when the host should retry."""
        with self._telemetry.invocation(delivery.body, max(1, delivery.dequeue_count)) as trace:
            outcome = self._decide(delivery)
        # The outcome names its trace when the event carried one (docs/contract.md section 2).
        return replace(outcome, traceparent=trace.traceparent) if trace.traceparent else outcome

    def _decide(self, delivery: Delivery) -> Outcome:
        started = self._monotonic()
        invocation = Invocation(
            delivery, last=self._retry.is_last(max(1, delivery.dequeue_count))
        )
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
            outcome = _unreadable_outcome(
                failure, attempts, self._now_text(), event_id=error.event_id
            )
            self._record_invalid(outcome, None)
            return outcome
        try:
            event = parse_event(document)
            invocation.event_id = event.event_id
            invocation.replayed = "replay" in document
        except InvalidEvent as error:
            failure = Failure(category=Category.INVALID_EVENT, message=_invalid_message(error))
            outcome = self._give_up(document, failure, attempts, event_id=error.event_id)
            self._record_invalid(outcome, document.get("customerTenantId"))
            return outcome

        try:
            outcome = self._provision_with_retries(event, invocation)
            self._license_step.poison_failures(document, outcome, attempts)
            return outcome
        except _Busy:
            problem: ProvisioningError = ServiceUnavailableError(
                "another delivery of this hire is at work on it"
            )
        except WaitForEarlierSend as waiting:
            problem = ServiceUnavailableError(str(waiting))
        except ProvisioningError as error:
            problem = error
        except Exception as error:  # unclassified: transient, located, not quoted
            problem = _unexpected(error)
        if invocation.user_outcome is not None and (
            not problem.is_transient or self._retry.is_last(attempts)
        ):
            # The user exists: it stays created; only the licences still missing failed.
            outcome = self._license_step.given_up(event, invocation.user_outcome, problem.failure)
            self._license_step.poison_failures(document, outcome, attempts)
            return outcome
        if problem.is_transient and not self._retry.is_last(attempts):
            self._release_claim(event.event_id, invocation)
            self._decisions.redelivering(
                event, problem, invocation=invocation, message_id=delivery.message_id
            )
            # Raised here, outside the handlers, so nothing chains to the adapters' exceptions.
            raise RedeliveryRequested(
                f"event {event.event_id}: {problem.failure.message} (delivery {attempts} of "
                f"{self._retry.max_deliveries}; the host delivers it again)"
            )
        succeeded = self._succeeded_meanwhile(event, invocation)
        if succeeded is not None:
            # Another delivery took the hire over and made or found its user while this one
            # failed: one outcome story, that success, and no poison copy.
            return succeeded
        failure = problem.failure
        if failure.is_transient:
            failure = replace(
                failure,
                message=f"{failure.message}. Gave up after {attempts} deliveries: once the "
                "service has recovered, replay the event from the poison queue",
            )
        outcome = self._give_up(document, failure, attempts, event_id=event.event_id, event=event)
        succeeded = self._record_end(event, invocation, outcome)
        # Read once more as late as possible: a success written while this delivery wrote its
        # poison copy is the story (the copy's replay answers already_exists, harmlessly).
        return succeeded or outcome

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
                return self._license_step.assign(event, invocation.user_outcome, invocation)
            except (LedgerConflict, DecideAgain):
                continue  # someone wrote the record since we read it: decide again from it
        raise ServiceUnavailableError(
            "the hire's ledger record kept changing under this delivery; it is delivered again"
        )

    def _step_once(self, event: HireEvent, invocation: Invocation) -> Outcome:
        hire = HireWorkflow(self._services, event, invocation)
        if self._likely_first(invocation) and hire.creates_directly():
            # One write before the create (docs/cost-per-hire.md, "Fewer writes per hire").
            created = hire.create_with_opening(self._new_record(event, invocation))
            if created is not None:
                return created
            # The record exists (another delivery's, or this one's own insert whose answer
            # was lost): read it and go on as every other delivery does.
        record = self._first_read(event, invocation)
        invocation.state = record.state
        if record.state in SUCCESS_STATES:
            return hire.answer_from_record(record)
        if record.claimed_by_other(invocation.owner, self._now()):
            record = self._wait_for_other(event, record, invocation)
            invocation.state = record.state
            if record.state in SUCCESS_STATES:
                return hire.answer_from_record(record)
            adopted = self._adopt_refusal(record, invocation)
            if adopted is not None:
                return adopted
        return hire.run(self._claim(hire, record))

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
        record = self._ledger.get(event.event_id)
        if record is None:
            return self._open_record(event, invocation)
        if not invocation.record_read:
            # What the record said before this invocation could wait for anyone (F6).
            invocation.record_read = True
            invocation.outcome_at_first_read = record.last_outcome
        return record

    def _likely_first(self, invocation: Invocation) -> bool:
        """This delivery is probably the hire's first: the message's first delivery, not an
        operator's replay, and nothing inserted yet. Only then is a password written before
        the record is known (a later delivery would mostly find the record and waste it)."""
        return (
            invocation.delivery_number == 1
            and not invocation.replayed
            and not invocation.insert_tried
        )

    def _new_record(self, event: HireEvent, invocation: Invocation) -> HireRecord:
        """NEW, claimed by this delivery: the record of a hire the ledger has not seen."""
        now = self._now()
        return HireRecord.opened(
            event_id=event.event_id,
            customer_tenant_id=event.customer_tenant_id,
            user_principal_name=event.user.user_principal_name,
            owner=invocation.owner,
            claim_until=now + self._claim_ttl,
            now=now,
        )

    def _open_record(self, event: HireEvent, invocation: Invocation) -> HireRecord:
        # LedgerConflict: another delivery was first
        added = self._ledger.add(self._new_record(event, invocation))
        invocation.counted = True
        return added

    def _claim(self, hire: HireWorkflow, record: HireRecord) -> HireRecord:
        invocation = hire.invocation
        if record.claim_owner == invocation.owner:
            return record
        now = self._now()
        claimed = record.claimed(
            invocation.owner, now + self._claim_ttl, now, count=not invocation.counted
        )
        return hire.store(claimed)

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
        """The delivery we waited for refused the hire: say the same, do not try again.

        Only a refusal written after this delivery first read the record is the one it waited
        for; one already there was reported before (and perhaps fixed since): this delivery
        then tries for itself. Decided by the record, not the clock (two refusals may share a
        second).
        """
        if record.state is not HireState.REJECTED or not record.last_outcome:
            return None
        if record.last_outcome == invocation.outcome_at_first_read:
            return None
        earlier = outcome_from_message(record.last_outcome)
        if earlier is None or earlier.status is not Status.REJECTED:
            return None
        return replace(earlier, attempts=invocation.delivery_number, completed_at=self._now_text())

    # ------------------------------------------------------------------ endings

    def _now_text(self) -> str:
        return utc_now_text(self._now())

    def _record_invalid(self, outcome: Outcome, customer: object) -> None:
        """An invalid event with a usable eventId that the ledger has never seen gets a record
        in state ``rejected`` (so ``hires show`` answers for it); an existing record is never
        touched. Best effort: the outcome and the poison copy stand without it."""
        if outcome.event_id is None:
            return
        try:
            self._ledger.add(
                HireRecord.rejected_on_arrival(
                    event_id=outcome.event_id,
                    customer_tenant_id=_guid_or_empty(customer),
                    outcome=outcome.as_message(),
                    failure=outcome.failure.as_error() if outcome.failure else None,
                    now=self._now(),
                )
            )
        except LedgerConflict:
            pass  # the hire has a record: an invalid copy changes nothing of it
        except Exception as error:  # a memo; the outcome is what counts
            logger.info(
                "could not record the invalid event %s (%s)", outcome.event_id, type(error).__name__
            )

    def _succeeded_meanwhile(self, event: HireEvent, invocation: Invocation) -> Outcome | None:
        """The record's success when the hire succeeded behind this delivery's back (its claim
        ran out and another delivery finished the hire), else None. Best effort."""
        try:
            record = self._ledger.get(event.event_id)
        except Exception:  # the ledger may be what failed: give up as planned
            return None
        if record is None or record.state not in SUCCESS_STATES:
            return None
        return HireWorkflow(self._services, event, invocation).answer_from_record(record)

    def _record_end(
        self, event: HireEvent, invocation: Invocation, outcome: Outcome
    ) -> Outcome | None:
        """Keep the final outcome on the record and let go of the claim (best effort). A
        success on the record is never overwritten by a later failure: it is returned, to be
        reported instead."""
        try:
            record = self._ledger.get(event.event_id)
            if record is not None and record.state in SUCCESS_STATES:
                return HireWorkflow(self._services, event, invocation).answer_from_record(record)
            if record is None or record.claimed_by_other(invocation.owner, self._now()):
                return None
            self._ledger.update(
                record.ended(
                    outcome.as_message(),
                    outcome.failure.as_error() if outcome.failure else None,
                    self._now(),
                )
            )
        except Exception as error:  # the outcome stands; the record is a memo
            logger.warning(
                "could not keep the outcome of %s on its ledger record (%s)",
                event.event_id,
                type(error).__name__,
            )
        return None

    def _release_claim(self, event_id: str, invocation: Invocation) -> None:
        """Free the hire for the next delivery at once instead of after the claim expires."""
        try:
            record = self._ledger.get(event_id)
            if record is not None and record.claim_owner == invocation.owner:
                self._ledger.update(record.released())
        except Exception as error:  # the claim expires by itself anyway
            logger.info(
                "could not release the claim on %s (%s)", event_id, type(error).__name__
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
            completed_at=self._now_text(),
        )

    def _last_resort(self, delivery: Delivery, invocation: Invocation, error: Exception) -> Outcome:
        """Something failed outside every expected path (a bug, or the poison queue down)."""
        problem = _unexpected(error)
        attempts = invocation.delivery_number
        if invocation.event_id is not None:
            # This delivery may hold the hire's claim: the next one need not wait it out.
            self._release_claim(invocation.event_id, invocation)
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
        return replace(
            _unreadable_outcome(failure, attempts, self._now_text()), status=Status.FAILED
        )


def _unreadable_outcome(
    failure: Failure, attempts: int, completed_at: str, *, event_id: str | None = None
) -> Outcome:
    return Outcome(
        event_id=event_id,
        status=Status.REJECTED,
        customer_tenant_id=None,
        user_principal_name=None,
        correlation_id=None,
        attempts=attempts,
        failure=failure,
        completed_at=completed_at,
    )


def _invalid_message(error: InvalidEvent) -> str:
    return invalid_event_message(error)


def _guid_or_empty(value: object) -> str:
    """A customer id as the contract spells it (a GUID, lower case), else empty."""
    if not isinstance(value, str) or len(value) != 36:
        return ""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return ""


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
