"""Microsoft Graph in a customer's tenant: who holds a UPN, in one call (the ``UpnDirectory``
port, setting ``UPN_LOOKUP``).

Partner Center has no look-up by UPN, only a paged list of every user; Graph has
``GET /v1.0/users/{userPrincipalName}`` where the partner's app is consented in the customer's
tenant (reference/partner-center.md, "Looking a UPN up in O(1)"). The token is the partner's
refresh token redeemed at the customer's tenant (``CustomerTenantTokens``); Graph reads the
directory the token names, so one token per customer.

This adapter owns Graph's wire format and raises only the kinds in ``shared.domain.errors``:
``DirectoryUnavailable`` when the customer has not consented (``auto`` falls back to Partner
Center's user list and remembers it for an hour), ``Refused`` for the same in ``graph``
mode, or a transient ``ServiceUnavailableError`` (throttling, 5xx, timeouts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote, urljoin

import requests

from shared.adapters.throttle import ThrottleGate, ThrottleHeld
from shared.domain.errors import (
    DirectoryUnavailable,
    Refused,
    ServiceUnavailableError,
    retry_after_seconds,
)
from shared.domain.model import FoundUser
from shared.domain.outcomes import Category

# What a look-up reads: enough to tell who the user is and when it was made.
USER_SELECT = (
    "id,userPrincipalName,displayName,givenName,surname,onPremisesImmutableId,"
    "createdDateTime,accountEnabled"
)
# Graph's documented codes (reference, "Looking a UPN up in O(1)").
NOT_FOUND_CODE = "Request_ResourceNotFound"
NOT_CONSENTED_CODES = frozenset({"Authorization_IdentityNotFound", "Authorization_RequestDenied"})
# The values of UPN_LOOKUP (shared.settings.UPN_LOOKUP_MODES) this module acts on.
AUTO, GRAPH = "auto", "graph"
# Characters of a UPN that stay as they are in the path (the rest, '#', '/', '?', '%', "'"
# included, are percent-encoded so they cannot end the segment or the path).
_PATH_SAFE = "@"

# How long ``auto`` keeps a customer found not consented on Partner Center's user list before
# asking Graph again: a consent given while the app runs takes effect within this time, for one
# Graph call per such customer per hour (not one per hire).
RECHECK_CONSENT_SECONDS = 3600.0

logger = logging.getLogger("hire_provisioning.graph")


class TenantTokens(Protocol):
    def access_token(self, tenant_id: str, *, force_refresh: bool = False) -> str: ...


def user_path(user_principal_name: str) -> str:
    """``/v1.0/users/{upn}``, percent-encoded; a UPN starting with '$' takes Graph's documented
    ``/v1.0/users('{upn}')`` form (``/users/$...`` would read as a system segment), with its
    single quotes doubled as an OData string literal needs."""
    if user_principal_name.startswith("$"):
        literal = quote(user_principal_name.replace("'", "''"), safe=_PATH_SAFE + "$'")
        return f"/v1.0/users('{literal}')"
    return f"/v1.0/users/{quote(user_principal_name, safe=_PATH_SAFE)}"


class GraphClient:
    """Reads one user of a customer's directory by UPN over Microsoft Graph v1.0."""

    def __init__(
        self,
        base_url: str,
        tokens: TenantTokens,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        gate: ThrottleGate | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._session = session or requests.Session()
        self._timeouts = (connect_timeout, read_timeout)
        # Graph throttles per app and tenant: one 429 holds back this process's calls to that
        # tenant until Retry-After has passed.
        self._gate = gate or ThrottleGate()

    def close(self) -> None:
        self._session.close()

    def find_user_by_upn(
        self, customer_tenant_id: str, user_principal_name: str, *, correlation_id: str
    ) -> FoundUser | None:
        """The active user holding the UPN, or None (Graph answered 404
        ``Request_ResourceNotFound``; a user made seconds ago may not show yet)."""
        url = urljoin(self._base_url + "/", user_path(user_principal_name).lstrip("/"))
        # '$select' written as Graph's documentation writes it; its commas need no encoding.
        url += f"?$select={USER_SELECT}"
        force_refresh = False
        for _ in range(2):
            token = self._tokens.access_token(customer_tenant_id, force_refresh=force_refresh)
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "client-request-id": correlation_id,
                "return-client-request-id": "true",
            }
            response = self._get(customer_tenant_id, url, headers)
            if (
                response.status_code == 401
                and not force_refresh
                and _error_code(response) not in NOT_CONSENTED_CODES
            ):
                # A token can be revoked or expire early: one fresh token, one more try (a
                # refusal of the app itself is not cured by a new token).
                force_refresh = True
                continue
            return self._read(response, customer_tenant_id, user_principal_name)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, tenant_id: str, url: str, headers: dict[str, str]) -> requests.Response:
        try:
            return self._gate.call(
                f"{self._base_url} {tenant_id.lower()}",
                partial(self._session.get, url, headers=headers, timeout=self._timeouts),
                throttled_for=_throttled_for,
            )
        except ThrottleHeld as held:
            raise ServiceUnavailableError(
                f"Microsoft Graph throttled this process for customer tenant {tenant_id}; calls "
                f"are held back for another {held.remaining:.0f}s",
                throttled=True,
                retry_after=held.remaining,
            ) from None
        except requests.Timeout:
            raise ServiceUnavailableError(
                f"Microsoft Graph did not answer within {self._timeouts[1]:g}s"
            ) from None
        except requests.RequestException as error:
            raise ServiceUnavailableError(
                f"the connection to Microsoft Graph failed ({type(error).__name__})"
            ) from None

    def _read(
        self, response: requests.Response, tenant_id: str, user_principal_name: str
    ) -> FoundUser | None:
        status = response.status_code
        if status == 200:
            body = _json_object(response)
            if body is None or not body.get("id"):
                raise ServiceUnavailableError(
                    "Microsoft Graph answered 200 without a user object", http_status=status
                )
            found = _found_user(body)
            if found.user_principal_name.casefold() != user_principal_name.casefold():
                # Asked by UPN, answered with someone else: no proof of who holds it.
                raise ServiceUnavailableError(
                    "Microsoft Graph answered the look-up by UPN with a user of another UPN",
                    http_status=status,
                )
            return found
        code = _error_code(response)
        said = f"Microsoft Graph answered {status}" + (f" ({code})" if code else "")
        if status == 404 and code and "resourcenotfound" in code.lower():
            return None
        if status == 429 or status == 408 or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise ServiceUnavailableError(
                said + (f"; it asked to wait {wait:g}s" if wait is not None else ""),
                throttled=status == 429,
                http_status=status,
                code=code,
                retry_after=wait,
            )
        if status in (401, 403):
            raise DirectoryUnavailable(
                f"{said} in customer tenant {tenant_id}: the partner's app is not consented "
                "there for reading users (Graph User.Read.All or Directory.Read.All, and a GDAP "
                "role such as Directory Readers)"
            )
        if status == 404:
            # Not Graph's answer for a missing user: the address is not Graph's users API.
            raise DirectoryUnavailable(f"{said} for a user path: check the GRAPH_BASE_URL setting")
        if status == 400:
            # Graph cannot read this UPN as a user key (e.g. "Invalid object identifier"): a
            # fact about this UPN, not about the customer's consent, and no answer to who holds
            # it. The look-up must still be answered (it may settle a create that was applied),
            # so Partner Center's user list answers for this one UPN.
            raise UnaddressableUpn(
                f"{said}: Microsoft Graph cannot look userPrincipalName {user_principal_name} "
                "up; Partner Center's user list answers instead"
            )
        raise Refused(
            Category.VALIDATION,
            f"{said}: Microsoft Graph refused the look-up of this userPrincipalName",
            http_status=status,
            code=code,
        )


