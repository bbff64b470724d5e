"""Key Vault secrets behind a small interface, with failures classified for the decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import KeyVaultSecret, SecretClient

from shared.errors import (
    CredentialsError,
    ProvisioningError,
    ServiceUnavailableError,
    retry_after_seconds,
)


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
    def get(self, name: str) -> StoredSecret | None:
        """The latest version, or None when the secret does not exist."""
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

    def versions(self, name: str) -> list[StoredSecret]:
        """Every enabled version, with its value; [] when the secret does not exist."""
        ...

    def update_tags(self, secret: StoredSecret, tags: Mapping[str, str]) -> None:
        """Replace the tags of that version (no new version)."""
        ...


class KeyVaultSecretStore:
    """``SecretStore`` over ``azure.keyvault.secrets.SecretClient``."""

    def __init__(self, client: SecretClient) -> None:
        self._client = client

    @property
    def vault_url(self) -> str:
        return str(self._client.vault_url)

    def get(self, name: str) -> StoredSecret | None:
        return self._get(name)

    def versions(self, name: str) -> list[StoredSecret]:
        try:
            listed = [
                properties.version
                for properties in self._client.list_properties_of_secret_versions(name)
                if properties.enabled is not False and properties.version
            ]
        except ResourceNotFoundError:
            return []
        except Exception as error:
            raise self._classify(error, action="read", name=name) from None
        found = (self._get(name, version) for version in listed)
        return [secret for secret in found if secret is not None]

    def update_tags(self, secret: StoredSecret, tags: Mapping[str, str]) -> None:
        try:
            self._client.update_secret_properties(secret.name, secret.version, tags=dict(tags))
        except Exception as error:
            problem = self._classify(error, action="write", name=secret.name)
        else:
            return
        raise problem

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
        auth_status = getattr(error, "status_code", None)
        if isinstance(error, ClientAuthenticationError) and (
            auth_status is None or auth_status >= 500 or auth_status == 429
        ):
            # The identity could not get a token (a managed identity endpoint or Entra
            # hiccup, as often as not): worth another try.
            return ServiceUnavailableError(
                f"the function's identity could not get a token to {action} {where} "
                f"({type(error).__name__}); if this lasts, check its managed identity or the "
                "KEY_VAULT_CREDENTIAL settings"
            )
        if isinstance(error, ClientAuthenticationError) and auth_status != 403:
            return CredentialsError(
                f"the function could not authenticate to Key Vault to {action} {where} "
                f"({type(error).__name__}); check its managed identity or KEY_VAULT_CREDENTIAL "
                "settings",
                http_status=getattr(error, "status_code", None),
            )
        if isinstance(error, HttpResponseError) and error.status_code is not None:
            status = int(error.status_code)
            code = getattr(error.error, "code", None) if error.error else None
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
            if status == 429 or status >= 500 or status == 408:
                headers = getattr(error.response, "headers", None) or {}
                return ServiceUnavailableError(
                    f"Key Vault answered {status} to a {action} of {where}",
                    throttled=status == 429,
                    http_status=status,
                    code=code,
                    # The SDK's own retries are off (composition): this one policy decides.
                    retry_after=retry_after_seconds(headers.get("Retry-After")),
                )
            return CredentialsError(
                f"Key Vault refused a {action} of {where} ({status} {code or ''}); check the "
                "secret and the vault settings",
                http_status=status,
                code=code,
            )
        if isinstance(error, (ServiceRequestError, ServiceResponseError)):
            return ServiceUnavailableError(
                f"Key Vault could not be reached to {action} {where} ({type(error).__name__})"
            )
        return ServiceUnavailableError(
            f"unexpected failure to {action} {where} ({type(error).__name__})"
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
