"""App settings (docs/contract.md section 4), read once from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from shared.domain.upn import UpnTemplateError, validate_template

DEFAULT_REQUEST_QUEUE = "user-create-requests"
DEFAULT_RESULT_QUEUE = "user-create-results"
DEFAULT_PARTNER_CENTER_BASE_URL = "https://api.partnercenter.microsoft.com"
DEFAULT_ENTRA_AUTHORITY_HOST = "https://login.microsoftonline.com"
STORAGE_CONNECTION_SETTING = "AzureWebJobsStorage"
# The ledger's table endpoint has a setting of its own: AzureWebJobsStorage__tableServiceUri
# would also switch on the Functions host's diagnostic tables. The old name is still read.
LEDGER_TABLE_SERVICE_URI_SETTING = "HIRE_LEDGER_TABLE_SERVICE_URI"
DEFAULT_LEDGER_TABLE = "hireledger"
DEFAULT_UPN_TEMPLATE = "{firstName}.{lastName}"
DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com"
# How a UPN's holder is found (docs/contract.md 4): Microsoft Graph in the customer's tenant,
# Partner Center's user list, or Graph where the customer has consented and the list elsewhere.
UPN_LOOKUP_MODES = ("auto", "graph", "partner-center")
DEFAULT_UPN_LOOKUP = "auto"
# How long a delivery's claim on a hire lasts: longer than one invocation can run, shorter than
# the host's 10-minute message lease, so a dead delivery's claim is taken over by the next.
DEFAULT_CLAIM_SECONDS = 240


_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")


class SettingsError(ValueError):
    """A required setting is missing or malformed; the message names the setting."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    request_queue: str
    result_queue: str
    key_vault_url: str
    partner_tenant_id: str
    app_id_secret_name: str
    app_secret_secret_name: str
    refresh_token_secret_name: str
    partner_center_base_url: str
    entra_authority_host: str
    initial_password_vault_url: str
    initial_password_ttl_days: int
    # How the function authenticates to Key Vault: "default" (DefaultAzureCredential, managed
    # identity in Azure) or "client_secret" (AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET
    # against ENTRA_AUTHORITY_HOST, for the local stand-ins).
    key_vault_credential: str
    storage_connection_string: str | None
    storage_queue_service_uri: str | None
    storage_table_service_uri: str | None = None
    ledger_table: str = DEFAULT_LEDGER_TABLE
    upn_template: str = DEFAULT_UPN_TEMPLATE
    claim_seconds: int = DEFAULT_CLAIM_SECONDS
    upn_lookup: str = DEFAULT_UPN_LOOKUP
    graph_base_url: str = DEFAULT_GRAPH_BASE_URL

    @property
    def poison_queue(self) -> str:
        return f"{self.request_queue}-poison"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def optional(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"app setting {name} is required (docs/deployment.md)")
            return value

        key_vault_url = required("KEY_VAULT_URL")
        ttl_text = optional("INITIAL_PASSWORD_TTL_DAYS", "7")
        try:
            ttl_days = int(ttl_text)
        except ValueError:
            raise SettingsError(
                "app setting INITIAL_PASSWORD_TTL_DAYS must be a whole number"
            ) from None
        if not 1 <= ttl_days <= 365:
            raise SettingsError("app setting INITIAL_PASSWORD_TTL_DAYS must be between 1 and 365")
        credential_kind = optional("KEY_VAULT_CREDENTIAL", "default").lower()
        if credential_kind not in {"default", "client_secret"}:
            raise SettingsError(
                "app setting KEY_VAULT_CREDENTIAL must be 'default' or 'client_secret'"
            )
        connection = env.get(STORAGE_CONNECTION_SETTING, "").strip() or None
        queue_service_uri = env.get(f"{STORAGE_CONNECTION_SETTING}__queueServiceUri", "").strip()
        table_service_uri = (
            env.get(LEDGER_TABLE_SERVICE_URI_SETTING, "").strip()
            or env.get(f"{STORAGE_CONNECTION_SETTING}__tableServiceUri", "").strip()
        )
        ledger_table = optional("HIRE_LEDGER_TABLE", DEFAULT_LEDGER_TABLE)
        if not _TABLE_NAME.fullmatch(ledger_table):
            raise SettingsError(
                "app setting HIRE_LEDGER_TABLE must be a table name: 3 to 63 letters and "
                "digits, starting with a letter"
            )
        claim_text = optional("HIRE_CLAIM_SECONDS", str(DEFAULT_CLAIM_SECONDS))
        if not (claim_text.isascii() and claim_text.isdigit()) or not 5 <= int(claim_text) <= 540:
            raise SettingsError("app setting HIRE_CLAIM_SECONDS must be a whole number, 5 to 540")
        upn_template = optional("UPN_TEMPLATE", DEFAULT_UPN_TEMPLATE)
        try:
            validate_template(upn_template)
        except UpnTemplateError as error:
            raise SettingsError(str(error)) from None
        upn_lookup = optional("UPN_LOOKUP", DEFAULT_UPN_LOOKUP).lower()
        if upn_lookup not in UPN_LOOKUP_MODES:
            raise SettingsError(
                "app setting UPN_LOOKUP must be one of " + ", ".join(UPN_LOOKUP_MODES)
            )
        graph_base_url = optional("GRAPH_BASE_URL", DEFAULT_GRAPH_BASE_URL).rstrip("/")
        parts = urlsplit(graph_base_url)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
            raise SettingsError(
                "app setting GRAPH_BASE_URL must be an http(s) URL such as "
                f"{DEFAULT_GRAPH_BASE_URL} (without /v1.0)"
            )
        return cls(
            request_queue=optional("REQUEST_QUEUE_NAME", DEFAULT_REQUEST_QUEUE),
            result_queue=optional("RESULT_QUEUE_NAME", DEFAULT_RESULT_QUEUE),
            key_vault_url=key_vault_url,
            partner_tenant_id=required("PARTNER_TENANT_ID"),
            app_id_secret_name=optional("PARTNER_CENTER_APP_ID_SECRET", "partner-center-app-id"),
            app_secret_secret_name=optional(
                "PARTNER_CENTER_APP_SECRET_SECRET", "partner-center-app-secret"
            ),
            refresh_token_secret_name=optional(
                "PARTNER_CENTER_REFRESH_TOKEN_SECRET", "partner-center-refresh-token"
            ),
            partner_center_base_url=optional(
                "PARTNER_CENTER_BASE_URL", DEFAULT_PARTNER_CENTER_BASE_URL
            ).rstrip("/"),
            entra_authority_host=optional(
                "ENTRA_AUTHORITY_HOST", DEFAULT_ENTRA_AUTHORITY_HOST
            ).rstrip("/"),
            initial_password_vault_url=optional("INITIAL_PASSWORD_VAULT_URL", key_vault_url),
            initial_password_ttl_days=ttl_days,
            key_vault_credential=credential_kind,
            storage_connection_string=connection,
            storage_queue_service_uri=queue_service_uri or None,
            storage_table_service_uri=table_service_uri or None,
            ledger_table=ledger_table,
            upn_template=upn_template,
            claim_seconds=int(claim_text),
            upn_lookup=upn_lookup,
            graph_base_url=graph_base_url,
        )