class UnaddressableUpn(DirectoryUnavailable):
    """Graph answered 400 for one UPN: the customer's directory may answer for every other."""


class GraphUpnDirectory:
    """The ``UpnDirectory`` port over Graph, per ``UPN_LOOKUP`` (``auto`` or ``graph``).

    In ``auto`` a customer that turns out not consented is remembered for ``recheck_after``
    seconds (``available`` says False, and no Graph call is made for it), then Graph is asked
    again at the customer's next look-up (``available`` says None until it has answered). It is
    said once per change: one warning line and one ``on_fallback`` call (the metric) when a
    customer is found not consented, an info line when Graph answers for it again.
    """

    def __init__(
        self,
        client: GraphClient,
        *,
        mode: str = AUTO,
        on_fallback: Callable[[str], None] | None = None,
        recheck_after: float = RECHECK_CONSENT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in (AUTO, GRAPH):
            raise ValueError(f"mode must be {AUTO!r} or {GRAPH!r}")
        self._client = client
        self._mode = mode
        self._on_fallback = on_fallback
        self._recheck_after = recheck_after
        self._clock = clock
        self._lock = threading.Lock()
        self._consented: set[str] = set()
        # customer -> (why Graph cannot be used, the clock's time that was found out)
        self._not_consented: dict[str, tuple[str, float]] = {}

    def available(self, customer_tenant_id: str) -> bool | None:
        if self._mode == GRAPH:
            return True
        key = customer_tenant_id.lower()
        if key in self._not_consented:
            # Past the re-check time nobody knows until Graph has been asked again.
            return False if self._still_refused(key) is not None else None
        return True if key in self._consented else None

    def _still_refused(self, key: str) -> str | None:
        held = self._not_consented.get(key)
        if held is None:
            return None
        reason, since = held
        return reason if self._clock() - since < self._recheck_after else None

    def find_user_by_upn(
        self, customer_tenant_id: str, user_principal_name: str, *, correlation_id: str
    ) -> FoundUser | None:
        key = customer_tenant_id.lower()
        known = self._still_refused(key)
        if known is not None and self._mode == AUTO:
            raise DirectoryUnavailable(known)
        try:
            found = self._client.find_user_by_upn(
                customer_tenant_id, user_principal_name, correlation_id=correlation_id
            )
        except UnaddressableUpn as why:
            # This UPN only, in either mode: not remembered, and not a consent problem.
            raise DirectoryUnavailable(str(why)) from None
        except DirectoryUnavailable as why:
            if self._mode == GRAPH:
                raise Refused(
                    Category.PERMISSION,
                    f"{why}. UPN_LOOKUP is 'graph': consent the partner's app in this "
                    "customer's tenant (Partner Center applicationconsents) and grant the GDAP "
                    "role, or set UPN_LOOKUP to 'auto', then replay from the poison queue",
                ) from None
            self._remember_not_consented(customer_tenant_id, str(why))
            raise
        if key not in self._consented:
            with self._lock:
                self._consented.add(key)
                consented_since = self._not_consented.pop(key, None) is not None
            if consented_since:
                logger.info(
                    "UPN look-ups for customer %s use Microsoft Graph again: it answered "
                    "(consent given since)",
                    customer_tenant_id,
                )
        return found

    def _remember_not_consented(self, customer_tenant_id: str, reason: str) -> None:
        key = customer_tenant_id.lower()
        with self._lock:
            # A re-check that finds it still refused is no news: no second line or count.
            first = key not in self._not_consented
            self._not_consented[key] = (reason, self._clock())
            self._consented.discard(key)
        if first:
            logger.warning(
                "UPN look-ups for customer %s use Partner Center's user list (one call per "
                "100 users); Microsoft Graph is asked again every %d minutes: %s",
                customer_tenant_id,
                self._recheck_after // 60,
                reason,
            )
            if self._on_fallback is not None:
                self._on_fallback(customer_tenant_id)


class UserListOnly:
    """``UPN_LOOKUP=partner-center``: no directory; every look-up goes to Partner Center."""

    def available(self, customer_tenant_id: str) -> bool | None:
        return False

    def find_user_by_upn(
        self, customer_tenant_id: str, user_principal_name: str, *, correlation_id: str
    ) -> FoundUser | None:
        raise DirectoryUnavailable("UPN_LOOKUP is 'partner-center': no directory look-ups")


def _found_user(body: dict[str, Any]) -> FoundUser:
    def text(name: str) -> str | None:
        value = body.get(name)
        return value if isinstance(value, str) else None

    return FoundUser(
        id=str(body["id"]),
        user_principal_name=str(body.get("userPrincipalName") or ""),
        display_name=text("displayName"),
        first_name=text("givenName"),
        last_name=text("surname"),
        immutable_id=text("onPremisesImmutableId"),
        # Graph's /users holds no deleted user (they are under /directory/deletedItems).
        state="active",
        created_at=_timestamp(text("createdDateTime")),
    )


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error_code(response: requests.Response) -> str | None:
    body = _json_object(response)
    error = body.get("error") if body else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and code else None


def _throttled_for(response: requests.Response) -> float | None:
    if response.status_code != 429:
        return None
    wait = retry_after_seconds(response.headers.get("Retry-After"))
    return -1.0 if wait is None else wait
