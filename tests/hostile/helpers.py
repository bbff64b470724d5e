"""Shared set-up for the hostile-input tests."""

from __future__ import annotations

import uuid

from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from devtools.standins import StandInStack
from shared.adapters.credentials import MsalTokenExchange, PartnerCenterCredentials
from shared.adapters.vault import KeyVaultSecretStore


def make_credentials(stack: StandInStack) -> tuple[PartnerCenterCredentials, str]:
    """A fresh msal application per test: msal keeps some error answers per application."""
    partner_tenant_id = str(uuid.uuid4())
    stack.seed_partner(partner_tenant_id)
    vault_credential = ClientSecretCredential(
        stack.key_vault.vault_tenant_id,
        stack.key_vault.vault_client_id,
        stack.key_vault.vault_client_secret,
        authority=stack.entra.authority_host,
        disable_instance_discovery=True,
    )
    store = KeyVaultSecretStore(
        SecretClient(
            stack.key_vault.vault_url,
            vault_credential,
            verify_challenge_resource=False,
            retry_total=0,
        )
    )
    exchange = MsalTokenExchange(
        authority_host=stack.entra.authority_host, tenant_id=partner_tenant_id
    )
    return PartnerCenterCredentials(store, exchange), partner_tenant_id
