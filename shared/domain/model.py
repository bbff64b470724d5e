"""The decision's vocabulary: the user to create, the user found, the hire's record.

Plain values, no I/O: the service layer (``shared.service.provisioning``) decides with these, and
the
adapters translate them to and from their wire formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, kw_only=True)
class NewUser:
    """What a create call asks Partner Center for; ``password`` never leaves the adapter."""

    user_principal_name: str
    first_name: str
    last_name: str
    display_name: str
    usage_location: str
    immutable_id: str | None
    password: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class FoundUser:
    """A customer user as Partner Center describes it (never with a password)."""

    id: str
    user_principal_name: str
    display_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    immutable_id: str | None = None
    state: str | None = None
    # When the directory made the user (Microsoft Graph's ``createdDateTime``); Partner Center's
    # user resource has no creation time, so users read from it leave this None.
    created_at: datetime | None = field(default=None, compare=False)
    # A digest of the password Partner Center says the user got (it echoes the password on
    # create): proves whether this hire's password is the one the user has.
    password_fingerprint: str | None = field(default=None, repr=False, compare=False)

    @property
    def active(self) -> bool:
        return (self.state or "active").lower() == "active"


@dataclass(frozen=True, kw_only=True)
class SecretRef:
    """An initial password's exact Key Vault secret: name and version, never the value."""

    id: str  # https://<vault>/secrets/<name>/<version>
    expires_on: datetime | None = None


class HireState(StrEnum):
    """How far a hire got. Only ``CREATING`` means a create may be in flight or applied."""

    NEW = "new"  # claimed; no password yet
    CREATING = "creating"  # password recorded; a create of ``generation`` may have been sent
    CREATED = "created"  # this hire's create made ``user_id``
    EXISTING = "existing"  # the user existed before this hire (same immutableId)
    REJECTED = "rejected"  # the last try was refused for good; a replay starts a new generation
    # A rehire: the password is recorded and a restore and reset of the deleted ``user_id``
    # may have been sent; the next delivery finishes both (each is harmless to repeat).
    RESTORING = "restoring"
    RESTORED = "restored"  # ``user_id`` was restored and holds the recorded password


# How far apart the service's clock and the directory's may be when a user's creation time is
# compared with this hire's first create (the residual window: docs/design.md).
CLOCK_TOLERANCE = timedelta(seconds=60)
# How long after a create call is written to the record Partner Center can still apply it.
# The call usually goes out at once and the client gives up after 30 s, but a retry within
# the same invocation may send a call it wrote earlier (F14), so the bound is the whole
# invocation: host.json's functionTimeout (10 minutes; tests/hostile/test_time_bounds.py
# keeps it above the slowest invocation), with a margin. A user made later than this after
# a hire's last call that may have applied was not made by that call.
LATEST_APPLY_AFTER_CALL = timedelta(minutes=15)

SUCCESS_STATES = frozenset({HireState.CREATED, HireState.EXISTING, HireState.RESTORED})
# States whose recorded secret holds the user's password.
PASSWORD_STATES = frozenset({HireState.CREATED, HireState.RESTORED})


@dataclass(frozen=True, kw_only=True)
class SubscribedSku:
    """One product the customer subscribes to (Partner Center ``subscribedskus``)."""

    sku_id: str
    license_group_id: str
    available_units: int
    name: str | None = None


class SendKind(StrEnum):
    CREATE = "create"  # a create of one MS-RequestId generation
    RESTORE = "restore"  # the restore and password reset of a deleted user (a rehire)


