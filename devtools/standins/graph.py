"""Microsoft Graph stand-in: ``GET /v1.0/users/{id | userPrincipalName}`` in a customer's tenant.

Graph's URL names no tenant: the access token does (a token issued at the customer's tenant
reads that customer's directory). The directory is the Partner Center stand-in's user store, so
a user created through Partner Center is visible here, with ``createdDateTime``; deleted users
are not (they live under ``/directory/deletedItems``, not emulated).

Documented behaviours emulated (reference/partner-center.md, "Looking a UPN up in O(1)"):
404 ``Request_ResourceNotFound`` for a UPN nobody holds; without consent 403
``Authorization_IdentityNotFound``, or 403/401 ``Authorization_RequestDenied`` (a per-customer
switch, ``set_consent``); throttling 429 with ``Retry-After`` (faults, or ``rate_limit``); and
the replication delay of users created moments ago (``replication_delay_seconds``: such a user
answers 404 for that long).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import unquote

from .faults import Fault
from .service import CONTROL_PREFIX, ControlError, StandInService, control_object
from .tokens import AccessTokenRegistry, TokenProblem
from .wire import Request, Response, Route

GRAPH_RESOURCE = "https://graph.microsoft.com"
USER_ROUTE = "/v1.0/users/{key}"
# Graph's documented form for a UPN that starts with '$': /users('$adele@contoso.com').
USER_KEY_ROUTE = "/v1.0/users('{key}')"
# What a user read without $select carries (Graph's default property set).
DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
# Per customer: whether the partner's app may read the directory, and how a refusal reads.
CONSENT_VARIANTS = (
    "consented",
    "identity_not_found",  # 403 Authorization_IdentityNotFound (app not consented in the tenant)
    "request_denied",  # 403 Authorization_RequestDenied (no directory role through GDAP)
    "request_denied_401",  # the same code with 401, as some answers carry it
    "token_refused",  # the customer's token endpoint refuses the exchange (AADSTS65001)
)


class Directory(Protocol):
    """The user store Graph reads (the Partner Center stand-in)."""

    def has_customer(self, tenant_id: str) -> bool: ...

    def directory_user(
        self, tenant_id: str, key: str
    ) -> tuple[dict[str, Any], datetime] | None: ...


@dataclass
class GraphConfig:
    # Consent of a customer no set_consent() named: one of CONSENT_VARIANTS.
    default_consent: str = "consented"
    # A user created less than this many seconds ago answers 404 (Graph's replication delay).
    replication_delay_seconds: float = 0.0


class GraphStandIn(StandInService[GraphConfig]):
    name = "graph"
    counter_totals = ("users_found", "users_not_found", "consent_refusals")

    def __init__(self, tokens: AccessTokenRegistry, directory: Directory) -> None:
        self._tokens = tokens
        self._directory = directory
        self._consent: dict[str, str] = {}
        super().__init__(GraphConfig())

    # Python API ----------------------------------------------------------------------------

    def set_consent(self, tenant_id: str, variant: str) -> None:
        """How this customer answers: one of ``CONSENT_VARIANTS`` (reset() forgets it)."""
        if variant not in CONSENT_VARIANTS:
            raise ControlError(f"consent is one of {list(CONSENT_VARIANTS)}")
        with self._lock:
            self._consent[tenant_id.lower()] = variant

    def consent_of(self, tenant_id: str) -> str | None:
        """The customer's consent variant; None when the tenant is no customer."""
        if not self._directory.has_customer(tenant_id):
            return None
        with self._lock:
            return self._consent.get(tenant_id.lower(), self.config.default_consent)

    def update_config(self, changes: dict[str, Any]) -> None:
        consent = changes.get("default_consent")
        if consent is not None and consent not in CONSENT_VARIANTS:
            raise ControlError(f"config field 'default_consent' is one of {list(CONSENT_VARIANTS)}")
        delay = changes.get("replication_delay_seconds")
        if isinstance(delay, (int, float)) and not isinstance(delay, bool) and delay < 0:
            raise ControlError("config field 'replication_delay_seconds' must not be negative")
        super().update_config(changes)

    def clear_state(self) -> None:
        self._consent.clear()

    # The API ---------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", USER_KEY_ROUTE, self._get_user_by_literal),
            Route("GET", USER_ROUTE, self._get_user),
        ]

    def _get_user_by_literal(self, request: Request, params: dict[str, str]) -> Response:
        # An OData string literal doubles its single quotes.
        return self._read_user(request, params["key"].replace("''", "'"))

    def _get_user(self, request: Request, params: dict[str, str]) -> Response:
        key = params["key"]
        if key.startswith("$"):
            # Graph reads /users/$... as a system query segment, not as a user.
            return self._error(
                request,
                400,
                "BadRequest",
                f"Resource not found for the segment '{key}'. A userPrincipalName starting "
                "with '$' is written /users('$...').",
            )
        return self._read_user(request, key)

    def _read_user(self, request: Request, key: str) -> Response:
        grant = self._tokens.check(request.bearer_token(), GRAPH_RESOURCE)
        if isinstance(grant, TokenProblem):
            message = {
                TokenProblem.MISSING: "Access token is empty.",
                TokenProblem.UNKNOWN: "Invalid JWT token.",
                TokenProblem.EXPIRED: "Lifetime validation failed, the token is expired.",
                TokenProblem.WRONG_AUDIENCE: "Invalid audience.",
            }[grant]
            return self._error(request, 401, "InvalidAuthenticationToken", message)
        tenant = grant.tenant_id
        consent = self.consent_of(tenant)
        if consent in ("identity_not_found", "request_denied", "request_denied_401"):
            self.count("consent_refusals")
            if consent == "identity_not_found":
                return self._error(
                    request,
                    403,
                    "Authorization_IdentityNotFound",
                    "The identity of the calling application could not be established.",
                )
            return self._error(
                request,
                401 if consent == "request_denied_401" else 403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        found = self._directory.directory_user(tenant, key) if consent else None
        if found is not None:
            user, created_at = found
            delay = timedelta(seconds=self.config.replication_delay_seconds)
            if datetime.now(UTC) - created_at < delay:
                found = None  # not replicated to the replica that answered yet
        if found is None:
            self.count("users_not_found")
            return self._error(
                request,
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        self.count("users_found")
        body = _graph_user(user, created_at)
        selected = _selected(request)
        body = {name: body.get(name) for name in selected}
        return Response.json(
            200,
            {"@odata.context": f"{self.base_url}/v1.0/$metadata#users/$entity", **body},
            _answer_headers(request),
        )

    def _error(self, request: Request, status: int, code: str, message: str) -> Response:
        headers = _answer_headers(request)
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
        return Response.json(status, _error_body(request, code, message), headers)

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status_code or 500
        codes = {
            429: ("TooManyRequests", "Too many requests. Please try again later."),
            503: ("serviceNotAvailable", "The service is temporarily unavailable."),
            504: ("gatewayTimeout", "The gateway did not receive a timely response."),
        }
        code, message = codes.get(status, ("generalException", "An unexpected error occurred."))
        headers = {"Content-Type": "application/json"}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        return Response.json(status, {"error": {"code": code, "message": message}}, headers)

    def not_found(self, request: Request) -> Response:
        return self._error(
            request,
            400,
            "BadRequest",
            f"Resource not found for the segment '{request.path.rsplit('/', 1)[-1]}'.",
        )

    # Control endpoint ----------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        return [
            Route("GET", f"{CONTROL_PREFIX}/consent", self._control_consents),
            Route("POST", f"{CONTROL_PREFIX}/consent", self._control_set_consent),
        ]

    def _control_consents(self, _request: Request, _params: dict[str, str]) -> Response:
        with self._lock:
            return Response.json(
                200, {"default": self.config.default_consent, "customers": dict(self._consent)}
            )

    def _control_set_consent(self, request: Request, params: dict[str, str]) -> Response:
        payload = control_object(request)
        self.set_consent(str(payload["tenantId"]), str(payload["consent"]))
        return self._control_consents(request, params)


def _graph_user(user: dict[str, Any], created_at: datetime) -> dict[str, Any]:
    return {
        "id": user["id"],
        "userPrincipalName": user["userPrincipalName"],
        "displayName": user.get("displayName"),
        "givenName": user.get("firstName") or None,
        "surname": user.get("lastName") or None,
        "onPremisesImmutableId": user.get("immutableId"),
        "createdDateTime": created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "accountEnabled": True,
        "usageLocation": user.get("usageLocation"),
        "businessPhones": [],
        "jobTitle": None,
        "mail": None,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
    }


def _selected(request: Request) -> list[str]:
    text = request.query_value("$select") or request.query_value("%24select")
    if not text:
        return list(DEFAULT_PROPERTIES)
    names = [unquote(name).strip() for name in text.split(",") if name.strip()]
    return names or list(DEFAULT_PROPERTIES)


def _answer_headers(request: Request) -> dict[str, str]:
    return {
        "request-id": str(uuid.uuid4()),
        "client-request-id": request.headers.get("client-request-id") or str(uuid.uuid4()),
    }


def _error_body(request: Request, code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": request.headers.get("client-request-id") or "",
            },
        }
    }
