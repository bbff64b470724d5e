"""Composition root: wires the real adapters from the app settings, once per process."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from azure.core.credentials import TokenCredential
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from azure.storage.queue import QueueClient

from shared.credentials import CredentialSecretNames, MsalTokenExchange, PartnerCenterCredentials
from shared.hostconfig import QueueHostConfig
from shared.ledger import TableHireLedger, open_table_ledger
from shared.partner_center import PartnerCenterClient, Timeouts
from shared.poison import StoragePoisonQueue, encode_policy
from shared.provisioning import Provisioner
from shared.retry import RetryPolicy
from shared.settings import Settings, SettingsError
from shared.vault import KeyVaultPasswordVault, KeyVaultSecretStore

_lock = threading.Lock()
_provisioner: Provisioner | None = None


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
    """Replace the process-wide service (tests wire one with short timeouts); None forgets it."""
    global _provisioner
    with _lock:
        _provisioner = service


def build_provisioner(
    settings: Settings,
    host_config: QueueHostConfig,
    *,
    retry: RetryPolicy | None = None,
    partner_center_timeouts: Timeouts | None = None,
) -> Provisioner:
    vault_credential = _vault_credential(settings)
    credential_store = _secret_store(settings.key_vault_url, vault_credential)
    password_store = (
        credential_store
        if settings.initial_password_vault_url == settings.key_vault_url
        else _secret_store(settings.initial_password_vault_url, vault_credential)
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
    )
    session = requests.Session()
    session.headers["User-Agent"] = "hire-provisioning/0.1"
    return Provisioner(
        partner_center=PartnerCenterClient(
            settings.partner_center_base_url,
            tokens,
            session=session,
            timeouts=partner_center_timeouts,
        ),
        passwords=KeyVaultPasswordVault(password_store),
        ledger=build_ledger(settings),
        poison=StoragePoisonQueue(
            _poison_queue_client(settings, host_config.message_encoding),
            message_encoding=host_config.message_encoding,
        ),
        retry=retry or RetryPolicy(max_deliveries=host_config.max_dequeue_count),
        password_ttl=timedelta(days=settings.initial_password_ttl_days),
        claim_ttl=timedelta(seconds=settings.claim_seconds),
    )


def build_ledger(settings: Settings) -> TableHireLedger:
    """The hire ledger in the AzureWebJobsStorage account (also used by the operator tools)."""
    if not (settings.storage_connection_string or settings.storage_table_service_uri):
        raise SettingsError(
            "app setting AzureWebJobsStorage (or AzureWebJobsStorage__tableServiceUri) is "
            "required for the hire ledger"
        )
    return open_table_ledger(
        settings.ledger_table,
        connection_string=settings.storage_connection_string,
        table_service_uri=settings.storage_table_service_uri,
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
    client = SecretClient(
        vault_url,
        credential,
        # A vault on localhost cannot share a domain with the challenge's resource.
        verify_challenge_resource=not _is_loopback(vault_url),
        connection_timeout=5,
        read_timeout=20,
        retry_total=2,
    )
    return KeyVaultSecretStore(client)


def _poison_queue_client(settings: Settings, message_encoding: str) -> QueueClient:
    policy = encode_policy(message_encoding)
    if settings.storage_connection_string:
        return QueueClient.from_connection_string(
            settings.storage_connection_string, settings.poison_queue, message_encode_policy=policy
        )
    if settings.storage_queue_service_uri:
        return QueueClient(
            settings.storage_queue_service_uri,
            settings.poison_queue,
            credential=DefaultAzureCredential(),
            message_encode_policy=policy,
        )
    raise SettingsError(
        "app setting AzureWebJobsStorage (or AzureWebJobsStorage__queueServiceUri) is required"
    )


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}
