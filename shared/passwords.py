"""Initial passwords: generated here, kept in Key Vault, referred to by secret id only.

The secret of a hire (one per eventId) is also that hire's record: its tags say how far the
hire got (``state``: pending, created or refused), which user it created (``userId``) and
which generation of MS-RequestId its next create call uses. Redeliveries and replays read
it to decide without guessing: a user this event created is answered from its id, and a
definite refusal is never mistaken for a create that might have happened.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.errors import ProvisioningError
from shared.events import HireEvent
from shared.vault import SecretStore, StoredSecret

PASSWORD_LENGTH = 20
_SYMBOLS = "!#$%&*+-=?@^_"
_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, _SYMBOLS)
SECRET_NAME_PREFIX = "initial-password-"
CONTENT_TYPE = "initial-password"

logger = logging.getLogger("hire_provisioning.passwords")


class HireState(StrEnum):
    PENDING = "pending"  # stored before the create call; a create may or may not have happened
    CREATED = "created"  # this event created userId
    REFUSED = "refused"  # Partner Center definitely refused the last create of this event


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password with every character class, from the OS's secure source."""
    if length < 16:
        raise ValueError("initial passwords are at least 16 characters")
    alphabet = "".join(_CLASSES)
    characters = [secrets.choice(group) for group in _CLASSES]
    characters += [secrets.choice(alphabet) for _ in range(length - len(characters))]
    # Fisher-Yates with the secure generator, so the guaranteed classes are not always first.
    for index in range(len(characters) - 1, 0, -1):
        swap = secrets.randbelow(index + 1)
        characters[index], characters[swap] = characters[swap], characters[index]
    return "".join(characters)


def fingerprint(password: str) -> str:
    """A one-way digest, to compare passwords without keeping or passing them around."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def secret_name_for(event_id: str) -> str:
    """Key Vault names allow only letters, digits and dashes: derive one from the event id."""
    return SECRET_NAME_PREFIX + hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:48]


@dataclass(frozen=True, kw_only=True)
class InitialPassword:
    secret: StoredSecret = field(repr=False)
    # True when an earlier delivery of the same event stored it.
    from_earlier_attempt: bool

    @property
    def secret_id(self) -> str:
        return self.secret.id

    @property
    def value(self) -> str:
        return self.secret.value

    @property
    def state(self) -> HireState:
        try:
            return HireState(self.secret.tags.get("state", HireState.PENDING))
        except ValueError:
            return HireState.PENDING

    @property
    def user_id(self) -> str | None:
        return self.secret.tags.get("userId") or None

    @property
    def generation(self) -> int:
        text = self.secret.tags.get("requestGeneration", "0")
        return int(text) if text.isdigit() else 0


class InitialPasswords:
    def __init__(
        self,
        store: SecretStore,
        *,
        ttl: timedelta,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._now = now

    def for_event(self, event: HireEvent) -> InitialPassword:
        """The password of this hire: the stored one on a retry, a new one the first time.

        An expired password that no user was created with is replaced by a fresh one (the
        record's state and request generation carry over): a create must not hand out a
        password whose secret has already expired.
        """
        name = secret_name_for(event.event_id)
        existing = self._store.get(name)
        if existing is not None and existing.value:
            expired = existing.expires_on is not None and existing.expires_on <= self._now()
            if not expired or existing.tags.get("state") == HireState.CREATED:
                return InitialPassword(secret=existing, from_earlier_attempt=True)
        tags = {
            "eventId": event.event_id[:256],
            "customerTenantId": event.customer_tenant_id,
            "userPrincipalName": event.user.user_principal_name[:256],
            "purpose": "initial password of a user created by hire-provisioning",
            "state": HireState.PENDING.value,
            "requestGeneration": "0",
        }
        if existing is not None:
            tags["state"] = existing.tags.get("state", HireState.PENDING.value)
            tags["requestGeneration"] = existing.tags.get("requestGeneration", "0")
        stored = self._store.set(
            name,
            generate_password(),
            expires_on=self._now() + self._ttl,
            content_type=CONTENT_TYPE,
            tags=tags,
        )
        return InitialPassword(secret=stored, from_earlier_attempt=existing is not None)

    def has_rival(self, event: HireEvent, password: InitialPassword) -> bool:
        """Whether another delivery of this event stored a password of its own."""
        versions = self._store.versions(secret_name_for(event.event_id))
        return any(version.id != password.secret_id for version in versions)

    def adopt(self, event: HireEvent, password_fingerprint: str) -> InitialPassword | None:
        """Make the stored version with this password the latest again, and return it.

        Two deliveries of one event racing can each store a password; Partner Center keeps the
        first create (same MS-RequestId) and the loser learns which password won from the
        echo. The winner's value becomes the latest version, so later replays point at it.
        """
        name = secret_name_for(event.event_id)
        for version in self._store.versions(name):
            if version.value and fingerprint(version.value) == password_fingerprint:
                stored = self._store.set(
                    name,
                    version.value,
                    expires_on=max(version.expires_on or self._now(), self._now() + self._ttl),
                    content_type=CONTENT_TYPE,
                    tags=version.tags,
                )
                return InitialPassword(secret=stored, from_earlier_attempt=True)
        return None

    def mark_created(self, password: InitialPassword, user_id: str) -> None:
        self._retag(password, {"state": HireState.CREATED.value, "userId": user_id})

    def mark_refused(self, password: InitialPassword) -> None:
        """A definite refusal: the next create of this event is a new request to Partner Center."""
        self._retag(
            password,
            {
                "state": HireState.REFUSED.value,
                "requestGeneration": str(password.generation + 1),
            },
        )

    def _retag(self, password: InitialPassword, changes: Mapping[str, str]) -> None:
        try:
            self._store.update_tags(password.secret, {**password.secret.tags, **changes})
        except ProvisioningError as error:
            # The outcome of this delivery stands; a later replay just has less to go on.
            logger.warning("could not record the hire's state on its secret: %s", error)
