"""The ports the decision depends on; adapters (and the unit tier's fakes) implement them.

Each raises only the kinds of failure in ``shared.domain.errors``; none leaks a wire format.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.domain.model import FoundUser, HireRecord, HireState, NewUser, SecretRef, SubscribedSku
from shared.domain.outcomes import Failure


class PartnerCenter(Protocol):
    def create_user(
        self, customer_tenant_id: str, user: NewUser, *, request_id: str, correlation_id: str
    ) -> FoundUser:
        """Raises ``AnswerLost`` (may have been applied), ``UpnTaken``, ``Refused``, or a
        transient ``ServiceUnavailableError``."""
        ...

    def get_user(
        self, customer_tenant_id: str, user_id: str, *, correlation_id: str
    ) -> FoundUser | None: ...

    def find_user_by_upn(
        self,
        customer_tenant_id: str,
        user_principal_name: str,
        *,
        correlation_id: str,
        inactive: bool = False,
    ) -> FoundUser | None: ...

    def restore_user(
        self, customer_tenant_id: str, user_id: str, *, correlation_id: str
    ) -> FoundUser:
        """Bring a deleted user back (harmless to repeat). ``UpnTaken`` when an active user
        holds its UPN meanwhile, ``Refused`` otherwise, or a transient error."""
        ...

    def reset_password(
        self, customer_tenant_id: str, user_id: str, password: str, *, correlation_id: str
    ) -> None:
        """Give the user ``password`` (to change at first sign-in); harmless to repeat."""
        ...

    def subscribed_skus(
        self, customer_tenant_id: str, *, correlation_id: str
    ) -> list[SubscribedSku]: ...

    def assign_licenses(
        self, customer_tenant_id: str, user_id: str, sku_ids: list[str], *, correlation_id: str
    ) -> None:
        """One request; every SKU of one licence group. ``Refused`` (code 60012: no units
        left) assigns none of them; a repeat of a success changes nothing."""
        ...


class UpnDirectory(Protocol):
    """Who holds a UPN among a customer's active users, in one call where the partner may read
    the customer's directory (Microsoft Graph in the customer's tenant, ``UPN_LOOKUP``).

    Partner Center itself has no look-up by UPN (only a paged list of every user), so this is
    what keeps a hire's cost independent of the customer's size.
    """

    def available(self, customer_tenant_id: str) -> bool | None:
        """Whether look-ups for this customer go to the directory: True or False once known
        in this process, None before the first look-up has told (``auto`` mode)."""
        ...

    def find_user_by_upn(
        self, customer_tenant_id: str, user_principal_name: str, *, correlation_id: str
    ) -> FoundUser | None:
        """The active user holding the UPN (with ``created_at``), or None.

        None for a user created seconds ago may be the directory's replication delay, not
        proof of absence. Raises ``DirectoryUnavailable`` when the customer has not consented
        (the caller falls back to Partner Center's user list; ``available`` then says False),
        ``Refused`` when ``UPN_LOOKUP=graph`` and it is not consented, or a transient
        ``ServiceUnavailableError`` (throttling, timeouts).
        """
        ...


class PasswordVault(Protocol):
    """Initial passwords, one secret per hire; the ledger records which version is the one."""

    def store(self, event_id: str, password: str, *, expires_on: datetime) -> SecretRef: ...

    def read(self, secret_id: str) -> str:
        """The value of exactly that version."""
        ...


@dataclass(frozen=True, kw_only=True)
class LedgerQuery:
    states: frozenset[HireState] | None = None
    customer_tenant_id: str | None = None
    since: datetime | None = None
    limit: int | None = None


class HireLedger(Protocol):
    """One record per eventId; every change is conditional (``LedgerConflict`` otherwise)."""

    def get(self, event_id: str) -> HireRecord | None: ...

    def add(self, record: HireRecord) -> HireRecord:
        """Insert if absent; ``LedgerConflict`` when a record for the event exists."""
        ...

    def update(self, record: HireRecord) -> HireRecord:
        """Replace the record if nobody wrote it since ``record.etag``; returns the new etag."""
        ...

    def query(self, query: LedgerQuery) -> Iterator[HireRecord]: ...


class RequestQueue(Protocol):
    """The request queue, for the HTTP intake: the adapter owns the message encoding."""

    def send(self, body: bytes) -> None:
        """Queue one event's UTF-8 JSON; raises a transient ``ServiceUnavailableError``."""
        ...

    @property
    def max_body_bytes(self) -> int:
        """The largest body one message can carry once encoded (48 KiB under base64)."""
        ...


class HireReader(Protocol):
    """The ledger read-only, as the HTTP status endpoint and the intake use it."""

    def get(self, event_id: str) -> HireRecord | None: ...


class PoisonSink(Protocol):
    """The poison queue; the adapter owns the poison copy's format (docs/contract.md section 3)."""

    def poison_event(
        self, document: dict[str, Any], failure: Failure, *, attempts: int
    ) -> None: ...

    def poison_body(self, body: bytes, failure: Failure, *, attempts: int) -> None:
        """A body that is not a JSON object: kept unchanged (the failure is for the log)."""
        ...


class InvocationTrace(Protocol):
    """The trace one invocation belongs to, as the outcome reports it."""

    @property
    def traceparent(self) -> str | None:
        """W3C ``traceparent`` for the outcome; None unless the event carried a valid one."""
        ...


class Telemetry(Protocol):
    """Traces and metrics of the decision; an implementation never exports a secret or a UPN."""

    def invocation(
        self, body: bytes, delivery_number: int
    ) -> AbstractContextManager[InvocationTrace]:
        """The span of one invocation, continuing the event's ``traceparent`` when it has one."""
        ...

    def decided(self, fields: Mapping[str, object]) -> None:
        """The decision line (a final outcome, or ``status`` "retrying" for a redelivery)."""
        ...

    def retried(self, category: str) -> None:
        """A transient failure is retried within the invocation."""
        ...

    def claim_lost(self) -> None:
        """Another delivery holds the hire's claim: this one waits for it."""
        ...


class _NoTrace:
    traceparent: str | None = None


class NoTelemetry:
    """The default: nothing is traced or counted."""

    @contextmanager
    def invocation(self, body: bytes, delivery_number: int) -> Iterator[InvocationTrace]:
        yield _NoTrace()

    def decided(self, fields: Mapping[str, object]) -> None:
        pass

    def retried(self, category: str) -> None:
        pass

    def claim_lost(self) -> None:
        pass
