"""The provisioning decision: one hire event in, exactly one outcome out.

No SDK in sight: the service talks to Partner Center, the vault and the poison queue through
the small interfaces below, and the composition root decides what stands behind them.
"""

from __future__ import annotations

import json
import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from shared.errors import ProvisioningError, RedeliveryRequested
from shared.events import (
    HireEvent,
    InvalidEvent,
    NotAnEvent,
    decode_body,
    parse_event,
)
from shared.outcomes import Category, Failure, Outcome, Status, utc_now_text
from shared.partner_center import CustomerUser, PartnerCenterError
from shared.passwords import HireState, InitialPassword, fingerprint
from shared.poison import PoisonSink, poisoned_body, poisoned_event

logger = logging.getLogger("hire_provisioning")


class PartnerCenter(Protocol):
    def get_user(
        self, customer_tenant_id: str, user_id: str, *, correlation_id: str
    ) -> CustomerUser | None: ...

    def create_user(
        self, customer_tenant_id: str, user: dict[str, Any], *, request_id: str, correlation_id: str
    ) -> CustomerUser: ...

    def find_user_by_upn(
        self,
        customer_tenant_id: str,
        user_principal_name: str,
        *,
        correlation_id: str,
        inactive: bool = False,
    ) -> CustomerUser | None: ...


