"""Partner Center REST client: create a customer user, find one by UPN or id, restore a
deleted one, reset a password, list the customer's products and assign licences.

Only what the provisioning decision needs, per reference/partner-center.md. This adapter owns
the wire format (it builds the JSON from the decision's ``NewUser``) and raises the kinds of
failure in ``shared.domain.errors``: ``AnswerLost`` when a create may have been applied without a
usable answer, ``UpnTaken``, ``Refused``, or a transient ``ServiceUnavailableError``, so the
caller never inspects HTTP details.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

import requests

from shared.adapters.throttle import ThrottleGate, ThrottleHeld
from shared.domain.errors import (
    AnswerLost,
    CredentialsError,
    ProvisioningError,
    Refused,
    ServiceUnavailableError,
    UpnTaken,
    retry_after_seconds,
)
from shared.domain.model import FoundUser, NewUser, SubscribedSku
from shared.domain.outcomes import Category
from shared.domain.passwords import fingerprint

PARTNER_CENTER_API_VERSION = "v1"
LIST_PAGE_SIZE = 100
PAGE_READS = 3  # tries per page of a user list (5xx, broken connections)
PAGE_REREAD_PAUSE = 0.2  # seconds before the second read of a page, doubled before the third
MAX_LIST_PAGES = 500  # 50,000 users; a lookup must not outlast the message's lease
# Seconds one paged lookup may take, its last page included; with the retry budget it keeps
# an invocation well inside host.json's functionTimeout.
LOOKUP_BUDGET = 60.0
_DEFAULT_PORTS = {"https": 443, "http": 80}
TENANT_NOT_FOUND = 60003
_UPN_MARKER = "userprincipalname"
# Where a password reset goes: Microsoft's pages show both (reference, "Beyond the first create").
RESET_PATHS = ("user", "resetpassword")
_INACTIVE_FILTER = json.dumps({"Field": "UserState", "Value": "Inactive", "Operator": "equals"})


class TokenSource(Protocol):
    def access_token(self, *, force_refresh: bool = False) -> str: ...


def _found_user(body: dict[str, Any], *, password_fingerprint: str | None = None) -> FoundUser:
    def text(name: str) -> str | None:
        value = body.get(name)
        return value if isinstance(value, str) else None

    return FoundUser(
        id=str(body.get("id", "")),
        user_principal_name=str(body.get("userPrincipalName", "")),
        display_name=text("displayName"),
        first_name=text("firstName"),
        last_name=text("lastName"),
        immutable_id=text("immutableId"),
        state=text("state"),
        password_fingerprint=password_fingerprint,
    )


def _create_body(user: NewUser) -> dict[str, Any]:
    body: dict[str, Any] = {
        "usageLocation": user.usage_location,
        "userPrincipalName": user.user_principal_name,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "displayName": user.display_name,
        "passwordProfile": {"password": user.password, "forceChangePassword": True},
        "attributes": {"objectType": "CustomerUser"},
    }
    if user.immutable_id:
        body["immutableId"] = user.immutable_id
    return body


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
        reset_password_path: str = "user",  # noqa: S107 (a URL path, not a password)
        lookup_budget: float = LOOKUP_BUDGET,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        gate: ThrottleGate | None = None,
    ) -> None:
        if reset_password_path not in RESET_PATHS:
            raise ValueError(f"reset_password_path must be one of {RESET_PATHS}")
        # The path that worked last in this process is tried first next time.
        self._reset_path = reset_password_path
        self._base_url = base_url.rstrip("/")
        # One client per process, so by default one gate per process.
        self._gate = gate or ThrottleGate()
        self._tokens = tokens
        self._session = session or requests.Session()
        self._timeouts = timeouts or Timeouts()
        self._locale = locale
        self._lookup_budget = lookup_budget
        self._monotonic = monotonic
        self._sleep = sleep

    def close(self) -> None:
        self._session.close()

    def create_user(
        self,
        customer_tenant_id: str,
        user: NewUser,
        *,
        request_id: str,
        correlation_id: str,
    ) -> FoundUser:
        """POST the user. ``request_id`` must be the same for every retry of the same hire."""
        response = self._send(
            "POST",
            self._users_path(customer_tenant_id),
            json_body=_create_body(user),
            request_id=request_id,
            correlation_id=correlation_id,
            creating=True,
            redact=user.password,
        )
        body = _json_object(response)
        # The service echoes the initial password: drop it before anything else sees the body.
        echoed = body.pop("passwordProfile", None)
        echoed_password = echoed.get("password") if isinstance(echoed, dict) else None
        if not body.get("id"):
            raise AnswerLost(
                f"Partner Center answered {response.status_code} to the create call without a "
                "user id; the user may or may not exist",
                http_status=response.status_code,
            )
        return _found_user(
            body,
            password_fingerprint=(
                fingerprint(echoed_password) if isinstance(echoed_password, str) else None
            ),
        )

    def get_user(
        self, customer_tenant_id: str, user_id: str, *, correlation_id: str
    ) -> FoundUser | None:
        """One user by id, or None when Partner Center does not know it."""
        try:
            response = self._send(
                "GET",
                f"{self._users_path(customer_tenant_id)}/{quote(user_id, safe='')}",
                correlation_id=correlation_id,
            )
        except Refused as error:
            if error.failure.http_status == 404 and error.failure.code != TENANT_NOT_FOUND:
                return None
            raise
        body = _json_object(response)
        body.pop("passwordProfile", None)
        return _found_user(body)

    def find_user_by_upn(
        self,
        customer_tenant_id: str,
        user_principal_name: str,
        *,
        correlation_id: str,
        inactive: bool = False,
    ) -> FoundUser | None:
        """Look a user up by UPN, case-insensitively (Partner Center has no filter by UPN)."""
        wanted = user_principal_name.casefold()
        for item in self._list_users(
            customer_tenant_id, correlation_id=correlation_id, inactive=inactive
        ):
            if str(item.get("userPrincipalName", "")).casefold() == wanted:
                item.pop("passwordProfile", None)
                return _found_user(item)
        return None

    def _list_users(
        self, customer_tenant_id: str, *, correlation_id: str, inactive: bool
    ) -> Iterator[dict[str, Any]]:
        path = f"{self._users_path(customer_tenant_id)}?size={LIST_PAGE_SIZE}"
        if inactive:
            path += f"&filter={quote(_INACTIVE_FILTER)}"
        continuation: str | None = None
        deadline = self._monotonic() + self._lookup_budget
        for pages in range(MAX_LIST_PAGES):
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                raise ServiceUnavailableError(
                    f"the user list of customer {customer_tenant_id} could not be read within "
                    f"{self._lookup_budget:g}s ({pages} pages); the lookup by UPN stopped there",
                )
            extra_headers = {"MS-ContinuationToken": continuation} if continuation else {}
            page = self._read_page(
                path, correlation_id=correlation_id, extra_headers=extra_headers, deadline=deadline
            )
            items = page.get("items") or []
            yield from (item for item in items if isinstance(item, dict))
            links = page.get("links")
            next_link = links.get("next") if isinstance(links, dict) else None
            if not isinstance(next_link, dict) or not next_link.get("uri"):
                return
            path = self._next_page_path(str(next_link["uri"]), customer_tenant_id)
            continuation = next(
                (
                    str(header.get("value"))
                    for header in next_link.get("headers") or []
                    if isinstance(header, dict)
                    and str(header.get("key", "")).lower() == "ms-continuationtoken"
                ),
                None,
            )
        raise ServiceUnavailableError(
            f"the user list of customer {customer_tenant_id} has more than "
            f"{MAX_LIST_PAGES * LIST_PAGE_SIZE} users; the lookup by UPN stopped there",
        )

    def _read_page(
        self,
        path: str,
        *,
        correlation_id: str,
        extra_headers: dict[str, str],
        deadline: float,
    ) -> dict[str, Any]:
        """One page of a list. A page is an idempotent read: after a 5xx or a broken
        connection it is read again at once (briefly, within the lookup's budget) instead of
        failing the whole lookup, whose earlier pages would all be read again. Throttling is
        not retried here: the gate and the decision's retry policy wait for it."""
        for attempt in range(PAGE_READS):
            remaining = deadline - self._monotonic()
            try:
                response = self._send(
                    "GET",
                    path,
                    correlation_id=correlation_id,
                    extra_headers=extra_headers,
                    read_timeout=min(self._timeouts.read, max(remaining, 1.0)),
                )
                return _json_object(response)
            except ServiceUnavailableError as error:
                pause = PAGE_REREAD_PAUSE * 2**attempt
                if (
                    error.failure.category is Category.THROTTLED
                    or attempt + 1 >= PAGE_READS
                    or self._monotonic() + pause >= deadline
                ):
                    raise
                self._sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def restore_user(
        self, customer_tenant_id: str, user_id: str, *, correlation_id: str
    ) -> FoundUser:
        """PATCH the deleted user back to active; restoring an active user changes nothing."""
        response = self._send(
            "PATCH",
            self._user_path(customer_tenant_id, user_id),
            json_body={"state": "active", "attributes": {"objectType": "CustomerUser"}},
            correlation_id=correlation_id,
            upn_unique=True,
        )
        body = _json_object(response)
        body.pop("passwordProfile", None)
        return _found_user(body)

    def reset_password(
        self, customer_tenant_id: str, user_id: str, password: str, *, correlation_id: str
    ) -> None:
        """Set the user's password (changed at first sign-in), on whichever path answers."""
        body = {
            "passwordProfile": {"password": password, "forceChangePassword": True},
            "attributes": {"objectType": "CustomerUser"},
        }
        first = self._reset_path
        paths = [first] + [path for path in RESET_PATHS if path != first]
        for index, path in enumerate(paths):
            suffix = "/resetpassword" if path == "resetpassword" else ""
            try:
                response = self._send(
                    "PATCH",
                    self._user_path(customer_tenant_id, user_id) + suffix,
                    json_body=body,
                    correlation_id=correlation_id,
                    redact=password,
                )
            except Refused as refusal:
                # 404/405: this service takes resets on the other path (or the user is
                # unknown, which the other path says too).
                if refusal.failure.http_status in (404, 405) and index + 1 < len(paths):
                    continue
                raise
            # The answer may echo the new password: read nothing from it.
            response.close()
            self._reset_path = path
            return

    def subscribed_skus(
        self, customer_tenant_id: str, *, correlation_id: str
    ) -> list[SubscribedSku]:
        response = self._send(
            "GET",
            f"/{PARTNER_CENTER_API_VERSION}/customers/"
            f"{quote(customer_tenant_id, safe='')}/subscribedskus",
            correlation_id=correlation_id,
        )
        found: list[SubscribedSku] = []
        for item in _json_object(response).get("items") or []:
            sku = _subscribed_sku(item)
            if sku is not None:
                found.append(sku)
        return found

    def assign_licenses(
        self, customer_tenant_id: str, user_id: str, sku_ids: list[str], *, correlation_id: str
    ) -> None:
        self._send(
            "POST",
            self._user_path(customer_tenant_id, user_id) + "/licenseupdates",
            json_body={
                "licensesToAssign": [{"skuId": sku, "excludedPlans": None} for sku in sku_ids],
                "attributes": {"objectType": "LicenseUpdate"},
            },
            correlation_id=correlation_id,
        ).close()

    def _user_path(self, customer_tenant_id: str, user_id: str) -> str:
        return f"{self._users_path(customer_tenant_id)}/{quote(user_id, safe='')}"

    def _next_page_path(self, uri: str, customer_tenant_id: str) -> str:
        """A next-page link as a path under the base URL; a link anywhere else is refused.

        The link's form is undocumented: ``/v1/customers/...``, ``v1/customers/...``,
        ``/customers/...`` (relative to the API version) and an absolute URL on the base URL's
        own scheme, host and port are all read; the bearer token never goes anywhere else.
        """
        base = urlsplit(self._base_url)
        if any(char == "\\" or ord(char) <= 0x20 or ord(char) == 0x7F for char in uri):
            raise self._refused_link(customer_tenant_id, "it holds spaces, controls or '\\'")
        try:
            link = urlsplit(uri)
        except ValueError:
            raise self._refused_link(customer_tenant_id, "it is not a URL") from None
        if link.scheme or link.netloc:
            scheme = (link.scheme or base.scheme).lower()
            try:
                port = link.port or _DEFAULT_PORTS.get(scheme)
            except ValueError:
                port = None
            same_origin = (
                scheme == base.scheme.lower()
                and link.hostname == base.hostname
                and port == (base.port or _DEFAULT_PORTS.get(base.scheme.lower()))
                and link.username is None
                and link.password is None
            )
            if not same_origin:
                raise self._refused_link(customer_tenant_id, "it points to another host")
            base_path = base.path.rstrip("/")
            if base_path and not link.path.startswith(base_path + "/"):
                raise self._refused_link(customer_tenant_id, "it leaves the base URL's path")
            path = link.path[len(base_path) :]
        else:
            path = "/" + link.path.lstrip("/")
        if not path.startswith(f"/{PARTNER_CENTER_API_VERSION}/"):
            path = f"/{PARTNER_CENTER_API_VERSION}{path}"
        return path + (f"?{link.query}" if link.query else "")

    @staticmethod
    def _refused_link(customer_tenant_id: str, why: str) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"Partner Center's next-page link for the users of customer {customer_tenant_id} "
            f"was not followed: {why} (the token is sent to the PARTNER_CENTER_BASE_URL only)",
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
        upn_unique: bool = False,
        redact: str = "",
        read_timeout: float | None = None,
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
                        timeout=(self._timeouts.connect, read_timeout or self._timeouts.read),
                    ),
                    throttled_for=_throttled_for,
                )
            except ThrottleHeld as held:
                raise ServiceUnavailableError(
                    f"Partner Center throttled this process; calls are held back for another "
                    f"{held.remaining:.0f}s",
                    throttled=True,
                    retry_after=held.remaining,
                ) from None
            except requests.ConnectTimeout:
                raise ServiceUnavailableError(
                    f"Partner Center did not accept a connection within {self._timeouts.connect}s",
                ) from None
            except requests.Timeout:
                raise (AnswerLost if creating else ServiceUnavailableError)(
                    f"Partner Center did not answer within {self._timeouts.read}s",
                ) from None
            except requests.RequestException as error:
                raise (AnswerLost if creating else ServiceUnavailableError)(
                    f"the connection to Partner Center failed ({type(error).__name__})",
                ) from None
            if response.status_code == 401 and not force_refresh:
                # A token can be revoked or expire early: one fresh token, one more try.
                force_refresh = True
                continue
            if response.status_code < 400:
                return response
            raise _classify(response, creating=creating, upn_unique=upn_unique, redact=redact)
        raise AssertionError("unreachable")  # pragma: no cover


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        lost = AnswerLost if response.request.method == "POST" else ServiceUnavailableError
        raise lost(
            f"Partner Center answered {response.status_code} with a body that is not a JSON object",
            http_status=response.status_code,
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
    return retry_after_seconds(response.headers.get("Retry-After"))


def _subscribed_sku(item: object) -> SubscribedSku | None:
    if not isinstance(item, dict):
        return None
    raw_product = item.get("productSku")
    product: dict[str, Any] = raw_product if isinstance(raw_product, dict) else {}
    sku_id = product.get("id")
    group = item.get("licenseGroupId") or product.get("licenseGroupId") or ""
    units = item.get("availableUnits")
    if isinstance(units, str) and units.strip().lstrip("-").isdigit():
        units = int(units)
    if not isinstance(sku_id, str) or not isinstance(units, int) or isinstance(units, bool):
        return None
    name = product.get("name")
    return SubscribedSku(
        sku_id=sku_id.lower(),
        license_group_id=str(group),
        available_units=units,
        name=name if isinstance(name, str) else None,
    )


def _classify(
    response: requests.Response, *, creating: bool, redact: str, upn_unique: bool = False
) -> ProvisioningError:
    status = response.status_code
    code, description = _error_details(response, redact)
    said = f"Partner Center answered {status}" + (f" (code {code})" if code is not None else "")
    said += f": {description}" if description else ""
    if status == 429:
        wait = _retry_after(response)
        return ServiceUnavailableError(
            f"{said}. Throttled"
            + (f"; Partner Center asked to wait {wait:g}s" if wait is not None else ""),
            throttled=True,
            http_status=status,
            code=code,
            retry_after=wait,
        )
    if status >= 500 or status == 408:
        # A create answered 5xx may still have been applied.
        return (AnswerLost if creating else ServiceUnavailableError)(
            f"{said}. A transient service error",
            http_status=status,
            code=code,
            retry_after=_retry_after(response),
        )
    lowered = description.lower()
    already_exists = "already exists" in lowered or "objectconflict" in lowered
    if (creating or upn_unique) and (
        status == 409 or (status == 400 and already_exists and _UPN_MARKER in lowered)
    ):
        return UpnTaken(
            f"{said}. The userPrincipalName is already taken in the customer tenant",
            http_status=status,
            code=code,
        )
    if status == 401:
        return CredentialsError(
            f"{said}. Partner Center refused the App+User token even after a fresh one; check "
            "that the refresh token in Key Vault belongs to an MFA-enabled partner user of the "
            "secure application model app, then replay from the poison queue",
            http_status=status,
            code=code,
        )
    if status == 403:
        return Refused(
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
        return Refused(
            Category.CONFLICT,
            f"{said}. Another user already holds a unique value of this user (not the UPN): "
            "correct the HR record and republish",
            http_status=status,
            code=code,
        )
    if status == 404 and code == TENANT_NOT_FOUND:
        return Refused(
            Category.VALIDATION,
            f"{said}. The customer tenant is not a customer of this partner: correct "
            "customerTenantId in the HR record and republish",
            http_status=status,
            code=code,
        )
    if status == 404:
        return Refused(
            Category.VALIDATION,
            f"{said}. Partner Center does not know this resource: check customerTenantId "
            "and the PARTNER_CENTER_BASE_URL setting",
            http_status=status,
            code=code,
        )
    return Refused(
        Category.VALIDATION,
        f"{said}. Partner Center refused the user as described: correct the HR record and "
        "republish",
        http_status=status,
        code=code,
    )
