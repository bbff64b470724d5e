"""Initial passwords: generated here, kept in Key Vault, referred to by secret id only."""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.events import HireEvent
from shared.vault import SecretStore

PASSWORD_LENGTH = 20
_SYMBOLS = "!#$%&*+-=?@^_"
_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, _SYMBOLS)
SECRET_NAME_PREFIX = "initial-password-"


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
    secret_id: str
    value: str = field(repr=False)
    # True when an earlier delivery of the same event stored it: that delivery may have
    # created the user already.
    from_earlier_attempt: bool


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
        """The password of this hire: the stored one on a retry, a new one the first time."""
        name = secret_name_for(event.event_id)
        existing = self._store.get(name)
        if existing is not None and existing.value and not self._expired(existing.expires_on):
            return InitialPassword(
                secret_id=existing.id, value=existing.value, from_earlier_attempt=True
            )
        stored = self._store.set(
            name,
            generate_password(),
            expires_on=self._now() + self._ttl,
            content_type="initial-password",
            tags={
                "eventId": event.event_id[:256],
                "customerTenantId": event.customer_tenant_id,
                "userPrincipalName": event.user.user_principal_name[:256],
                "purpose": "initial password of a user created by hire-provisioning",
            },
        )
        return InitialPassword(secret_id=stored.id, value=stored.value, from_earlier_attempt=False)

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
                    expires_on=version.expires_on or self._now() + self._ttl,
                    content_type="initial-password",
                    tags=version.tags,
                )
                return InitialPassword(
                    secret_id=stored.id, value=stored.value, from_earlier_attempt=True
                )
        return None

    def _expired(self, expires_on: datetime | None) -> bool:
        return expires_on is not None and expires_on <= self._now()
