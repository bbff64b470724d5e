"""In-memory fakes of the decision's ports, for the fast unit tier.

Each keeps the semantics the decision relies on (conditional writes, UPN uniqueness,
MS-RequestId replay when asked to remember) and lets a test script faults and interleavings.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.errors import (
    AnswerLost,
    DirectoryUnavailable,
    LedgerConflict,
    Refused,
    ServiceUnavailableError,
    UpnTaken,
)
from shared.domain.model import FoundUser, HireRecord, NewUser, SecretRef, SubscribedSku
from shared.domain.outcomes import Category, Failure
from shared.domain.passwords import fingerprint
from shared.domain.ports import LedgerQuery


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
        self.monotonic_value = 0.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.monotonic_value

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.monotonic_value += seconds


class InMemoryLedger:
    def __init__(self) -> None:
        self.records: dict[str, HireRecord] = {}
        self._lock = threading.Lock()
        self._etags = itertools.count(1)
        self.operations = 0
        # Scripted failures: callables raising before an operation ("get", "add", "update").
        self.fail_next: dict[str, list[Exception]] = {"get": [], "add": [], "update": []}
        self.before_update: Callable[[HireRecord], None] | None = None
        # Scripted lost answers: the insert or update is applied, then this is raised (the
        # connection dropped before the answer came back).
        self.lose_answer: dict[str, list[Exception]] = {"add": [], "update": []}
        # Every call in order ("get", "add", "update"), for tests that count them.
        self.log: list[str] = []
        # Inserts of a record already in state ``creating`` (the one-write first create).
        self.creating_inserts = 0
        self.creating_conflicts = 0  # ... that met an existing record

    def _maybe_fail(self, operation: str) -> None:
        if self.fail_next[operation]:
            raise self.fail_next[operation].pop(0)

    def get(self, event_id: str) -> HireRecord | None:
        self.operations += 1
        self.log.append("get")
        self._maybe_fail("get")
        with self._lock:
            return self.records.get(event_id)

    def add(self, record: HireRecord) -> HireRecord:
        self.operations += 1
        self.log.append("add")
        self._maybe_fail("add")
        with self._lock:
            if record.event_id in self.records:
                self.creating_conflicts += record.state.value == "creating"
                raise LedgerConflict("exists")
            stored = record.evolve(etag=str(next(self._etags)))
            self.records[record.event_id] = stored
            self.creating_inserts += record.state.value == "creating"
        self._maybe_lose("add")
        return stored

    def update(self, record: HireRecord) -> HireRecord:
        self.operations += 1
        self.log.append("update")
        if self.before_update is not None:
            self.before_update(record)
        self._maybe_fail("update")
        with self._lock:
            current = self.records.get(record.event_id)
            if current is None or current.etag != record.etag:
                raise LedgerConflict("changed")
            stored = record.evolve(etag=str(next(self._etags)))
            self.records[record.event_id] = stored
        self._maybe_lose("update")
        return stored

    def _maybe_lose(self, operation: str) -> None:
        if self.lose_answer[operation]:
            raise self.lose_answer[operation].pop(0)

    def query(self, query: LedgerQuery) -> Iterator[HireRecord]:
        for record in list(self.records.values()):
            if query.states and record.state not in query.states:
                continue
            if query.customer_tenant_id and record.customer_tenant_id != query.customer_tenant_id:
                continue
            yield record


class FakeVault:
    def __init__(self, clock: Clock) -> None:
        self.secrets: dict[str, str] = {}
        self.expiries: dict[str, datetime] = {}
        self.writes = 0
        self.reads = 0
        self._clock = clock
        # Scripted failures of the next writes (raised before anything is stored).
        self.fail_next: list[Exception] = []

    def store(self, event_id: str, password: str, *, expires_on: datetime) -> SecretRef:
        self.writes += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        secret_id = f"https://vault.test/secrets/pw-{abs(hash(event_id))}/{uuid.uuid4().hex}"
        self.secrets[secret_id] = password
        self.expiries[secret_id] = expires_on
        return SecretRef(id=secret_id, expires_on=expires_on)

    def read(self, secret_id: str) -> str:
        self.reads += 1
        return self.secrets[secret_id]


@dataclass
class _PCUser:
    id: str
    upn: str
    immutable_id: str | None
    password_digest: str
    state: str = "active"
    names: tuple[str, str, str] = ("", "", "")
    licenses: list[str] = field(default_factory=list)
    created_at: datetime | None = None  # the directory's createdDateTime
    # Bookkeeping for tests (the real service has none of it): who made or restored the user
    # (``FakePartnerCenter.actor`` at the time), its tenant, and how many more user-list reads
    # leave it out (``FakePartnerCenter.list_lag``).
    made_by: str | None = None
    restored_by: str | None = None
    tenant: str | None = None
    hidden_reads: int = 0


Fault = Callable[[], None]


@dataclass
class FakePartnerCenter:
    """One customer's users; UPNs unique (deleted users included), like Partner Center."""

    remembers_request_ids: bool = True
    users: list[_PCUser] = field(default_factory=list)
    answers: dict[str, _PCUser] = field(default_factory=dict)
    calls: dict[str, int] = field(
        default_factory=lambda: {
            "create": 0,
            "find": 0,
            "get": 0,
            "restore": 0,
            "reset": 0,
            "skus": 0,
            "assign": 0,
        }
    )
    # sku id -> [licence group, available units]
    skus: dict[str, list[Any]] = field(default_factory=dict)
    # Scripts for the calls after a create, consumed in order: "lost-after" (applied, answer
    # lost), "unavailable", "permission", "refuse".
    restore_script: list[str] = field(default_factory=list)
    reset_script: list[str] = field(default_factory=list)
    assign_script: list[str] = field(default_factory=list)
    # Scripted behaviour per call, consumed in order: "lost-after" (applied, answer lost),
    # "lost-before" (not applied, no answer), "throttle", "throttle-30s" (Retry-After 30),
    # "unavailable", "refuse", "permission".
    create_script: list[str] = field(default_factory=list)
    find_script: list[str] = field(default_factory=list)
    # Variants the documentation leaves open: a list without immutableId, a duplicate
    # answered as a plain validation error.
    list_omits_immutable_id: bool = False
    duplicate_as_plain_400: bool = False
    # Called at the start of each create (after the script is consulted): interleavings.
    on_create: Callable[[], None] | None = None
    # The directory's clock: users made by a create get ``created_at`` from it (issue 17).
    clock: Callable[[], datetime] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Optional knobs (the defaults keep the behaviour above):
    # - ``actor``: a tag stamped on users this fake creates (``made_by``) or restores
    #   (``restored_by``), so a test can tell whose delivery made which user;
    # - ``list_lag``: a user created now is left out of the next ``list_lag`` user-list reads
    #   (the list lags behind a create; the UPN is taken all the same);
    # - ``gdap_lapsed``: every call is refused 403 (the partner's GDAP role lapsed) until
    #   an operator restores it (set it back to False);
    # - ``customers``: when set, a tenant outside it is not a customer of the partner
    #   (404, code 60003), and users are kept per tenant.
    actor: str | None = None
    list_lag: int = 0
    gdap_lapsed: bool = False
    customers: set[str] | None = None

    def _gate(self, customer_tenant_id: str) -> None:
        """The refusals that come before any call looks at users: no role, no customer."""
        if self.gdap_lapsed:
            raise Refused(Category.PERMISSION, "403", http_status=403, code=900150)
        if self.customers is not None and customer_tenant_id not in self.customers:
            raise Refused(Category.VALIDATION, "404", http_status=404, code=60003)

    def _in_tenant(self, user: _PCUser, customer_tenant_id: str | None) -> bool:
        return (
            self.customers is None
            or customer_tenant_id is None
            or user.tenant is None
            or user.tenant == customer_tenant_id
        )

    def seed(
        self,
        upn: str,
        *,
        immutable_id: str | None = None,
        state: str = "active",
        created_at: datetime | None = None,
        tenant: str | None = None,
    ) -> _PCUser:
        user = _PCUser(str(uuid.uuid4()), upn, immutable_id, "unknown", state, tenant=tenant)
        user.created_at = created_at
        self.users.append(user)
        return user

    def user(self, user_id: str) -> _PCUser:
        return next(user for user in self.users if user.id == user_id)

    def holders(self, upn: str, tenant: str | None = None) -> list[_PCUser]:
        return [
            user
            for user in self.users
            if user.upn.lower() == upn.lower() and self._in_tenant(user, tenant)
        ]

    def create_user(
        self, customer_tenant_id: str, user: NewUser, *, request_id: str, correlation_id: str
    ) -> FoundUser:
        self.calls["create"] += 1
        action = self.create_script.pop(0) if self.create_script else "ok"
        if self.on_create is not None:
            self.on_create()
        if action == "throttle":
            raise ServiceUnavailableError("429", throttled=True, http_status=429, retry_after=1)
        if action == "throttle-30s":
            raise ServiceUnavailableError("429", throttled=True, http_status=429, retry_after=30)
        if action == "lost-before":
            raise AnswerLost("timeout")
        if action == "unavailable":
            raise AnswerLost("503", http_status=503)
        if action == "permission":
            raise Refused(Category.PERMISSION, "403", http_status=403, code=900150)
        if action == "refuse":
            raise Refused(Category.VALIDATION, "400", http_status=400, code=3000)
        self._gate(customer_tenant_id)
        with self.lock:
            if self.remembers_request_ids and request_id in self.answers:
                created = self.answers[request_id]
            else:
                if self.holders(user.user_principal_name, customer_tenant_id):
                    if self.duplicate_as_plain_400:
                        raise Refused(Category.VALIDATION, "400", http_status=400, code=3000)
                    raise UpnTaken("duplicate", http_status=400, code=3000)
                created = _PCUser(
                    str(uuid.uuid4()),
                    user.user_principal_name,
                    user.immutable_id,
                    fingerprint(user.password),
                    names=(user.first_name, user.last_name, user.display_name),
                    created_at=self.clock() if self.clock else None,
                    made_by=self.actor,
                    tenant=customer_tenant_id if self.customers is not None else None,
                    hidden_reads=self.list_lag,
                )
                self.users.append(created)
                self.answers[request_id] = created
        if action == "lost-after":
            raise AnswerLost("timeout after apply")
        return self._found(created, with_password=True)

    def find_user_by_upn(
        self,
        customer_tenant_id: str,
        user_principal_name: str,
        *,
        correlation_id: str,
        inactive: bool = False,
    ) -> FoundUser | None:
        self.calls["find"] += 1
        # The script is for look-ups of active users (the deleted ones are looked up too).
        action = self.find_script.pop(0) if self.find_script and not inactive else "ok"
        if action == "unavailable":
            raise ServiceUnavailableError("503", http_status=503)
        if action == "hide":  # a listing that lags behind a create
            return None
        self._gate(customer_tenant_id)
        wanted = "inactive" if inactive else "active"
        for user in self.holders(user_principal_name, customer_tenant_id):
            if user.hidden_reads > 0:  # not listed yet (``list_lag``)
                user.hidden_reads -= 1
                continue
            if user.state == wanted:
                found = self._found(user)
                if self.list_omits_immutable_id:
                    found = FoundUser(**{**found.__dict__, "immutable_id": None})
                return found
        return None

    def get_user(
        self, customer_tenant_id: str, user_id: str, *, correlation_id: str
    ) -> FoundUser | None:
        self.calls["get"] += 1
        self._gate(customer_tenant_id)
        for user in self.users:
            if user.id == user_id and self._in_tenant(user, customer_tenant_id):
                return self._found(user)
        return None

    def restore_user(
        self, customer_tenant_id: str, user_id: str, *, correlation_id: str
    ) -> FoundUser:
        self.calls["restore"] += 1
        action = self.restore_script.pop(0) if self.restore_script else "ok"
        _scripted_failure(action)
        self._gate(customer_tenant_id)
        with self.lock:
            user = self.user(user_id)
            if user.state != "active":
                if any(u.state == "active" for u in self.holders(user.upn, user.tenant)):
                    raise UpnTaken("duplicate", http_status=400, code=3000)
                user.state = "active"
                user.restored_by = self.actor
        if action == "lost-after":
            raise ServiceUnavailableError("timeout after apply")
        return self._found(user)

    def reset_password(
        self, customer_tenant_id: str, user_id: str, password: str, *, correlation_id: str
    ) -> None:
        self.calls["reset"] += 1
        action = self.reset_script.pop(0) if self.reset_script else "ok"
        _scripted_failure(action)
        self._gate(customer_tenant_id)
        with self.lock:
            user = self.user(user_id)
            if user.state != "active":
                raise Refused(Category.VALIDATION, "404", http_status=404, code=404)
            user.password_digest = fingerprint(password)
        if action == "lost-after":
            raise ServiceUnavailableError("timeout after apply")

    def subscribed_skus(
        self, customer_tenant_id: str, *, correlation_id: str
    ) -> list[SubscribedSku]:
        self.calls["skus"] += 1
        return [
            SubscribedSku(sku_id=sku, license_group_id=group, available_units=units)
            for sku, (group, units) in self.skus.items()
        ]

    def assign_licenses(
        self, customer_tenant_id: str, user_id: str, sku_ids: list[str], *, correlation_id: str
    ) -> None:
        self.calls["assign"] += 1
        action = self.assign_script.pop(0) if self.assign_script else "ok"
        _scripted_failure(action)
        with self.lock:
            user = self.user(user_id)
            if any(sku not in self.skus for sku in sku_ids):
                raise Refused(Category.VALIDATION, "400", http_status=400, code=400056)
            if len({self.skus[sku][0] for sku in sku_ids}) > 1:
                raise Refused(Category.VALIDATION, "400", http_status=400, code=400056)
            needed = [sku for sku in sku_ids if sku not in user.licenses]
            if any(self.skus[sku][1] <= 0 for sku in needed):
                raise Refused(Category.VALIDATION, "400", http_status=400, code=60012)
            for sku in needed:
                self.skus[sku][1] -= 1
                user.licenses.append(sku)
        if action == "lost-after":
            raise ServiceUnavailableError("timeout after apply")

    @staticmethod
    def _found(user: _PCUser, *, with_password: bool = False) -> FoundUser:
        return FoundUser(
            id=user.id,
            user_principal_name=user.upn,
            immutable_id=user.immutable_id,
            state=user.state,
            first_name=user.names[0] or None,
            last_name=user.names[1] or None,
            display_name=user.names[2] or None,
            password_fingerprint=user.password_digest if with_password else None,
        )


