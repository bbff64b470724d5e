"""App+User credentials for Partner Center (the secure application model).

The app id, app secret and refresh token are read from Key Vault once and kept; the access
token is kept until shortly before it expires. Both are shared by every invocation in the
process (the worker runs invocations on a thread pool), behind one lock, so a burst of
messages costs one vault read per secret and one token request.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msal
import requests

from shared.adapters.vault import SecretStore
from shared.domain.errors import (
    CredentialsError,
    DirectoryUnavailable,
    ProvisioningError,
    ServiceUnavailableError,
    retry_after_seconds,
)

PARTNER_CENTER_SCOPE = "https://api.partnercenter.microsoft.com/user_impersonation"
# Microsoft Graph in a customer's tenant, with the permissions consented there.
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# The OAuth errors a retry can fix; every other one needs a person (consent again, a new
# secret, a corrected tenant or scope).
_TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error", "slow_down"})
_AADSTS = re.compile(r"AADSTS\d+")

logger = logging.getLogger("hire_provisioning.credentials")


class TokenExchange(Protocol):
    def __call__(
        self, *, client_id: str, client_secret: str, refresh_token: str
    ) -> dict[str, Any]: ...


class MsalTokenExchange:
    """Refresh-token grant against the partner tenant's v2.0 token endpoint, through msal."""

    def __init__(
        self,
        *,
        authority_host: str,
        tenant_id: str,
        timeout: float = 30.0,
        scope: str = PARTNER_CENTER_SCOPE,
    ) -> None:
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._timeout = timeout
        self._scope = scope
        self._apps: dict[tuple[str, str], msal.ConfidentialClientApplication] = {}

    def __call__(self, *, client_id: str, client_secret: str, refresh_token: str) -> dict[str, Any]:
        try:
            app = self._app(client_id, client_secret)
            result: dict[str, Any] = app.acquire_token_by_refresh_token(
                refresh_token, scopes=[self._scope]
            )
        except _EntraBusy as busy:
            problem: ProvisioningError = busy.problem
        except (requests.RequestException, msal.exceptions.MsalServiceError) as error:
            problem = ServiceUnavailableError(
                f"the Entra token endpoint could not be reached or failed ({type(error).__name__})"
            )
        except ValueError as error:
            # msal raises ValueError when the authority's metadata is refused: a tenant or
            # authority host that does not exist.
            problem = _AuthorityRefused(
                type(error).__name__,
                f"the Entra authority {self._authority} refused its metadata request "
                f"({type(error).__name__}): check the PARTNER_TENANT_ID and ENTRA_AUTHORITY_HOST "
                "settings, then replay from the poison queue",
            )
        else:
            return result
        raise problem

    def _app(self, client_id: str, client_secret: str) -> msal.ConfidentialClientApplication:
        key = (client_id, client_secret)
        app = self._apps.get(key)
        if app is None:
            # The constructor reads the authority's metadata over the network.
            app = msal.ConfidentialClientApplication(
                client_id,
                client_credential=client_secret,
                authority=self._authority,
                # Instance discovery calls login.microsoftonline.com, which a sovereign cloud
                # or a local stand-in does not answer for; the authority is configured, not found.
                instance_discovery=False,
                http_client=_EntraHttp(self._timeout),
            )
            self._apps = {key: app}
        return app


class _AuthorityRefused(CredentialsError):
    """The authority's metadata was refused: a tenant or an authority host that does not
    exist. For the partner's tenant a person must fix a setting; for a customer's tenant it
    only means Graph cannot be used there."""

    def __init__(self, detail: str, message: str) -> None:
        super().__init__(message)
        self.detail = detail


class _EntraBusy(Exception):
    """Raised through msal by ``_EntraHttp``; carries the classified failure."""

    def __init__(self, problem: ServiceUnavailableError) -> None:
        super().__init__(problem.failure.message)
        self.problem = problem