def _time_or_none(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, kw_only=True)
class Send:
    """A create or restore that may have been applied, kept on the record until it is settled.

    Settled means proven applied (the hire's user is found or answered: the hire succeeds) or
    proven not applied (its only call was refused, or someone else holds its UPN). Until then
    it is a fact about the customer tenant that no refusal, republish or replay may erase: the
    identity rule asks every unsettled send whether it made a user found later.
    """

    kind: SendKind
    user_principal_name: str
    # MS-RequestId generation of a create (``HireEvent.request_id_for``); 0 for a restore.
    generation: int = 0
    immutable_id: str | None = None
    # The UPN was found free just before this send's first call: a user found holding it
    # later (without immutableId) can only have been made by it.
    upn_checked: bool = False
    # The secret holding the password the call carried (the user holds it if it applied).
    password_secret_id: str | None = None
    password_expires_on: datetime | None = None
    user_id: str | None = None  # a restore's deleted user
    calls: int = 0  # calls sent; a refusal of the only one proves nothing was applied
    # When this hire first sent a create of this UPN (the service's clock): with a directory
    # that tells when a user was made, a holder made after it can only be this hire's.
    first_sent_at: datetime | None = None
    # When its latest call, and the one before, were written (the service's clock; None in rows
    # written before session 7): a user made long after every call that may have applied was
    # not made by this send. The one before stands in when the latest call was refused.
    last_sent_at: datetime | None = None
    previous_sent_at: datetime | None = None
    # False for a send rebuilt from a row written before sends were kept: its immutableId was
    # not recorded, and the next delivery takes the event's (``HireRecord.identity_adopted``).
    identity_known: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "userPrincipalName": self.user_principal_name,
            "generation": self.generation,
            "immutableId": self.immutable_id,
            "upnChecked": self.upn_checked,
            "passwordSecretId": self.password_secret_id,
            "passwordExpiresOn": (
                self.password_expires_on.isoformat() if self.password_expires_on else None
            ),
            "userId": self.user_id,
            "calls": self.calls,
            "firstSentAt": self.first_sent_at.isoformat() if self.first_sent_at else None,
            "lastSentAt": self.last_sent_at.isoformat() if self.last_sent_at else None,
            "previousSentAt": (
                self.previous_sent_at.isoformat() if self.previous_sent_at else None
            ),
            "identityKnown": self.identity_known,
        }

    @classmethod
    def from_json(cls, value: Any) -> Send:
        """Raises ``ValueError`` (or ``TypeError``/``KeyError``) for a value it cannot read."""
        if not isinstance(value, dict):
            raise ValueError("a send must be a JSON object")
        expires = value.get("passwordExpiresOn")
        immutable_id = value.get("immutableId")
        secret = value.get("passwordSecretId")
        user_id = value.get("userId")
        return cls(
            kind=SendKind(value["kind"]),
            user_principal_name=str(value["userPrincipalName"]),
            generation=int(value.get("generation") or 0),
            immutable_id=str(immutable_id) if immutable_id is not None else None,
            upn_checked=bool(value.get("upnChecked")),
            password_secret_id=str(secret) if secret is not None else None,
            password_expires_on=datetime.fromisoformat(expires) if expires else None,
            user_id=str(user_id) if user_id is not None else None,
            calls=int(value.get("calls") or 0),
            first_sent_at=_time_or_none(value.get("firstSentAt")),
            last_sent_at=_time_or_none(value.get("lastSentAt")),
            previous_sent_at=_time_or_none(value.get("previousSentAt")),
            identity_known=value.get("identityKnown", True) is not False,
        )

    def may_have_made(self, user: FoundUser) -> bool:
        """The identity rule for one unsettled create: could it have made ``user``?

        UPNs are unique, so only a user holding this send's UPN; with ``immutableId`` only one
        with exactly that immutableId, and not one the directory says was made before the
        send's first call or long after its last (the same person from before, or made by
        someone else since, whom a lost answer and a forgotten ``MS-RequestId`` would otherwise
        pass off as this hire's user, with a password that account does not have); without
        it, only a user without one (a user list that leaves immutableId out cannot tell), and
        only when the UPN was free before the send or the directory dates the user within
        the send's calls.
        """
        if self.kind is not SendKind.CREATE or self.calls == 0:
            return False
        if user.user_principal_name.casefold() != self.user_principal_name.casefold():
            return False
        if self.immutable_id is not None:
            # A creation time only the directory gives (Partner Center has none): without
            # it, the same immutableId after a possibly applied create stays this hire's.
            return (
                user.immutable_id == self.immutable_id
                and self.made_while_sending(user) is not False
            )
        if user.immutable_id is not None:
            return False  # this create carried no immutableId: the user it made has none
        if self.upn_checked:
            return True
        return self.made_while_sending(user) is True

    def made_while_sending(self, user: FoundUser) -> bool | None:
        """Whether ``user`` was made while one of this send's calls could apply: from when a
        call was written until ``LATEST_APPLY_AFTER_CALL`` after it, within the tolerance for
        the two clocks. None when the first call's time or the user's is unknown.

        The calls' times are kept as the first, the one before the last and the last; a call
        between those two is somewhere between them. A user made in a gap between calls (a
        week after the first, just before a resend) was made by none of them.
        """
        if self.first_sent_at is None or user.created_at is None:
            return None
        made = user.created_at
        if made < self.first_sent_at - CLOCK_TOLERANCE:
            return False
        if self.last_sent_at is None:
            return True  # a row from before the call times were kept: no upper bound
        late = LATEST_APPLY_AFTER_CALL + CLOCK_TOLERANCE
        if self.calls <= 2:
            before_last = self.first_sent_at
        else:
            before_last = self.previous_sent_at or self.last_sent_at
        if made <= before_last + late:
            return True
        return self.last_sent_at - CLOCK_TOLERANCE <= made <= self.last_sent_at + late

    def without_latest_call(self) -> Send | None:
        """This send as if its latest call had not gone out (it was refused: nothing of it
        applied); None when it was the only call."""
        if self.calls <= 1:
            return None
        return replace(
            self, calls=self.calls - 1, last_sent_at=self.previous_sent_at, previous_sent_at=None
        )


