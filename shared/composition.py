"""Composition root: wires the real adapters from the app settings, once per process."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.credentials import TokenCredential
from azure.data.tables import TableClient
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from azure.storage.queue import QueueClient

from shared.credentials import CredentialSecretNames, MsalTokenExchange, PartnerCenterCredentials
from shared.hostconfig import QueueHostConfig
from shared.ledger import TableHireLedger
from shared.partner_center import PartnerCenterClient, Timeouts
from shared.poison import StoragePoisonQueue, encode_policy
from shared.provisioning import Provisioner
from shared.retry import RetryPolicy
from shared.settings import Settings, SettingsError
from shared.telemetry import Untraced, configure
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
    telemetry: Untraced | None = None,
) -> Provisioner:
    """``telemetry`` defaults to what the environment configures (``shared.telemetry``)."""
    telemetry = telemetry or configure()
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
    session = requests.Session()
    session.headers["User-Agent"] = "hire-provisioning/0.1"
    return Provisioner(
        partner_center=telemetry.traced(
            PartnerCenterClient(
                settings.partner_center_base_url,
                tokens,
                session=session,
                timeouts=partner_center_timeouts,
            ),
            "partner_center",
            ("create_user", "get_user", "find_user_by_upn"),
        ),
        passwords=telemetry.traced(
            KeyVaultPasswordVault(password_store), "key_vault", ("store", "read")
        ),
        ledger=telemetry.traced(
            build_ledger(settings), "ledger", ("get", "add", "update", "query")
        ),
        poison=telemetry.traced(
            StoragePoisonQueue(
                _poison_queue_client(settings, host_config.message_encoding),
                message_encoding=host_config.message_encoding,
            ),
            "poison_queue",
            ("poison_event", "poison_body"),
        ),
        retry=retry or RetryPolicy(max_deliveries=host_config.max_dequeue_count),
        password_ttl=timedelta(days=settings.initial_password_ttl_days),
        claim_ttl=timedelta(seconds=settings.claim_seconds),
        telemetry=telemetry,
    )


def build_ledger(settings: Settings) -> TableHireLedger:
    """The hire ledger in the AzureWebJobsStorage account (also used by the operator tools)."""
    # The decision's RetryPolicy is the one that retries: the SDK's own would stack under it.
    options: dict[str, Any] = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 10}
    if settings.storage_connection_string:
        client = TableClient.from_connection_string(
            _development_storage(settings.storage_connection_string),
            settings.ledger_table,
            **options,
        )
    elif settings.storage_table_service_uri:
        client = TableClient(
            settings.storage_table_service_uri,
            settings.ledger_table,
            credential=DefaultAzureCredential(),
            **options,
        )
    else:
        raise SettingsError(
            "app setting AzureWebJobsStorage (or AzureWebJobsStorage__tableServiceUri) is "
            "required for the hire ledger"
        )
    return TableHireLedger(client)


def _development_storage(connection_string: str) -> str:
    """``UseDevelopmentStorage=true`` spelled out: the tables SDK does not know the shortcut."""
    if connection_string.replace(" ", "").lower() != "usedevelopmentstorage=true":
        return connection_string
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        # The well-known Azurite development key (public, documented by Microsoft).
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
        "KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
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