class _EntraHttp:
    """msal's HTTP client, so that "busy, try later" answers are read as such.

    Left to itself, msal reads any 4xx from the metadata endpoint as a tenant that does not
    exist (``ValueError``) and parses a token answer as an OAuth error whatever its status, so
    a 408 or a gateway's 429, with or without Retry-After, would look like credentials a
    person must fix. Raising here also keeps msal from caching the answer for its Retry-After.
    """

    def __init__(self, timeout: float) -> None:
        self._session = requests.Session()
        self._timeout = timeout

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._checked(self._session.get(url, **kwargs), "metadata")

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._checked(self._session.post(url, **kwargs), "token")

    def close(self) -> None:
        self._session.close()

    @staticmethod
    def _checked(response: requests.Response, endpoint: str) -> requests.Response:
        status = response.status_code
        if status in (408, 429) or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            said = f"the Entra {endpoint} endpoint answered {status}"
            if status == 429:
                said += " (throttled" + (f"; it asked to wait {wait:g}s)" if wait else ")")
            raise _EntraBusy(
                ServiceUnavailableError(
                    said, throttled=status == 429, http_status=status, retry_after=wait
                )
            )
        return response


@dataclass(kw_only=True)
class _StoredCredentials:
    app_id: str
    app_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    refresh_token_saved_at: datetime | None
    loaded_at: float


@dataclass(frozen=True, kw_only=True)
class CredentialSecretNames:
    app_id: str = "partner-center-app-id"
    app_secret: str = "partner-center-app-secret"
    refresh_token: str = "partner-center-refresh-token"