@dataclass(frozen=True, kw_only=True)
class HireRecord:
    """One hire in the ledger (docs/contract.md section 5). Nothing in it is secret.

    ``etag`` is the version the ledger last returned: every change is conditional on it, so
    two deliveries can never both act on the same state.

    The record changes only through the transitions below (each says what it keeps); the
    decision (``shared.service.provisioning``) writes what they return, renewing its claim.
    """

    event_id: str
    customer_tenant_id: str
    state: HireState = HireState.NEW
    user_principal_name: str | None = None
    password_secret_id: str | None = None
    password_expires_on: datetime | None = None
    # MS-RequestId generation of the next (or current) create: the same on every retry of a
    # create, a new one after a definite answer (Partner Center asks for both).
    generation: int = 0
    # Creates and restores that may have been applied and are not settled yet.
    sends: tuple[Send, ...] = ()
    user_id: str | None = None
    attempts: int = 0
    claim_owner: str | None = None
    claim_expires_at: datetime | None = None
    # SKU ids assigned to ``user_id`` by this hire; a replay assigns only the others.
    licenses_assigned: tuple[str, ...] = ()
    last_failure: dict[str, Any] | None = None
    last_outcome: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    etag: str | None = field(default=None, compare=False)

    def evolve(self, **changes: Any) -> HireRecord:
        """Low level: only the transitions, the ledger adapter and tests use it."""
        return replace(self, **changes)

    # ------------------------------------------------------------------ what it knows

    def claimed_by_other(self, owner: str, now: datetime) -> bool:
        return (
            self.claim_owner is not None
            and self.claim_owner != owner
            and self.claim_expires_at is not None
            and self.claim_expires_at > now
        )

    @property
    def current_send(self) -> Send | None:
        """The create of this generation, when one was sent."""
        for send in self.sends:
            if send.kind is SendKind.CREATE and send.generation == self.generation:
                return send
        return None

    @property
    def create_calls(self) -> int:
        """Calls sent of this generation's create (what the operator tools show)."""
        send = self.current_send
        return send.calls if send else 0

    @property
    def upn_checked(self) -> bool:
        send = self.current_send
        return bool(send and send.upn_checked)

    @property
    def pending_creates(self) -> tuple[Send, ...]:
        return tuple(send for send in self.sends if send.kind is SendKind.CREATE and send.calls)

    @property
    def pending_restore(self) -> Send | None:
        for send in self.sends:
            if send.kind is SendKind.RESTORE:
                return send
        return None

    @property
    def identity_fixed(self) -> bool:
        """A create or restore may have been applied: the hire's identity may not change."""
        return bool(self.pending_creates or self.pending_restore)

    @property
    def pending_creates_before(self) -> tuple[Send, ...]:
        """Unsettled creates of earlier generations (sent before this one)."""
        current = self.current_send
        return tuple(send for send in self.pending_creates if send is not current)

    @property
    def current_secret(self) -> SecretRef | None:
        if not self.password_secret_id:
            return None
        return SecretRef(id=self.password_secret_id, expires_on=self.password_expires_on)

    def maker_of(self, user: FoundUser, *, refused_call: bool = False) -> Send | None:
        """The unsettled create that may have made ``user`` (the identity rule), if any.

        ``refused_call``: the current send's latest call was just refused, so only its earlier
        calls count.
        """
        current = self.current_send
        makers = []
        for send in self.pending_creates:
            if refused_call and send is current:
                earlier = send.without_latest_call()
                if earlier is None:
                    continue
                send = earlier
            if send.may_have_made(user):
                makers.append(send)
        return makers[-1] if makers else None

    def made_by_none_of(self, user: FoundUser) -> bool:
        """Proof that no create of this hire made ``user``, who holds one of its UPNs and is
        not its maker: an immutableId differs, or the UPN was free before every send of it."""
        folded = user.user_principal_name.casefold()
        for send in self.pending_creates:
            if send.user_principal_name.casefold() != folded:
                continue
            if send.immutable_id is None and user.immutable_id is not None:
                continue  # made with an immutableId this hire's create did not carry
            if send.immutable_id is None and not send.upn_checked:
                if send.made_while_sending(user) is False:
                    continue  # made before or long after this hire's calls: someone else's
                return False  # unchecked and nothing to tell the person by: it may be ours
        return True

    # ------------------------------------------------------------------ transitions

    @classmethod
    def opened(
        cls,
        *,
        event_id: str,
        customer_tenant_id: str,
        user_principal_name: str | None,
        owner: str,
        claim_until: datetime,
        now: datetime,
    ) -> HireRecord:
        """NEW: the first delivery claims a hire the ledger has never seen."""
        return cls(
            event_id=event_id,
            customer_tenant_id=customer_tenant_id,
            user_principal_name=user_principal_name,
            attempts=1,
            claim_owner=owner,
            claim_expires_at=claim_until,
            created_at=now,
            updated_at=now,
        )

    @classmethod
    def rejected_on_arrival(
        cls,
        *,
        event_id: str,
        customer_tenant_id: str,
        outcome: dict[str, Any],
        failure: dict[str, Any] | None,
        now: datetime,
    ) -> HireRecord:
        """REJECTED: an invalid event with a usable eventId, never seen before. Nothing was
        sent; a valid republish starts from here (the record follows its customer)."""
        return cls(
            event_id=event_id,
            customer_tenant_id=customer_tenant_id[:64],
            state=HireState.REJECTED,
            attempts=1,
            last_failure=failure,
            last_outcome=outcome,
            created_at=now,
            updated_at=now,
        )

    def claimed(self, owner: str, until: datetime, now: datetime, *, count: bool) -> HireRecord:
        """A delivery holds the hire until ``until``. Keeps every fact; counts the attempt."""
        return replace(
            self,
            claim_owner=owner,
            claim_expires_at=until,
            updated_at=now,
            attempts=self.attempts + (1 if count else 0),
        )

    def released(self) -> HireRecord:
        """No delivery holds the hire. Keeps every fact."""
        return replace(self, claim_owner=None, claim_expires_at=None)

    def followed(self, customer_tenant_id: str) -> HireRecord:
        """The event's customer, corrected by a republish. Only while the identity is not
        fixed (nothing may have been applied in the old customer); keeps everything else."""
        assert not self.identity_fixed
        return replace(self, customer_tenant_id=customer_tenant_id)

    def identity_adopted(self, immutable_id: str | None) -> HireRecord:
        """Sends rebuilt from a row written before sends kept their identity take the event's
        immutableId, as the decision did when they were sent. Keeps everything else."""
        if all(send.identity_known for send in self.sends):
            return self
        sends = tuple(
            send
            if send.identity_known
            else replace(send, immutable_id=immutable_id, identity_known=True)
            for send in self.sends
        )
        return replace(self, sends=sends)

    def password_recorded(self, secret: SecretRef) -> HireRecord:
        """The password the next create carries. Keeps the sends (each names its own)."""
        return replace(self, password_secret_id=secret.id, password_expires_on=secret.expires_on)

    def create_sent(
        self,
        user_principal_name: str,
        *,
        immutable_id: str | None,
        upn_checked: bool,
        first_sent_at: datetime | None = None,
        sent_at: datetime | None = None,
    ) -> HireRecord:
        """CREATING: a call of this generation's create is about to go out (written first).

        Counts it on this generation's send (``sent_at``: when, by the service's clock), or
        adds the send, first sent at ``first_sent_at`` (an earlier generation's first call of
        the same hire) or else now; keeps every other send.
        """
        current = self.current_send
        if current is not None:
            updated = replace(
                current,
                calls=current.calls + 1,
                last_sent_at=sent_at,
                previous_sent_at=current.last_sent_at,
            )
            sends = tuple(updated if send is current else send for send in self.sends)
        else:
            sends = (
                *self.sends,
                Send(
                    kind=SendKind.CREATE,
                    user_principal_name=user_principal_name,
                    generation=self.generation,
                    immutable_id=immutable_id,
                    upn_checked=upn_checked,
                    password_secret_id=self.password_secret_id,
                    password_expires_on=self.password_expires_on,
                    calls=1,
                    first_sent_at=first_sent_at or sent_at,
                    last_sent_at=sent_at,
                ),
            )
        return replace(
            self, state=HireState.CREATING, user_principal_name=user_principal_name, sends=sends
        )

    def restore_sent(
        self, user_id: str, user_principal_name: str, *, immutable_id: str | None
    ) -> HireRecord:
        """RESTORING: the restore and reset of deleted ``user_id`` are about to go out.

        Counts the call on its send (or adds it, carrying the recorded password); keeps the
        other sends.
        """
        restore = self.pending_restore
        if restore is not None and restore.user_id == user_id:
            updated = replace(restore, calls=restore.calls + 1)
            sends = tuple(updated if send is restore else send for send in self.sends)
        else:
            sends = (
                *(send for send in self.sends if send.kind is not SendKind.RESTORE),
                Send(
                    kind=SendKind.RESTORE,
                    user_principal_name=user_principal_name,
                    immutable_id=immutable_id,
                    password_secret_id=self.password_secret_id,
                    password_expires_on=self.password_expires_on,
                    user_id=user_id,
                    calls=1,
                ),
            )
        return replace(
            self,
            state=HireState.RESTORING,
            user_principal_name=user_principal_name,
            user_id=user_id,
            sends=sends,
        )

    def refused(self, failure: dict[str, Any]) -> HireRecord:
        """REJECTED: the last call got a definite refusal.

        A create whose only call was refused is settled (not applied) and dropped; every other
        send stays, since an earlier call of it may have been applied. The next create is a
        new MS-RequestId once this generation was sent. Keeps the UPN, password and user.
        """
        return replace(self.call_refused(), state=HireState.REJECTED, last_failure=failure)

    def call_refused(self) -> HireRecord:
        """This generation's latest call got a definite answer: the next call is a new
        MS-RequestId; the send is dropped when that was its only call. Keeps the state."""
        current = self.current_send
        if current is None:
            return self
        sends = self.sends
        if current.calls <= 1:
            sends = tuple(send for send in sends if send is not current)
        return replace(self, generation=self.generation + 1, sends=sends)

    def edit_refused(self, failure: dict[str, Any]) -> HireRecord:
        """An event whose identity differs from what may have been applied was refused: the
        record keeps its state and every send (nothing was sent), and notes the failure."""
        return replace(self, last_failure=failure)

    def upn_released(self, user_principal_name: str) -> HireRecord:
        """NEW: someone else holds this generated UPN, so no send of it made a user (UPNs are
        unique): those sends are settled and dropped, the next step picks another candidate
        with a new MS-RequestId. Keeps the password, the other sends and the attempts."""
        return replace(
            self.not_made_by(user_principal_name),
            state=HireState.NEW,
            user_principal_name=None,
            user_id=None,
        )

    def not_made_by(self, user_principal_name: str) -> HireRecord:
        """Someone else holds ``user_principal_name``: the creates of it are settled (not
        applied). Moves to a new generation when this one was sent; keeps the rest."""
        folded = user_principal_name.casefold()
        current = self.current_send
        sends = tuple(
            send
            for send in self.sends
            if send.kind is not SendKind.CREATE or send.user_principal_name.casefold() != folded
        )
        return replace(
            self, sends=sends, generation=self.generation + (1 if current is not None else 0)
        )

    def restore_settled(self) -> HireRecord:
        """The deleted user of the rehire is gone, or its UPN is someone else's: the restore
        can never apply; dropped with its user id. Keeps the rest."""
        sends = tuple(send for send in self.sends if send.kind is not SendKind.RESTORE)
        state = HireState.NEW if self.state is HireState.RESTORING else self.state
        return replace(self, sends=sends, user_id=None, state=state)

    def succeeded(
        self,
        state: HireState,
        *,
        user_id: str,
        user_principal_name: str,
        password_secret_id: str | None,
        password_expires_on: datetime | None,
        outcome: dict[str, Any],
        now: datetime,
    ) -> HireRecord:
        """CREATED, EXISTING or RESTORED: the hire's user is known, which settles every send
        (its user is this one, the others never applied: one account per hire). Keeps the
        attempts, the generation and the licences assigned."""
        assert state in SUCCESS_STATES
        return replace(
            self,
            state=state,
            user_id=user_id,
            user_principal_name=user_principal_name,
            password_secret_id=password_secret_id,
            password_expires_on=password_expires_on,
            sends=(),
            claim_owner=None,
            claim_expires_at=None,
            last_failure=None,
            last_outcome=outcome,
            updated_at=now,
        )

    def licences_assigned(self, sku_ids: tuple[str, ...], now: datetime) -> HireRecord:
        """The SKUs this hire assigned to its user so far. Keeps everything else."""
        return replace(self, licenses_assigned=sku_ids, updated_at=now)

    def ended(
        self, outcome: dict[str, Any], failure: dict[str, Any] | None, now: datetime
    ) -> HireRecord:
        """A delivery's final outcome, kept as a memo; releases the claim. Keeps every fact
        (a failed or rejected outcome never settles a send)."""
        return replace(
            self,
            claim_owner=None,
            claim_expires_at=None,
            updated_at=now,
            last_failure=failure,
            last_outcome=outcome,
        )

    def outcome_noted(self, outcome: dict[str, Any], now: datetime) -> HireRecord:
        """A newer outcome of a successful hire (licences). Keeps everything else."""
        return replace(self, last_outcome=outcome, updated_at=now)
