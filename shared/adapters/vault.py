"""Key Vault secrets behind small interfaces, with failures classified for the decision.

``KeyVaultSecretStore`` serves the App+User credentials; ``KeyVaultPasswordVault`` is the
decision's ``PasswordVault``: initial passwords only, one write per hire, read back by the
exact version the hire ledger recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from azure.core.exceptions import ResourceNotFoundError
from azure.keyvault.secrets import KeyVaultSecret, SecretClient

from shared.adapters.azure_errors import AzureCall, classify_azure_error
from shared.domain.errors import CredentialsError, ProvisioningError
from shared.domain.model import SecretRef
from shared.domain.passwords import CONTENT_TYPE as PASSWORD_CONTENT_TYPE
from shared.domain.passwords import secret_name_for


@dataclass(frozen=True, kw_only=True)
class StoredSecret:
    name: str
    value: str = field(repr=False)
    id: str
    updated_on: datetime | None = None
    expires_on: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.id.rstrip("/").rsplit("/", 1)[-1]


class SecretStore(Protocol):
    def get(self, name: str, version: str | None = None) -> StoredSecret | None:
        """That version (the latest when None), or None when it does not exist."""
        ...

    def set(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        tags: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> StoredSecret:
        """Store a new version."""
        ...


class KeyVaultSecretStore:
    """``SecretStore`` over ``azure.keyvault.secrets.SecretClient``."""

    def __init__(self, client: SecretClient) -> None:
        self._client = client

    @property
    def vault_url(self) -> str:
        return str(self._client.vault_url)

    def get(self, name: str, version: str | None = None) -> StoredSecret | None:
        return self._get(name, version)

    def _get(self, name: str, version: str | None = None) -> StoredSecret | None:
        try:
            secret = self._client.get_secret(name, version)
        except ResourceNotFoundError:
            return None
        except Exception as error:
            raise self._classify(error, action="read", name=name) from None
        return _stored(name, secret)

    def set(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        tags: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> StoredSecret:
        try:
            secret = self._client.set_secret(
                name,
                value,
                expires_on=expires_on,
                tags=dict(tags) if tags else None,
                content_type=content_type,
            )
        except Exception as error:
            raise self._classify(error, action="write", name=name) from None
        return _stored(name, secret, value=value)

    def _classify(self, error: Exception, *, action: str, name: str) -> ProvisioningError:
        where = f"secret '{name}' in Key Vault {self.vault_url}"
        role = "Key Vault Secrets User" if action == "read" else "Key Vault Secrets Officer"

        def refusal(status: int, code: str | None) -> ProvisioningError:
            if status == 403 and code not in (None, "Forbidden", "AccessDenied"):
                return CredentialsError(
                    f"Key Vault refused to {action} {where} (403 {code}): the secret may be "
                    "disabled or expired; enable it or remove it, then replay from the poison "
                    "queue",
                    http_status=status,
                    code=code,
                )
            if status == 403:
                return CredentialsError(
                    f"the function's identity may not {action} {where} "
                    f"(403 {code or 'Forbidden'}); "
                    f"grant it the '{role}' role on the vault, then replay from the poison queue",
                    http_status=status,
                    code=code,
                )
            return CredentialsError(
                f"Key Vault refused a {action} of {where} ({status} {code or ''}); check the "
                "secret and the vault settings",
                http_status=status,
                code=code,
            )

        return classify_azure_error(
            error,
            AzureCall(
                service="Key Vault",
                what=f"{action} {where}",
                identity_advice="check its managed identity or the KEY_VAULT_CREDENTIAL settings",
                refusal=refusal,
            ),
        )


def _stored(name: str, secret: KeyVaultSecret, *, value: str | None = None) -> StoredSecret:
    return StoredSecret(
        name=name,
        value=value if value is not None else secret.value or "",
        id=str(secret.id),
        updated_on=secret.properties.updated_on,
        expires_on=secret.properties.expires_on,
        tags=dict(secret.properties.tags or {}),
    )


class KeyVaultPasswordVault:
    """``PasswordVault``: each hire's initial password as a secret named after its eventId."""

    def __init__(self, store: KeyVaultSecretStore) -> None:
        self._store = store

    def store(self, event_id: str, password: str, *, expires_on: datetime) -> SecretRef:
        stored = self._store.set(
            secret_name_for(event_id),
            password,
            expires_on=expires_on,
            content_type=PASSWORD_CONTENT_TYPE,
            # Labels for a person browsing the vault; the hire's state lives in the ledger.
            tags={
                "eventId": event_id[:256],
                "purpose": "initial password of a user created by hire-provisioning",
            },
        )
        return SecretRef(id=stored.id, expires_on=stored.expires_on or expires_on)

    def read(self, secret_id: str) -> str:
        name, version = _name_and_version(secret_id)
        secret = self._store.get(name, version)
        if secret is None or not secret.value:
            raise CredentialsError(
                f"the initial password {secret_id} recorded for this hire is gone from Key "
                "Vault (deleted or purged?); recover it, or restore the secret, then replay"
            )
        return secret.value


def _name_and_version(secret_id: str) -> tuple[str, str | None]:
    parts = urlsplit(secret_id).path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "secrets":
        return parts[1], parts[2] if len(parts) > 2 else None
    return parts[-1], None
