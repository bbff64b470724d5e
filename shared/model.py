"""The decision's vocabulary: the user to create, the user found, the hire's record.

Plain values, no I/O: the service layer (``shared.provisioning``) decides with these, and the
adapters translate them to and from their wire formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
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


@dataclass(frozen=True, kw_only=True)
class HireRecord:
    """One hire in the ledger (docs/contract.md section 5). Nothing in it is secret.

    ``etag`` is the version the ledger last returned: every change is conditional on it, so
    two deliveries can never both act on the same state.
    """

    event_id: str
    customer_tenant_id: str
    state: HireState = HireState.NEW
    user_principal_name: str | None = None
    password_secret_id: str | None = None
    password_expires_on: datetime | None = None
    # MS-RequestId generation: the same on every retry of a create, a new one after a
    # definite answer (Partner Center asks for both).
    generation: int = 0
    # The UPN was found free just before this generation's first create: a user found
    # holding it later can only be this hire's (the identity rule, without immutableId).
    upn_checked: bool = False
    user_id: str | None = None
    attempts: int = 0
    create_calls: int = 0
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
        return replace(self, **changes)

    def claimed_by_other(self, owner: str, now: datetime) -> bool:
        return (
            self.claim_owner is not None
            and self.claim_owner != owner
            and self.claim_expires_at is not None
            and self.claim_expires_at > now
        )
