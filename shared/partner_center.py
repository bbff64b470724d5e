"""Partner Center REST client: create a customer user, find one by UPN.

Only what the provisioning decision needs, per reference/partner-center.md. Every failure is
raised as a ``PartnerCenterError`` that already says whether it is transient and whether the
create may have happened anyway ("doubtful"), so the caller never inspects HTTP details.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote, urljoin

import requests

from shared.errors import ProvisioningError
from shared.outcomes import Category
from shared.passwords import fingerprint
from shared.throttle import ThrottleGate, ThrottleHeld

PARTNER_CENTER_API_VERSION = "v1"
LIST_PAGE_SIZE = 100
MAX_LIST_PAGES = 500  # 50,000 users; a lookup must not outlast the message's lease
TENANT_NOT_FOUND = 60003
_UPN_MARKER = "userprincipalname"
_INACTIVE_FILTER = json.dumps({"Field": "UserState", "Value": "Inactive", "Operator": "equals"})


class TokenSource(Protocol):
    def access_token(self, *, force_refresh: bool = False) -> str: ...


@dataclass(frozen=True, kw_only=True)
class CustomerUser:
    id: str
    user_principal_name: str
    display_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    immutable_id: str | None = None
    state: str | None = None
    # A digest of the password Partner Center says the user has (it echoes the password on
    # create): tells whether this call's password won when two deliveries raced.
    password_fingerprint: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_response(
        cls, body: dict[str, Any], *, password_fingerprint: str | None = None
    ) -> CustomerUser:
        return cls(
            id=str(body.get("id", "")),
            user_principal_name=str(body.get("userPrincipalName", "")),
            display_name=body.get("displayName"),
            first_name=body.get("firstName"),
            last_name=body.get("lastName"),
            immutable_id=body.get("immutableId"),
            state=body.get("state"),
            password_fingerprint=password_fingerprint,
        )


class PartnerCenterError(ProvisioningError):
    """A failed Partner Center call.

    ``doubtful``: the create may have been applied although no success was seen (timeout,
    dropped connection, 5xx, or a duplicate-UPN answer); the caller must look the user up.
    """

    def __init__(
        self,
        category: Category,
        message: str,
        *,
        http_status: int | None = None,
        code: int | str | None = None,
        retry_after: float | None = None,
        doubtful: bool = False,
        duplicate_upn: bool = False,
    ) -> None:
        super().__init__(
            category, message, http_status=http_status, code=code, retry_after=retry_after
        )
        self.doubtful = doubtful
        self.duplicate_upn = duplicate_upn


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0


class PartnerCenterClient:
    """Talks to ``{base_url}/v1/customers/{id}/users`` with App+User tokens."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        session: requests.Session | None = None,
        timeouts: Timeouts | None = None,
        locale: str = "en-US",
        gate: ThrottleGate | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # One client per process, so by default one gate per process.
        self._gate = gate or ThrottleGate()
        self._tokens = tokens
        self._session = session or requests.Session()
        self._timeouts = timeouts or Timeouts()
        self._locale = locale

    def close(self) -> None:
        self._session.close()

    def create_user(
        self,
        customer_tenant_id: str,
        user: dict[str, Any],
        *,
        request_id: str,
        correlation_id: str,
    ) -> CustomerUser:
        """POST the user. ``request_id`` must be the same for every retry of the same hire."""
        password = str(user.get("passwordProfile", {}).get("password", ""))
        response = self._send(
            "POST",
            self._users_path(customer_tenant_id),
            json_body=user,
            request_id=request_id,
            correlation_id=correlation_id,
            creating=True,
            redact=password,
        )
        body = _json_object(response)
        # The service echoes the initial password: drop it before anything else sees the body.
        echoed = body.pop("passwordProfile", None)
        echoed_password = echoed.get("password") if isinstance(echoed, dict) else None
        if not body.get("id"):
            raise PartnerCenterError(
                Category.UNAVAILABLE,
                f"Partner Center answered {response.status_code} to the create call without a "
                "user id; the user may or may not exist",
                http_status=response.status_code,
                doubtful=True,
            )
        return CustomerUser.from_response(
            body,
            password_fingerprint=(
                fingerprint(echoed_password) if isinstance(echoed_password, str) else None
            ),
        )

    def get_user(
        self, customer_tenant_id: str, user_id: str, *, correlation_id: str
    ) -> CustomerUser | None:
        """One user by id, or None when Partner Center does not know it."""
        try:
            response = self._send(
                "GET",
                f"{self._users_path(customer_tenant_id)}/{quote(user_id, safe='')}",
                correlation_id=correlation_id,
            )
        except PartnerCenterError as error:
            if error.failure.http_status == 404 and error.failure.code != TENANT_NOT_FOUND:
                return None
            raise
        body = _json_object(response)
        body.pop("passwordProfile", None)
        return CustomerUser.from_response(body)

    def find_user_by_upn(
        self,
        customer_tenant_id: str,
        user_principal_name: str,
        *,
        correlation_id: str,
        inactive: bool = False,
    ) -> CustomerUser | None:
        """Look a user up by UPN, case-insensitively (Partner Center has no filter by UPN)."""
        wanted = user_principal_name.casefold()
        for item in self._list_users(
            customer_tenant_id, correlation_id=correlation_id, inactive=inactive
        ):
            if str(item.get("userPrincipalName", "")).casefold() == wanted:
                item.pop("passwordProfile", None)
                return CustomerUser.from_response(item)
        return None

    def _list_users(
        self, customer_tenant_id: str, *, correlation_id: str, inactive: bool
    ) -> Iterator[dict[str, Any]]:
        path = f"{self._users_path(customer_tenant_id)}?size={LIST_PAGE_SIZE}"
        if inactive:
            path += f"&filter={quote(_INACTIVE_FILTER)}"
        continuation: str | None = None
        for _ in range(MAX_LIST_PAGES):
            extra_headers = {"MS-ContinuationToken": continuation} if continuation else {}
            response = self._send(
                "GET", path, correlation_id=correlation_id, extra_headers=extra_headers
            )
            page = _json_object(response)
            items = page.get("items") or []
            yield from (item for item in items if isinstance(item, dict))
            next_link = (page.get("links") or {}).get("next")
            if not isinstance(next_link, dict) or not next_link.get("uri"):
                return
            path = str(next_link["uri"])
            continuation = next(
                (
                    str(header.get("value"))
                    for header in next_link.get("headers") or []
                    if str(header.get("key", "")).lower() == "ms-continuationtoken"
                ),
                None,
            )
        raise PartnerCenterError(
            Category.UNAVAILABLE,
            f"the user list of customer {customer_tenant_id} has more than "
            f"{MAX_LIST_PAGES * LIST_PAGE_SIZE} users; the lookup by UPN stopped there",
        )

    def _users_path(self, customer_tenant_id: str) -> str:
        return f"/{PARTNER_CENTER_API_VERSION}/customers/{quote(customer_tenant_id, safe='')}/users"

    def _send(
        self,
        method: str,
        path: str,
        *,
        correlation_id: str,
        request_id: str | None = None,
        json_body: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
        creating: bool = False,
        redact: str = "",
    ) -> requests.Response:
        url = urljoin(self._base_url + "/", path.lstrip("/"))
        force_refresh = False
        for _ in range(2):
            headers = {
                "Authorization": f"Bearer {self._tokens.access_token(force_refresh=force_refresh)}",
                "Accept": "application/json",
                "MS-Contract-Version": PARTNER_CENTER_API_VERSION,
                "MS-CorrelationId": correlation_id,
                "X-Locale": self._locale,
                **(extra_headers or {}),
            }
            if request_id:
                headers["MS-RequestId"] = request_id
            try:
                # One 429 holds back every call of this process until Retry-After has passed.
                response = self._gate.call(
                    self._base_url,
                    partial(
                        self._session.request,
                        method,
                        url,
                        headers=headers,
                        json=json_body,
                        timeout=(self._timeouts.connect, self._timeouts.read),
                    ),
                    throttled_for=_throttled_for,
                )
            except ThrottleHeld as held:
                raise PartnerCenterError(
                    Category.THROTTLED,
                    f"Partner Center throttled this process; calls are held back for another "
                    f"{held.remaining:.0f}s",
                    retry_after=held.remaining,
                ) from None
            except requests.ConnectTimeout:
                raise PartnerCenterError(
                    Category.UNAVAILABLE,
                    f"Partner Center did not accept a connection within {self._timeouts.connect}s",
                ) from None
            except requests.Timeout:
                raise PartnerCenterError(
                    Category.UNAVAILABLE,
                    f"Partner Center did not answer within {self._timeouts.read}s",
                    doubtful=creating,
                ) from None
            except requests.RequestException as error:
                raise PartnerCenterError(
                    Category.UNAVAILABLE,
                    f"the connection to Partner Center failed ({type(error).__name__})",
                    doubtful=creating,
                ) from None
            if response.status_code == 401 and not force_refresh:
                # A token can be revoked or expire early: one fresh token, one more try.
                force_refresh = True
                continue
            if response.status_code < 400:
                return response
            raise _classify(response, creating=creating, redact=redact)
        raise AssertionError("unreachable")  # pragma: no cover


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PartnerCenterError(
            Category.UNAVAILABLE,
            f"Partner Center answered {response.status_code} with a body that is not a JSON object",
            http_status=response.status_code,
            doubtful=response.request.method == "POST",
        )
    return body


