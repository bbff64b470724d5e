"""Composition root: wires the real adapters from the app settings, once per process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.storage.queue import QueueClient

from shared.adapters.credentials import (
    GRAPH_SCOPE,
    CredentialSecretNames,
    CustomerTenantTokens,
    MsalTokenExchange,
    PartnerCenterCredentials,
)
from shared.adapters.graph import GraphClient, GraphUpnDirectory, UserListOnly
from shared.adapters.httpenv import EnvironmentOnceSession
from shared.adapters.ledger import TableHireLedger, open_table_ledger
from shared.adapters.partner_center import PartnerCenterClient, Timeouts
from shared.adapters.poison import StoragePoisonQueue, encode_policy
from shared.adapters.request_queue import StorageRequestQueue
from shared.adapters.sdk_pipeline import secret_client, secret_transport
from shared.adapters.telemetry import Untraced, configure
from shared.adapters.vault import (
    KeyVaultPasswordVault,
    KeyVaultSecretStore,
    SecretStore,
    StoredSecret,
)
from shared.domain.errors import CredentialsError
from shared.domain.ports import UpnDirectory
from shared.domain.retry import RetryPolicy
from shared.hostconfig import QueueHostConfig
from shared.logs import configure_logging
from shared.service.decisions import DecisionLog
from shared.service.intake import HireIntake
from shared.service.licensing import LicenseStep
from shared.service.provisioning import Provisioner
from shared.settings import HttpAccessSettings, Settings, SettingsError

_lock = threading.Lock()
_provisioner: Provisioner | None = None
_intake: HireIntake | None = None


def provisioner() -> Provisioner:
    """The process-wide service; built on first use so settings are read after the host set them."""
    global _provisioner
    if _provisioner is None:
        with _lock:
            if _provisioner is None:
                _provisioner = build_provisioner(
                    Settings.from_environment(), QueueHostConfig.load()
                )
    return _provisioner


def install(service: Provisioner | None) -> None:
    """Replace the process-wide service (tests wire one with short timeouts); None forgets it.

    Forgets the HTTP intake too, so the next request reads the settings again."""
    global _provisioner, _intake
    with _lock:
        _provisioner = service
        _intake = None


def intake() -> HireIntake:
    """The process-wide HTTP intake: the request queue and the ledger, read-only."""
    global _intake
    if _intake is None:
        with _lock:
            if _intake is None:
                _intake = build_intake(Settings.from_environment(), QueueHostConfig.load())
    return _intake


def build_intake(settings: Settings, host_config: QueueHostConfig) -> HireIntake:
    configure_logging()
    return HireIntake(
        StorageRequestQueue(
            _queue_client(settings, settings.request_queue, host_config.message_encoding),
            message_encoding=host_config.message_encoding,
        ),
        build_ledger(settings, read_only=True),
        HttpAccessSettings.from_environment(),
    )


def build_provisioner(
    settings: Settings,
    host_config: QueueHostConfig,
    *,
    retry: RetryPolicy | None = None,
    partner_center_timeouts: Timeouts | None = None,
    telemetry: Untraced | None = None,
) -> Provisioner:
    """``telemetry`` defaults to what the environment configures (``shared.adapters.telemetry``)."""
    telemetry = telemetry or configure()
    configure_logging()  # quiet SDK loggers (shared/logs.py)
    vault_credential = _vault_credential(settings)
    credential_store = _secret_store(settings.key_vault_url, vault_credential)
    password_store = (
        credential_store
        if settings.initial_password_vault_url == settings.key_vault_url
        else _secret_store(settings.initial_password_vault_url, vault_credential)
    )
    tokens = PartnerCenterCredentials(
        telemetry.traced(credential_store, "key_vault", ("get", "set")),
        telemetry.traced_call(
            MsalTokenExchange(
                authority_host=settings.entra_authority_host, tenant_id=settings.partner_tenant_id
            ),
            "entra",
            "refresh_token_grant",
        ),
        names=CredentialSecretNames(
            app_id=settings.app_id_secret_name,
            app_secret=settings.app_secret_secret_name,
            refresh_token=settings.refresh_token_secret_name,
        ),
    )
    session = EnvironmentOnceSession(user_agent="hire-provisioning/0.1")
    partner_center = telemetry.traced(
        PartnerCenterClient(
            settings.partner_center_base_url,
            tokens,
            session=session,
            timeouts=partner_center_timeouts,
        ),
        "partner_center",
        (
            "create_user",
            "get_user",
            "find_user_by_upn",
            "restore_user",
            "reset_password",
            "subscribed_skus",
            "assign_licenses",
        ),
    )
    ledger = telemetry.traced(build_ledger(settings), "ledger", ("get", "add", "update", "query"))
    poison = telemetry.traced(
        StoragePoisonQueue(
            _poison_queue_client(settings, host_config.message_encoding),
            message_encoding=host_config.message_encoding,
        ),
        "poison_queue",
        ("poison_event", "poison_body"),
    )
    # The decision's one clock and one monotonic timer, shared by every part wired here.
    now = _utc_now
    return Provisioner(
        partner_center=partner_center,
        passwords=telemetry.traced(
            KeyVaultPasswordVault(password_store), "key_vault", ("store", "read")
        ),
        ledger=ledger,
        poison=poison,
        retry=retry or RetryPolicy.for_host(host_config.max_dequeue_count),
        password_ttl=timedelta(days=settings.initial_password_ttl_days),
        claim_ttl=timedelta(seconds=settings.claim_seconds),
        now=now,
        monotonic=time.monotonic,
        upn_template=settings.upn_template,
        telemetry=telemetry,
        license_step=LicenseStep(
            partner_center=partner_center, ledger=ledger, poison=poison, now=now
        ),
        decisions=DecisionLog(telemetry=telemetry, monotonic=time.monotonic),
        # Look a UPN up in one call where the customer allows it (UPN_LOOKUP): a hire then
        # costs the create alone whatever the customer's size.
        directory=build_upn_directory(settings, tokens, telemetry=telemetry, session=session),
    )


def build_upn_directory(
    settings: Settings,
    partner_tokens: PartnerCenterCredentials,
    *,
    telemetry: Untraced | None = None,
    session: EnvironmentOnceSession | None = None,
) -> UpnDirectory:
    """Who holds a UPN, as ``UPN_LOOKUP`` says: Microsoft Graph in the customer's tenant
    (``graph``; ``auto`` where the customer has consented, else Partner Center's user list),
    or no directory at all (``partner-center``: nothing talks to Graph, nothing needs it)."""
    telemetry = telemetry or Untraced()
    if settings.upn_lookup == "partner-center":
        return UserListOnly()
    customer_tokens = CustomerTenantTokens(
        partner_tokens,
        lambda tenant_id: telemetry.traced_call(
            MsalTokenExchange(
                authority_host=settings.entra_authority_host, tenant_id=tenant_id, scope=GRAPH_SCOPE
            ),
            "entra",
            "refresh_token_grant",
        ),
    )
    client = GraphClient(
        settings.graph_base_url,
        customer_tokens,
        session=session or EnvironmentOnceSession(user_agent="hire-provisioning/0.1"),
    )
    return telemetry.traced(
        GraphUpnDirectory(
            client, mode=settings.upn_lookup, on_fallback=telemetry.upn_lookup_fell_back
        ),
        "graph",
        ("find_user_by_upn",),
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_read_only_readers(settings: Settings) -> tuple[PartnerCenterClient, UpnDirectory]:
    """Partner Center and the UPN directory for the operators' preview: they read the
    credentials and never write the rotated refresh token back (the preview writes nothing
    anywhere). The directory is the function's own (``UPN_LOOKUP``), so the preview finds a
    UPN's holder, with its creation time, where the function would."""
    credential_store = _ReadOnlySecrets(
        _secret_store(settings.key_vault_url, _vault_credential(settings))
    )
    tokens = PartnerCenterCredentials(
        credential_store,
        MsalTokenExchange(
            authority_host=settings.entra_authority_host, tenant_id=settings.partner_tenant_id
        ),
        names=CredentialSecretNames(
            app_id=settings.app_id_secret_name,
            app_secret=settings.app_secret_secret_name,
            refresh_token=settings.refresh_token_secret_name,
        ),
        write_back_interval=timedelta.max,
    )
    session = EnvironmentOnceSession(user_agent="hire-provisioning-preview/0.1")
    client = PartnerCenterClient(settings.partner_center_base_url, tokens, session=session)
    return client, build_upn_directory(settings, tokens, session=session)


class _ReadOnlySecrets:
    """A secret store that refuses every write (the rotated refresh token stays in memory)."""

    def __init__(self, inner: SecretStore) -> None:
        self._inner = inner

    def get(self, name: str, version: str | None = None) -> StoredSecret | None:
        return self._inner.get(name, version)

    def set(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        tags: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> StoredSecret:
        raise CredentialsError(f"the preview writes nothing: secret '{name}' was not written")


def build_ledger(settings: Settings, *, read_only: bool = False) -> TableHireLedger:
    """The hire ledger in the AzureWebJobsStorage account (also used by the operator tools)."""
    if not (settings.storage_connection_string or settings.storage_table_service_uri):
        raise SettingsError(
            "app setting AzureWebJobsStorage (or HIRE_LEDGER_TABLE_SERVICE_URI) is "
            "required for the hire ledger"
        )
    return open_table_ledger(
        settings.ledger_table,
        connection_string=settings.storage_connection_string,
        table_service_uri=settings.storage_table_service_uri,
        read_only=read_only,
    )


def _vault_credential(settings: Settings) -> TokenCredential:
    if settings.key_vault_credential == "client_secret":
        missing = [
            name
            for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
            if not os.environ.get(name)
        ]
        if missing:
            raise SettingsError(
                f"KEY_VAULT_CREDENTIAL=client_secret needs the settings {', '.join(missing)}"
            )
        return ClientSecretCredential(
            os.environ["AZURE_TENANT_ID"],
            os.environ["AZURE_CLIENT_ID"],
            os.environ["AZURE_CLIENT_SECRET"],
            authority=settings.entra_authority_host,
            disable_instance_discovery=True,
        )
    return DefaultAzureCredential()


def _secret_store(vault_url: str, credential: TokenCredential) -> KeyVaultSecretStore:
    client = secret_client(
        vault_url,
        credential,
        # A vault on localhost cannot share a domain with the challenge's resource.
        verify_challenge_resource=not _is_loopback(vault_url),
        # hostile branch: azure-core would retry and sleep (Retry-After included) on its own;
        # its pipeline here has no retry policy, so the function's RetryPolicy and its budget
        # are the one policy (and the unused policies are left out: sdk_pipeline.py).
        transport=secret_transport(connection_timeout=5, read_timeout=20),
    )
    return KeyVaultSecretStore(client)


def _poison_queue_client(settings: Settings, message_encoding: str) -> QueueClient:
    return _queue_client(settings, settings.poison_queue, message_encoding)


def _queue_client(settings: Settings, queue_name: str, message_encoding: str) -> QueueClient:
    policy = encode_policy(message_encoding)
    if settings.storage_connection_string:
        return QueueClient.from_connection_string(
            settings.storage_connection_string, queue_name, message_encode_policy=policy
        )
    if settings.storage_queue_service_uri:
        return QueueClient(
            settings.storage_queue_service_uri,
            queue_name,
            credential=DefaultAzureCredential(),
            message_encode_policy=policy,
        )
    raise SettingsError(
        "app setting AzureWebJobsStorage (or AzureWebJobsStorage__queueServiceUri) is required"
    )


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}