def _scripted_failure(action: str) -> None:
    if action == "unavailable":
        raise ServiceUnavailableError("503", http_status=503)
    if action == "permission":
        raise Refused(Category.PERMISSION, "403", http_status=403, code=900150)
    if action == "refuse":
        raise Refused(Category.VALIDATION, "400", http_status=400, code=3000)


@dataclass
class FakePoison:
    copies: list[dict[str, Any] | bytes] = field(default_factory=list)
    fail: list[Exception] = field(default_factory=list)

    def poison_event(self, document: dict[str, Any], failure: Failure, *, attempts: int) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.copies.append({**document, "lastFailure": failure.as_error()})

    def poison_body(self, body: bytes, failure: Failure, *, attempts: int) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.copies.append(body)


@dataclass
class FakeDirectory:
    """``UpnDirectory`` over a ``FakePartnerCenter``'s users (issue 17): one call per look-up,
    with the creation time. ``consented`` None: unknown until the first look-up tells."""

    partner_center: FakePartnerCenter
    consented: bool = True
    known: bool | None = None
    calls: int = 0
    # "hide": the directory has not replicated the user yet (answers None once).
    script: list[str] = field(default_factory=list)

    def available(self, customer_tenant_id: str) -> bool | None:
        return self.known

    def find_user_by_upn(
        self, customer_tenant_id: str, user_principal_name: str, *, correlation_id: str
    ) -> FoundUser | None:
        self.calls += 1
        if not self.consented:
            self.known = False
            raise DirectoryUnavailable("no consent")
        customers = self.partner_center.customers
        if customers is not None and customer_tenant_id not in customers:
            # Entra refuses a token for a tenant that is no customer of the partner: that
            # tenant only, as GraphUpnDirectory says (the caller falls back to the user list).
            raise DirectoryUnavailable("no such tenant")
        self.known = True
        action = self.script.pop(0) if self.script else "ok"
        if action == "hide":
            return None
        # Graph in one customer's tenant sees that customer's users only.
        for user in self.partner_center.holders(user_principal_name, customer_tenant_id):
            if user.state == "active":
                found = FakePartnerCenter._found(user)
                return FoundUser(**{**found.__dict__, "created_at": user.created_at})
        return None
