"""The stand-ins started together, sharing one CA and one token registry: Partner Center,
Entra ID, Key Vault, and Microsoft Graph (reading Partner Center's user store)."""

from __future__ import annotations

import secrets
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .entra import EntraStandIn
from .graph import GraphStandIn
from .key_vault import KeyVaultStandIn
from .partner_center import PartnerCenterStandIn
from .service import StandInService
from .tls import StandInCertificates, create_certificates
from .tokens import AccessTokenRegistry

DEFAULT_APP_ID_SECRET = "partner-center-app-id"
DEFAULT_APP_SECRET_SECRET = "partner-center-app-secret"
DEFAULT_REFRESH_TOKEN_SECRET = "partner-center-refresh-token"


@dataclass(frozen=True)
class PartnerSeed:
    """A partner's App+User credentials, as :meth:`StandInStack.seed_partner` stored them."""

    tenant_id: str
    client_id: str
    client_secret: str
    refresh_token: str
    app_id_secret: str = DEFAULT_APP_ID_SECRET
    app_secret_secret: str = DEFAULT_APP_SECRET_SECRET
    refresh_token_secret: str = DEFAULT_REFRESH_TOKEN_SECRET

    def __repr__(self) -> str:
        # Keeps the secret and the refresh token out of assertion messages and logs.
        return f"PartnerSeed(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, ...)"


class StandInStack:
    """Partner Center, Entra ID, Key Vault and Graph stand-ins over HTTPS on 127.0.0.1."""

    def __init__(
        self,
        certificates: StandInCertificates,
        *,
        partner_center: PartnerCenterStandIn,
        entra: EntraStandIn,
        key_vault: KeyVaultStandIn,
        graph: GraphStandIn,
        workspace: tempfile.TemporaryDirectory[str] | None,
    ) -> None:
        self._certificates = certificates
        self.partner_center = partner_center
        self.entra = entra
        self.key_vault = key_vault
        self.graph = graph
        self._workspace = workspace
        self._seeds: dict[str, PartnerSeed] = {}
        self._register_vault_principal()

    @classmethod
    def start(
        cls,
        *,
        cert_dir: Path | None = None,
        partner_center_port: int = 0,
        entra_port: int = 0,
        key_vault_port: int = 0,
        graph_port: int = 0,
    ) -> StandInStack:
        """Make the CA (PEM files in ``cert_dir``, a temporary directory by default) and start
        the four servers (ephemeral ports unless given)."""
        workspace = None
        if cert_dir is None:
            workspace = tempfile.TemporaryDirectory(prefix="standins-")
            cert_dir = Path(workspace.name)
        certificates = create_certificates(cert_dir)
        tokens = AccessTokenRegistry()
        entra = EntraStandIn(tokens)
        partner_center = PartnerCenterStandIn(tokens)
        graph = GraphStandIn(tokens, partner_center)
        # The customers' tenants exist for Entra as Partner Center knows them; whether the
        # partner's app is consented there is Graph's per-customer switch.
        entra.customer_consent = graph.consent_of
        started: list[StandInService[Any]] = []
        try:
            entra.listen(certificates.server_context, port=entra_port)
            started.append(entra)
            key_vault = KeyVaultStandIn(tokens, authority_host=entra.authority_host)
            key_vault.listen(certificates.server_context, port=key_vault_port)
            started.append(key_vault)
            partner_center.listen(certificates.server_context, port=partner_center_port)
            started.append(partner_center)
            graph.listen(certificates.server_context, port=graph_port)
            started.append(graph)
        except BaseException:
            for service in started:
                service.stop()
            if workspace is not None:
                workspace.cleanup()
            raise
        return cls(
            certificates,
            partner_center=partner_center,
            entra=entra,
            key_vault=key_vault,
            graph=graph,
            workspace=workspace,
        )

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        if self._workspace is not None:
            self._workspace.cleanup()
            self._workspace = None

    def __enter__(self) -> StandInStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def services(self) -> dict[str, StandInService[Any]]:
        return {
            self.partner_center.name: self.partner_center,
            self.entra.name: self.entra,
            self.key_vault.name: self.key_vault,
            self.graph.name: self.graph,
        }

    @property
    def ca_file(self) -> Path:
        """The stand-ins' CA alone (PEM)."""
        return self._certificates.ca_file

    @property
    def ca_bundle_file(self) -> Path:
        """The stand-ins' CA plus the public roots requests trusts: for REQUESTS_CA_BUNDLE."""
        return self._certificates.ca_bundle_file

    def reset(self) -> None:
        """Clear customers, users, secrets, apps, tokens, faults, counters and request logs,
        and put every config back to its defaults. The servers, ports and CA stay."""
        for service in self.services.values():
            service.reset()
        self._seeds.clear()
        self._register_vault_principal()

    def _register_vault_principal(self) -> None:
        self.entra.register_app(
            self.key_vault.vault_tenant_id,
            self.key_vault.vault_client_id,
            self.key_vault.vault_client_secret,
        )

    def seed_partner(
        self,
        partner_tenant_id: str,
        *,
        app_id_secret: str = DEFAULT_APP_ID_SECRET,
        app_secret_secret: str = DEFAULT_APP_SECRET_SECRET,
        refresh_token_secret: str = DEFAULT_REFRESH_TOKEN_SECRET,
    ) -> PartnerSeed:
        """Register the partner's app in Entra, issue a refresh token as if an MFA-enabled
        partner user had consented, and store the three credentials in the vault."""
        client_id = str(uuid.uuid4())
        client_secret = "standin-app-secret." + secrets.token_urlsafe(24)
        self.entra.register_app(partner_tenant_id, client_id, client_secret)
        refresh_token = self.entra.issue_refresh_token(partner_tenant_id, client_id)
        self.key_vault.set_secret(app_id_secret, client_id)
        self.key_vault.set_secret(app_secret_secret, client_secret)
        self.key_vault.set_secret(refresh_token_secret, refresh_token)
        seed = PartnerSeed(
            tenant_id=partner_tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            app_id_secret=app_id_secret,
            app_secret_secret=app_secret_secret,
            refresh_token_secret=refresh_token_secret,
        )
        self._seeds[partner_tenant_id.lower()] = seed
        return seed

    def function_settings(self, partner_tenant_id: str) -> dict[str, str]:
        """App settings (environment variables) that point the function app at the stand-ins."""
        seed = self._seeds.get(partner_tenant_id.lower())
        return {
            "KEY_VAULT_URL": self.key_vault.vault_url,
            "PARTNER_TENANT_ID": partner_tenant_id,
            "PARTNER_CENTER_BASE_URL": self.partner_center.base_url,
            "ENTRA_AUTHORITY_HOST": self.entra.authority_host,
            "GRAPH_BASE_URL": self.graph.base_url,
            "PARTNER_CENTER_APP_ID_SECRET": seed.app_id_secret if seed else DEFAULT_APP_ID_SECRET,
            "PARTNER_CENTER_APP_SECRET_SECRET": (
                seed.app_secret_secret if seed else DEFAULT_APP_SECRET_SECRET
            ),
            "PARTNER_CENTER_REFRESH_TOKEN_SECRET": (
                seed.refresh_token_secret if seed else DEFAULT_REFRESH_TOKEN_SECRET
            ),
            "KEY_VAULT_CREDENTIAL": "client_secret",
            "AZURE_TENANT_ID": self.key_vault.vault_tenant_id,
            "AZURE_CLIENT_ID": self.key_vault.vault_client_id,
            "AZURE_CLIENT_SECRET": self.key_vault.vault_client_secret,
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle_file),
        }