class HttpAccess(StrEnum):
    """Who may call the HTTP intake and status routes (docs/contract.md section 6)."""

    FUNCTION_KEY = "function-key"  # the Functions host checks a key per route (authLevel FUNCTION)
    ENTRA = "entra"  # App Service authentication admits the caller; the code checks its app role


@dataclass(frozen=True, kw_only=True)
class HttpAccessSettings:
    """``HIRES_HTTP_AUTH`` (``function-key`` or ``entra``; by default ``entra`` exactly when
    App Service authentication is on, which App Service reports as ``WEBSITE_AUTH_ENABLED``),
    and ``HIRES_HTTP_ALLOWED_CLIENT_IDS``: the client application ids admitted in ``entra``
    mode (comma-separated; App Service authentication's allowed applications enforce the same
    list, the code checks it again)."""

    mode: HttpAccess
    easy_auth_enabled: bool
    allowed_client_ids: frozenset[str]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> HttpAccessSettings:
        env = os.environ if environ is None else environ
        easy_auth = env.get("WEBSITE_AUTH_ENABLED", "").strip().lower() in {"true", "1"}
        text = env.get("HIRES_HTTP_AUTH", "").strip().lower()
        if not text:
            mode = HttpAccess.ENTRA if easy_auth else HttpAccess.FUNCTION_KEY
        else:
            try:
                mode = HttpAccess(text)
            except ValueError:
                raise SettingsError(
                    "HIRES_HTTP_AUTH must be function-key or entra, got "
                    f"{text[:40]!r}"
                ) from None
        ids = env.get("HIRES_HTTP_ALLOWED_CLIENT_IDS", "")
        return cls(
            mode=mode,
            easy_auth_enabled=easy_auth,
            allowed_client_ids=frozenset(
                part.strip().lower() for part in ids.split(",") if part.strip()
            ),
        )