def _error_details(response: requests.Response, redact: str) -> tuple[int | str | None, str]:
    try:
        body = response.json()
    except ValueError:
        body = None
    code: int | str | None = None
    description = ""
    if isinstance(body, dict):
        raw_code = body.get("code", body.get("statusCode"))
        if isinstance(raw_code, str) and raw_code.strip().lstrip("-").isdigit():
            code = int(raw_code)
        elif isinstance(raw_code, (int, str)) and not isinstance(raw_code, bool):
            code = raw_code
        description = str(body.get("description") or body.get("message") or "")
    if redact and (redact in description or "password" in description.lower()):
        # The service may quote what it was sent, possibly encoded: keep none of it.
        description = "(the description mentions the password and is not kept)"
    return code, " ".join(description.split())[:300].rstrip(".")


def _throttled_for(response: requests.Response) -> float | None:
    if response.status_code != 429:
        return None
    wait = _retry_after(response)
    return -1.0 if wait is None else wait


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _classify(response: requests.Response, *, creating: bool, redact: str) -> PartnerCenterError:
    status = response.status_code
    code, description = _error_details(response, redact)
    said = f"Partner Center answered {status}" + (f" (code {code})" if code is not None else "")
    said += f": {description}" if description else ""
    if status == 429:
        wait = _retry_after(response)
        return PartnerCenterError(
            Category.THROTTLED,
            f"{said}. Throttled"
            + (f"; Partner Center asked to wait {wait:g}s" if wait is not None else ""),
            http_status=status,
            code=code,
            retry_after=wait,
        )
    if status >= 500 or status == 408:
        return PartnerCenterError(
            Category.UNAVAILABLE,
            f"{said}. A transient service error",
            http_status=status,
            code=code,
            retry_after=_retry_after(response),
            doubtful=creating,
        )
    lowered = description.lower()
    already_exists = "already exists" in lowered or "objectconflict" in lowered
    duplicate = creating and (
        status == 409 or (status == 400 and already_exists and _UPN_MARKER in lowered)
    )
    if duplicate:
        return PartnerCenterError(
            Category.CONFLICT,
            f"{said}. The userPrincipalName is already taken in the customer tenant",
            http_status=status,
            code=code,
            doubtful=True,
            duplicate_upn=True,
        )
    if status == 401:
        return PartnerCenterError(
            Category.CREDENTIALS,
            f"{said}. Partner Center refused the App+User token even after a fresh one; check "
            "that the refresh token in Key Vault belongs to an MFA-enabled partner user of the "
            "secure application model app, then replay from the poison queue",
            http_status=status,
            code=code,
        )
    if status == 403:
        return PartnerCenterError(
            Category.PERMISSION,
            f"{said}. The partner user lacks permission in this customer tenant: grant a GDAP "
            "relationship with User Administrator or Directory Writers, then replay from the "
            "poison queue",
            http_status=status,
            code=code,
        )
    if creating and status == 400 and already_exists:
        # Another unique property (immutableId, a proxy address) is taken: a UPN lookup
        # cannot settle it, a person must.
        return PartnerCenterError(
            Category.CONFLICT,
            f"{said}. Another user already holds a unique value of this user (not the UPN): "
            "correct the HR record and republish",
            http_status=status,
            code=code,
        )
    if status == 404 and code == TENANT_NOT_FOUND:
        return PartnerCenterError(
            Category.VALIDATION,
            f"{said}. The customer tenant is not a customer of this partner: correct "
            "customerTenantId in the HR record and republish",
            http_status=status,
            code=code,
        )
    if status == 404:
        return PartnerCenterError(
            Category.VALIDATION,
            f"{said}. Partner Center does not know this resource: check customerTenantId "
            "and the PARTNER_CENTER_BASE_URL setting",
            http_status=status,
            code=code,
        )
    return PartnerCenterError(
        Category.VALIDATION,
        f"{said}. Partner Center refused the user as described: correct the HR record and "
        "republish",
        http_status=status,
        code=code,
    )