class PasswordVault(Protocol):
    def for_event(self, event: HireEvent) -> InitialPassword: ...

    def adopt(self, event: HireEvent, password_fingerprint: str) -> InitialPassword | None: ...

    def has_rival(self, event: HireEvent, password: InitialPassword) -> bool: ...

    def mark_created(self, password: InitialPassword, user_id: str) -> None: ...

    def mark_refused(self, password: InitialPassword) -> None: ...


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """In-invocation retries of transient failures, bounded so the host's lease never lapses."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    budget: float = 60.0  # seconds an invocation may spend retrying; then the host redelivers
    max_deliveries: int = 5  # host.json maxDequeueCount: the last delivery must not raise

    def delay(self, retry_number: int, retry_after: float | None, jitter: float) -> float:
        backoff = min(self.max_delay, self.base_delay * 2.0**retry_number) * (0.5 + jitter)
        return max(backoff, retry_after or 0.0)


@dataclass(frozen=True, kw_only=True)
class Delivery:
    body: bytes
    dequeue_count: int
    message_id: str | None = None


class _Attempt:
    """What one invocation has learnt so far about one event."""

    def __init__(self) -> None:
        self.calls = 0
        # A create for this event may have been applied (an earlier delivery stored the
        # password, or a create call of this one timed out or failed with a 5xx).
        self.may_have_created = False
        self.looked_up_before_create = False
        self.request_id: str | None = None


class Provisioner:
    def __init__(
        self,
        *,
        partner_center: PartnerCenter,
        passwords: PasswordVault,
        poison: PoisonSink,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._partner_center = partner_center
        self._passwords = passwords
        self._poison = poison
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._monotonic = monotonic
        self._jitter = jitter

    def handle(self, delivery: Delivery) -> Outcome:
        """Decide one delivery. Raises ``RedeliveryRequested`` when the host should retry."""
        started = self._monotonic()
        attempts = max(1, delivery.dequeue_count)
        try:
            document = decode_body(delivery.body)
        except NotAnEvent as error:
            outcome = self._reject_unreadable(delivery, error, attempts)
            self._log(outcome, started, request_id=None, calls=0, message_id=delivery.message_id)
            return outcome
        try:
            event = parse_event(document)
        except InvalidEvent as error:
            outcome = self._give_up(
                document,
                Failure(category=Category.INVALID_EVENT, message=_invalid_event_message(error)),
                attempts=attempts,
                event_id=error.event_id,
            )
            self._log(outcome, started, request_id=None, calls=0, message_id=delivery.message_id)
            return outcome

        attempt = _Attempt()
        problem: ProvisioningError | None = None
        try:
            outcome = self._provision_with_retries(event, attempt, attempts)
        except ProvisioningError as error:
            problem = error
        except Exception as error:  # the last delivery must still end in an outcome
            problem = _unexpected(error)
        if problem is not None:
            # Raised here, outside the handlers, so nothing chains to the adapters' exceptions
            # (a requests error still holds the request: headers with the token, the body).
            if problem.is_transient and attempts < self._retry.max_deliveries:
                self._log_redelivery(
                    event, problem, started, attempt, attempts, delivery.message_id
                )
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
            outcome = self._give_up(
                document, failure, attempts=attempts, event_id=event.event_id, event=event
            )
        self._log(
            outcome,
            started,
            request_id=attempt.request_id,
            calls=attempt.calls,
            message_id=delivery.message_id,
        )
        return outcome

    def _provision_with_retries(
        self, event: HireEvent, attempt: _Attempt, attempts: int
    ) -> Outcome:
        started = self._monotonic()
        for retry_number in range(self._retry.attempts):
            try:
                return self._provision_once(event, attempt, attempts)
            except ProvisioningError as error:
                if not error.is_transient or retry_number + 1 >= self._retry.attempts:
                    raise
                pause = self._retry.delay(retry_number, error.retry_after, self._jitter())
                if self._monotonic() - started + pause > self._retry.budget:
                    raise
                self._sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _provision_once(self, event: HireEvent, attempt: _Attempt, attempts: int) -> Outcome:
        password = self._passwords.for_event(event)
        if password.state is HireState.CREATED and password.user_id:
            return self._created_earlier(event, password, attempt, attempts)
        if (
            password.from_earlier_attempt
            and password.state is HireState.PENDING
            and not attempt.looked_up_before_create
        ):
            # An earlier delivery got as far as the create call: the user may exist already.
            attempt.may_have_created = True
            attempt.looked_up_before_create = True
            existing = self._find(event, attempt)
            if existing is not None:
                return self._existing_user(event, existing, password, attempt, attempts)
        try:
            attempt.calls += 1
            attempt.request_id = event.request_id_for(password.generation)
            user = self._partner_center.create_user(
                event.customer_tenant_id,
                _create_user_body(event, password),
                request_id=attempt.request_id,
                correlation_id=event.correlation_guid,
            )
        except PartnerCenterError as error:
            if not error.doubtful:
                self._passwords.mark_refused(password)
                raise
            if not error.duplicate_upn or self._passwords.has_rival(event, password):
                # No answer, or a duplicate answer while another delivery of this event is
                # creating it: this event's create may be the one that happened.
                attempt.may_have_created = True
            existing = self._find(event, attempt)
            if existing is not None:
                return self._existing_user(
                    event, existing, password, attempt, attempts, refusal=error
                )
            if error.duplicate_upn:
                problem = self._taken_but_not_listed(event, error, attempt)
                if not problem.is_transient:
                    self._passwords.mark_refused(password)
                raise problem from None
            raise
        if user.password_fingerprint and user.password_fingerprint != fingerprint(password.value):
            # Partner Center answered with the first create of this MS-RequestId: another
            # delivery of this event created the user, with the password it stored.
            winner = self._passwords.adopt(event, user.password_fingerprint)
            if winner is not None:
                self._passwords.mark_created(winner, user.id)
                return self._success(event, Status.ALREADY_EXISTS, user, winner, attempts)
        self._passwords.mark_created(password, user.id)
        return self._success(event, Status.CREATED, user, password, attempts)

    def _created_earlier(
        self, event: HireEvent, password: InitialPassword, attempt: _Attempt, attempts: int
    ) -> Outcome:
        """This event created a user before: answer from that user, whatever the event says now."""
        attempt.calls += 1
        user = self._partner_center.get_user(
            event.customer_tenant_id, str(password.user_id), correlation_id=event.correlation_guid
        )
        if user is None or (user.state or "active").lower() != "active":
            raise ProvisioningError(
                Category.CONFLICT,
                f"this event already created user {password.user_id} in customer "
                f"{event.customer_tenant_id}, which no longer exists or was deleted: restore "
                "that user and replay, or publish the hire under a new eventId",
            )
        return self._success(event, Status.ALREADY_EXISTS, user, password, attempts)

    def _find(
        self, event: HireEvent, attempt: _Attempt, *, inactive: bool = False
    ) -> CustomerUser | None:
        attempt.calls += 1
        return self._partner_center.find_user_by_upn(
            event.customer_tenant_id,
            event.user.user_principal_name,
            correlation_id=event.correlation_guid,
            inactive=inactive,
        )

    def _existing_user(
        self,
        event: HireEvent,
        user: CustomerUser,
        password: InitialPassword,
        attempt: _Attempt,
        attempts: int,
        refusal: PartnerCenterError | None = None,
    ) -> Outcome:
        wanted_id = (event.user.immutable_id or "").casefold()
        found_id = (user.immutable_id or "").casefold()
        if wanted_id and found_id:
            same_person = wanted_id == found_id
        else:
            # Without immutable ids, the user is ours only if a create of this event may have
            # been applied and the names agree; a duplicate answer to a first create is not.
            same_person = attempt.may_have_created and _same_names(event, user)
        if not same_person:
            self._passwords.mark_refused(password)
            raise ProvisioningError(
                Category.CONFLICT,
                f"userPrincipalName {event.user.user_principal_name} already belongs to another "
                f"user (id {user.id}) in customer {event.customer_tenant_id}: correct the HR "
                "record (another UPN, or the right immutableId) and republish",
                http_status=refusal.failure.http_status if refusal else None,
                code=refusal.failure.code if refusal else None,
            )
        if attempt.may_have_created:
            self._passwords.mark_created(password, user.id)
        return self._success(
            event,
            Status.ALREADY_EXISTS,
            user,
            password if attempt.may_have_created else None,
            attempts,
        )

    def _taken_but_not_listed(
        self, event: HireEvent, error: PartnerCenterError, attempt: _Attempt
    ) -> ProvisioningError:
        deleted = self._find(event, attempt, inactive=True)
        if deleted is not None:
            return ProvisioningError(
                Category.CONFLICT,
                f"userPrincipalName {event.user.user_principal_name} belongs to a deleted user "
                f"(id {deleted.id}) in customer {event.customer_tenant_id}: restore that user or "
                "delete it permanently, then replay from the poison queue",
                http_status=error.failure.http_status,
                code=error.failure.code,
            )
        return ProvisioningError(
            Category.UNAVAILABLE,
            f"Partner Center says userPrincipalName {event.user.user_principal_name} is taken "
            "but does not list the user yet",
            http_status=error.failure.http_status,
            code=error.failure.code,
        )

    def _success(
        self,
        event: HireEvent,
        status: Status,
        user: CustomerUser,
        password: InitialPassword | None,
        attempts: int,
    ) -> Outcome:
        return Outcome(
            event_id=event.event_id,
            status=status,
            customer_tenant_id=event.customer_tenant_id,
            user_principal_name=user.user_principal_name or event.user.user_principal_name,
            correlation_id=event.correlation_id,
            attempts=attempts,
            user_id=user.id,
            initial_password_secret_id=password.secret_id if password else None,
            completed_at=utc_now_text(),
        )

    def _give_up(
        self,
        document: dict[str, Any],
        failure: Failure,
        *,
        attempts: int,
        event_id: str | None,
        event: HireEvent | None = None,
    ) -> Outcome:
        # The poison copy goes first: if it cannot be written, the error propagates and the
        # host delivers the message again, so nothing is lost.
        self._poison.send(poisoned_event(document, failure, attempts=attempts))
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

    def _reject_unreadable(self, delivery: Delivery, error: NotAnEvent, attempts: int) -> Outcome:
        failure = Failure(category=Category.INVALID_EVENT, message=_invalid_event_message(error))
        self._poison.send(poisoned_body(delivery.body, failure, attempts=attempts))
        return Outcome(
            event_id=error.event_id,
            status=Status.REJECTED,
            customer_tenant_id=None,
            user_principal_name=None,
            correlation_id=None,
            attempts=attempts,
            failure=failure,
            completed_at=utc_now_text(),
        )

    def _log(
        self,
        outcome: Outcome,
        started: float,
        *,
        request_id: str | None,
        calls: int,
        message_id: str | None,
    ) -> None:
        self._log_decision(
            status=outcome.status.value,
            failure=outcome.failure,
            event_id=outcome.event_id,
            correlation_id=outcome.correlation_id,
            customer=outcome.customer_tenant_id,
            attempts=outcome.attempts,
            started=started,
            request_id=request_id,
            calls=calls,
            message_id=message_id,
        )

    def _log_redelivery(
        self,
        event: HireEvent,
        error: ProvisioningError,
        started: float,
        attempt: _Attempt,
        attempts: int,
        message_id: str | None,
    ) -> None:
        self._log_decision(
            status="retrying",
            failure=error.failure,
            event_id=event.event_id,
            correlation_id=event.correlation_id,
            customer=event.customer_tenant_id,
            attempts=attempts,
            started=started,
            request_id=attempt.request_id,
            calls=attempt.calls,
            message_id=message_id,
        )

    def _log_decision(
        self,
        *,
        status: str,
        failure: Failure | None,
        event_id: str | None,
        correlation_id: str | None,
        customer: str | None,
        attempts: int,
        started: float,
        request_id: str | None,
        calls: int,
        message_id: str | None,
    ) -> None:
        """The one structured line per decision (retries included); never a secret in it."""
        fields: dict[str, object] = {
            "eventId": event_id,
            "correlationId": correlation_id,
            "requestId": request_id,
            "messageId": message_id,
            "customer": customer,
            "status": status,
            "category": failure.category.value if failure else None,
            "attempts": attempts,
            "calls": calls,
            "durationMs": round((self._monotonic() - started) * 1000),
        }
        if failure:
            fields["error"] = failure.message
        logger.log(
            logging.INFO if failure is None else logging.WARNING,
            "decision %s",
            json.dumps(fields, ensure_ascii=False),
            extra={"decision": fields},
        )


def _create_user_body(event: HireEvent, password: InitialPassword) -> dict[str, Any]:
    user = event.user
    body: dict[str, Any] = {
        "usageLocation": user.usage_location,
        "userPrincipalName": user.user_principal_name,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "displayName": user.display_name,
        "passwordProfile": {"password": password.value, "forceChangePassword": True},
        "attributes": {"objectType": "CustomerUser"},
    }
    if user.immutable_id:
        body["immutableId"] = user.immutable_id
    return body


def _same_names(event: HireEvent, user: CustomerUser) -> bool:
    def same(wanted: str, found: str | None) -> bool:
        return found is not None and wanted.strip().casefold() == found.strip().casefold()

    return (
        same(event.user.display_name, user.display_name)
        and same(event.user.first_name, user.first_name)
        and same(event.user.last_name, user.last_name)
    )


def _invalid_event_message(error: InvalidEvent) -> str:
    return (
        f"the hire event is invalid: {error}. Correct the HR record and publish the event "
        "again (see the event contract)"
    )


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