class PartnerCenterCredentials:
    """Hands out App+User access tokens for Partner Center; thread-safe."""

    def __init__(
        self,
        secrets: SecretStore,
        exchange: TokenExchange,
        *,
        names: CredentialSecretNames | None = None,
        refresh_margin: float = 300.0,
        write_back_interval: timedelta = timedelta(days=1),
        refusal_memory: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = secrets
        self._exchange = exchange
        self._names = names or CredentialSecretNames()
        self._refresh_margin = refresh_margin
        self._write_back_interval = write_back_interval
        self._refusal_memory = refusal_memory
        self._clock = clock
        self._lock = threading.Lock()
        self._stored: _StoredCredentials | None = None
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._refusal: tuple[float, ProvisioningError] | None = None
        self._last_failure: tuple[float, ProvisioningError] | None = None

    def access_token(self, *, force_refresh: bool = False) -> str:
        token = self._token
        if token and not force_refresh and self._clock() < self._token_expires_at:
            return token
        asked_at = self._clock()
        with self._lock:
            if self._token and self._token != token:
                return self._token  # another thread refreshed while this one waited
            if self._token and not force_refresh and self._clock() < self._token_expires_at:
                return self._token
            if self._last_failure and self._last_failure[0] >= asked_at:
                # The refresh this thread waited for failed: share that answer instead of
                # queueing one more exchange (and its timeouts) behind the lock.
                raise _copy(self._last_failure[1])
            try:
                return self._refresh()
            except ProvisioningError as error:
                self._last_failure = (self._clock(), error)
                raise

    def exchange_elsewhere(self, exchange: TokenExchange) -> dict[str, Any]:
        """Redeem the partner's refresh token through another exchange (a customer's tenant,
        another scope) and return its raw answer. The refresh token such an answer carries is
        not kept: the vault's copy is rotated by the partner tenant's exchange alone, so one
        rule decides what is written back."""
        with self._lock:
            stored = self._stored or self._load()
        return exchange(
            client_id=stored.app_id,
            client_secret=stored.app_secret,
            refresh_token=stored.refresh_token,
        )

    def _refresh(self) -> str:
        now = self._clock()
        if self._refusal and now - self._refusal[0] < self._refusal_memory:
            # Entra refused these credentials moments ago; only a person can fix that, so do
            # not send every message of a burst to Entra and Key Vault again.
            raise _copy(self._refusal[1])
        stored = self._stored or self._load()
        result = self._exchange_with(stored)
        if "access_token" not in result and self._stored is stored and now - stored.loaded_at > 1:
            # The refresh token may have been renewed in the vault since it was read.
            stored = self._load()
            result = self._exchange_with(stored)
        if "access_token" not in result:
            error = self._refused(result)
            if not error.is_transient:
                self._refusal = (self._clock(), error)
            raise error
        self._refusal = None
        self._last_failure = None
        self._token = str(result["access_token"])
        lifetime = float(result.get("expires_in") or 3600)
        self._token_expires_at = self._clock() + max(lifetime - self._refresh_margin, lifetime / 2)
        rotated = result.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != stored.refresh_token:
            stored.refresh_token = rotated
            self._maybe_write_back(stored)
        return self._token

    def _exchange_with(self, stored: _StoredCredentials) -> dict[str, Any]:
        return self._exchange(
            client_id=stored.app_id,
            client_secret=stored.app_secret,
            refresh_token=stored.refresh_token,
        )

    def _load(self) -> _StoredCredentials:
        values = {}
        for label, name in (
            ("app id", self._names.app_id),
            ("app secret", self._names.app_secret),
            ("refresh token", self._names.refresh_token),
        ):
            secret = self._secrets.get(name)
            if secret is None or not secret.value:
                raise CredentialsError(
                    f"the Partner Center {label} is missing from Key Vault (secret '{name}'); "
                    "store it as docs/deployment.md describes, then replay from the poison queue"
                )
            values[label] = secret
        self._stored = _StoredCredentials(
            app_id=values["app id"].value,
            app_secret=values["app secret"].value,
            refresh_token=values["refresh token"].value,
            refresh_token_saved_at=values["refresh token"].updated_on,
            loaded_at=self._clock(),
        )
        return self._stored

    def _maybe_write_back(self, stored: _StoredCredentials) -> None:
        now = datetime.fromtimestamp(self._clock(), UTC)
        saved = stored.refresh_token_saved_at
        if saved is not None and now - saved < self._write_back_interval:
            return
        try:
            self._secrets.set(
                self._names.refresh_token,
                stored.refresh_token,
                content_type="refresh-token",
                tags={"rotatedBy": "hire-provisioning"},
            )
        except ProvisioningError as error:
            # The token in memory still works; the next exchange tries the write again.
            logger.warning("could not save the rotated refresh token: %s", error)
            return
        stored.refresh_token_saved_at = now
        logger.info("saved the rotated Partner Center refresh token as a new secret version")

    def _refused(self, result: dict[str, Any]) -> ProvisioningError:
        error = str(result.get("error") or "unknown_error")
        description = str(result.get("error_description") or "")
        codes = result.get("error_codes") or []
        aadsts = _AADSTS.search(description)
        detail = aadsts.group(0) if aadsts else (f"AADSTS{codes[0]}" if codes else "")
        said = f"{error}{' ' + detail if detail else ''}"
        if error not in _TRANSIENT_OAUTH_ERRORS:
            return CredentialsError(
                f"Entra refused the Partner Center credentials ({said}). A partner admin with "
                f"MFA must consent again (secure application model) and store the new refresh "
                f"token in Key Vault secret '{self._names.refresh_token}' (or fix the app "
                "secret), then replay from the poison queue",
                code=detail or error,
            )
        return ServiceUnavailableError(
            f"the Entra token endpoint failed ({said})",
            throttled="429" in description or error == "throttled",
            code=detail or error,
        )


def _copy(error: ProvisioningError) -> ProvisioningError:
    """A new exception with the same failure, so threads never share one traceback."""
    failure = error.failure
    return ProvisioningError(
        failure.category,
        failure.message,
        http_status=failure.http_status,
        code=failure.code,
        retry_after=error.retry_after,
    )


# Refusals at a customer's tenant that say the partner's own credentials are broken (the same
# exchange at the partner's tenant fails too): a person must act, whatever the customer allows.
_PARTNER_CREDENTIAL_PROBLEMS = frozenset(
    {
        "AADSTS700082",  # refresh token expired (90 days unused)
        "AADSTS50173",  # grant revoked (password changed)
        "AADSTS70008",  # refresh token expired
        "AADSTS7000215",  # wrong client secret
        "AADSTS7000222",  # client secret expired
    }
)


class CustomerTenantTokens:
    """App+User access tokens in customers' tenants (Microsoft Graph there), each from the
    partner's refresh token redeemed at that tenant's token endpoint; thread-safe.

    One token per tenant, kept until ``refresh_margin`` seconds before it expires; tenants
    refresh independently (a slow token endpoint for one customer holds back no other).
    """

    def __init__(
        self,
        partner: PartnerCenterCredentials,
        exchange_for: Callable[[str], TokenExchange],
        *,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._partner = partner
        self._exchange_for = exchange_for
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._tenant_locks: dict[str, threading.Lock] = {}
        self._exchanges: dict[str, TokenExchange] = {}
        self._tokens: dict[str, tuple[str, float]] = {}

    def access_token(self, tenant_id: str, *, force_refresh: bool = False) -> str:
        """The tenant's token. Raises ``DirectoryUnavailable`` when the tenant refuses the
        partner's app (no consent there), ``CredentialsError`` when the partner's credentials
        themselves are refused, ``ServiceUnavailableError`` for a transient failure."""
        key = tenant_id.lower()
        held = self._tokens.get(key)
        if held and not force_refresh and self._clock() < held[1]:
            return held[0]
        with self._lock:
            tenant_lock = self._tenant_locks.setdefault(key, threading.Lock())
            exchange = self._exchanges.get(key)
            if exchange is None:
                exchange = self._exchanges[key] = self._exchange_for(tenant_id)
        with tenant_lock:
            current = self._tokens.get(key)
            if current and current is not held and self._clock() < current[1]:
                return current[0]  # another thread refreshed while this one waited
            try:
                result = self._partner.exchange_elsewhere(exchange)
            except _AuthorityRefused as refused:
                raise DirectoryUnavailable(
                    f"the Entra authority of customer tenant {tenant_id} refused its metadata "
                    f"request ({refused.detail}): Graph cannot be used for this customer"
                ) from None
            if "access_token" not in result:
                raise _customer_refusal(tenant_id, result)
            token = str(result["access_token"])
            lifetime = float(result.get("expires_in") or 3600)
            expires_at = self._clock() + max(lifetime - self._refresh_margin, lifetime / 2)
            self._tokens[key] = (token, expires_at)
            return token


def _customer_refusal(tenant_id: str, result: dict[str, Any]) -> Exception:
    error = str(result.get("error") or "unknown_error")
    description = str(result.get("error_description") or "")
    codes = result.get("error_codes") or []
    aadsts = _AADSTS.search(description)
    detail = aadsts.group(0) if aadsts else (f"AADSTS{codes[0]}" if codes else "")
    said = f"{error}{' ' + detail if detail else ''}"
    if error in _TRANSIENT_OAUTH_ERRORS:
        return ServiceUnavailableError(
            f"the token endpoint of customer tenant {tenant_id} failed ({said})",
            code=detail or error,
        )
    if error == "invalid_client" or detail in _PARTNER_CREDENTIAL_PROBLEMS:
        return CredentialsError(
            f"Entra refused the partner's credentials at customer tenant {tenant_id} ({said}). "
            "A partner admin with MFA must consent again (secure application model) and store "
            "the new refresh token in Key Vault (or fix the app secret), then replay from the "
            "poison queue",
            code=detail or error,
        )
    return DirectoryUnavailable(
        f"customer tenant {tenant_id} refused a token for the partner's app ({said}): the app "
        "is not consented there"
    )
