"""Storage connections named by bindings, resolved the way the Functions host resolves them."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.queue import ExponentialRetry, QueueClient, QueueServiceClient

from devtools.azurite import connection_string as azurite_connection_string
from devtools.funchost.errors import FunctionHostError
from devtools.funchost.options import MessageEncoding
from devtools.funchost.settings import lookup_setting

DEFAULT_CONNECTION = "AzureWebJobsStorage"
# Where "UseDevelopmentStorage=true" points: Azurite's (and the old emulator's) queue port.
DEVELOPMENT_STORAGE_HOST = "127.0.0.1"
DEVELOPMENT_STORAGE_QUEUE_PORT = 10001

# Azure's queue naming rule; the host lower-cases names before checking them.
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


def normalize_queue_name(name: str, *, where: str) -> str:
    normalized = name.strip().lower()
    if not _QUEUE_NAME.match(normalized):
        raise FunctionHostError(
            f"{where}: {name!r} is not a valid queue name (3-63 characters: lower-case letters, "
            "digits and single hyphens, starting and ending with a letter or digit)"
        )
    return normalized


@dataclass(frozen=True)
class StorageConnection:
    """One storage account as a binding's ``connection`` names it."""

    name: str
    connection_string: str | None = None
    queue_service_uri: str | None = None
    identity_settings: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """For logs: where the connection points, never its key."""
        if self.queue_service_uri is not None:
            return f"{self.queue_service_uri} (identity-based)"
        assert self.connection_string is not None
        fields = _connection_string_fields(self.connection_string)
        endpoint = fields.get("queueendpoint")
        if endpoint:
            return endpoint
        account = fields.get("accountname", "?")
        return f"account {account} (connection string)"

    def create_service_client(self) -> QueueServiceClient:
        # The SDK's default retry waits 15 s and more between attempts: far too long to notice
        # a stopped Azurite, and the poll loop retries anyway.
        retry = ExponentialRetry(
            initial_backoff=1, increment_base=2, retry_total=2, random_jitter_range=1
        )
        if self.connection_string is not None:
            return QueueServiceClient.from_connection_string(
                self.connection_string, retry_policy=retry
            )
        assert self.queue_service_uri is not None
        return QueueServiceClient(
            account_url=self.queue_service_uri,
            credential=self._identity_credential(),
            retry_policy=retry,
        )

    def _identity_credential(self) -> TokenCredential:
        settings = {key.lower(): value for key, value in self.identity_settings.items()}
        client_id = settings.get("clientid")
        if settings.get("credential", "").lower() == "managedidentity":
            return ManagedIdentityCredential(client_id=client_id)
        tenant_id = settings.get("tenantid")
        client_secret = settings.get("clientsecret")
        if tenant_id and client_id and client_secret:
            return ClientSecretCredential(tenant_id, client_id, client_secret)
        if client_id:
            return DefaultAzureCredential(managed_identity_client_id=client_id)
        return DefaultAzureCredential()


def _connection_string_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, separator, value = part.partition("=")
        if separator:
            fields[key.strip().lower()] = value.strip()
    return fields


def _identity_section(settings: Mapping[str, str], name: str) -> dict[str, str]:
    # Environment variables spell the configuration separator ":" as "__".
    section: dict[str, str] = {}
    for separator in ("__", ":"):
        prefix = f"{name}{separator}".lower()
        for key, value in settings.items():
            if key.lower().startswith(prefix):
                section[key[len(prefix) :]] = value
    return section


def resolve_storage_connection(
    connection_name: str | None, settings: Mapping[str, str]
) -> StorageConnection:
    """Find the connection a binding names: ``AzureWebJobs<name>`` or ``<name>``, holding a
    connection string, or an identity-based ``<name>__queueServiceUri`` section."""
    name = (connection_name or "").strip() or DEFAULT_CONNECTION
    candidates = (
        [name] if name.lower().startswith("azurewebjobs") else [f"AzureWebJobs{name}", name]
    )
    for candidate in candidates:
        value = lookup_setting(settings, candidate)
        if value:
            fields = _connection_string_fields(value)
            if fields.get("usedevelopmentstorage", "").lower() == "true":
                value = azurite_connection_string(
                    DEVELOPMENT_STORAGE_HOST, DEVELOPMENT_STORAGE_QUEUE_PORT
                )
            return StorageConnection(name=candidate, connection_string=value)
        section = _identity_section(settings, candidate)
        lowered = {key.lower(): value for key, value in section.items()}
        uri = lowered.get("queueserviceuri")
        if not uri and lowered.get("accountname"):
            uri = f"https://{lowered['accountname']}.queue.core.windows.net"
        if uri:
            return StorageConnection(
                name=candidate, queue_service_uri=uri, identity_settings=section
            )
    raise FunctionHostError(
        f"storage connection {name!r} is not configured: set the app setting {name} to a "
        f"connection string (or UseDevelopmentStorage=true for Azurite on port "
        f"{DEVELOPMENT_STORAGE_QUEUE_PORT}), or {name}__queueServiceUri for identity-based access"
    )


def queue_address(queue: QueueClient) -> str:
    """A key naming one queue of one account, for matching writers to listeners."""
    parts = urlsplit(queue.url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/").lower()


def create_queue_if_missing(queue: QueueClient) -> bool:
    """True when this call created the queue."""
    try:
        queue.create_queue()
    except ResourceExistsError:
        return False
    return True


def encode_message(payload: bytes, encoding: MessageEncoding) -> str:
    """The text put on the queue for a message body, as the host writes it."""
    if encoding == "base64":
        return base64.b64encode(payload).decode("ascii")
    return payload.decode("utf-8")


class UndecodableMessageError(ValueError):
    """A message the host cannot turn into a body under the configured encoding."""


def decode_message(text: str, encoding: MessageEncoding) -> bytes:
    if encoding == "none":
        return text.encode("utf-8")
    # .NET's base64 decoder, which the host uses, skips white space; Python's strict mode does not.
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as error:
        raise UndecodableMessageError(f"message body is not valid base64: {error}") from error


def storage_error_code(error: HttpResponseError) -> str:
    return str(getattr(error, "error_code", None) or "")
