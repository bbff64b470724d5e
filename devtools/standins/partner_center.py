"""Partner Center stand-in: ``/v1/customers/{id}/users`` (create, list with continuation, get).

Faithful to ``shared/reference/partner-center.md``: the error envelope, App+User tokens for
audience ``https://api.partnercenter.microsoft.com``, GDAP, the validation a create goes
through (in the order the real service is observed to apply it), the echoed password, and
``MS-RequestId`` idempotency. Where the documentation leaves a status or code open, the
choice is a config field so tests can try every plausible variant.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pycountry

from .faults import Fault
from .service import CONTROL_PREFIX, ControlError, StandInService, control_object
from .tokens import AccessToken, AccessTokenRegistry, TokenProblem
from .wire import Request, Response, Route

PARTNER_CENTER_RESOURCE = "https://api.partnercenter.microsoft.com"
USERS_ROUTE = "/v1/customers/{id}/users"
DUPLICATE_UPN_DESCRIPTION = (
    "Another object with the same value for property userPrincipalName already exists."
)
REQUIRED_TEXT_FIELDS = (
    "usageLocation",
    "userPrincipalName",
    "firstName",
    "lastName",
    "displayName",
)
MAX_PAGE_SIZE = 1000

# Envelope codes (reference/partner-center.md, "Errors").
INVALID_PROPERTY = 3000
INVALID_REQUEST_INPUT = 800002
INVALID_INPUT = 400056
ACCESS_DENIED_401 = 400
TOKEN_MISSING = 800001
MFA_CLAIM_MISSING = 900421
ACCESS_DENIED_403 = 2032
GDAP_ROLE_MISSING = 900150
TENANT_NOT_FOUND = 60003
UNEXPECTED_ERROR = 800003
# Undocumented: the code that comes with a 404 for a user or a path that does not exist.
RESOURCE_NOT_FOUND = 404

# Entra ID's rules for the part of a UPN before the @ (letters, digits and a few symbols,
# no leading, trailing or doubled period).
_UPN_LOCAL_PART = re.compile(r"[A-Za-z0-9'!#^~_\-]+(\.[A-Za-z0-9'!#^~_\-]+)*")
_DOMAIN_NAME = re.compile(r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
_PASSWORD_SYMBOLS = set("@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> ")


@dataclass(frozen=True)
class Domain:
    name: str
    federated: bool = False
    verified: bool = True


@dataclass
class PartnerCenterConfig:
    success_status: int = 201  # 201 (newer reference) or 200 (the seed example)
    duplicate_upn_status: int = 400  # 400 (as Microsoft Graph answers) or 409
    code_as_string: bool = False  # the envelope's "code" as "60003" instead of 60003
    idempotent_request_ids: bool = True  # False: a replayed MS-RequestId creates again
    require_mfa: bool = True  # App+User tokens without the MFA claim get 401 / 900421
    default_page_size: int = 100
    # How a next-page link is written (its form is undocumented): {path} is
    # /v1/customers/{id}/users, {tail} the same without /v1, {query} the query, {base} the
    # stand-in's URL. Tests point it elsewhere to check where a client sends its token.
    next_link_format: str = "{path}?{query}"


@dataclass
class _Customer:
    tenant_id: str
    domains: dict[str, Domain]
    gdap: bool
    users: list[dict[str, Any]] = field(default_factory=list)
    # First answer per MS-RequestId, replayed verbatim to a retry.
    answers_by_request_id: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    # A digest of each created user's password, so tests can check the user could sign in
    # with the password a caller claims it set (the password itself is never kept).
    password_digests: dict[str, str] = field(default_factory=dict)

    def active_user_with_upn(self, upn: str) -> dict[str, Any] | None:
        wanted = upn.lower()
        for user in self.users:
            if user["state"] == "active" and user["userPrincipalName"].lower() == wanted:
                return user
        return None


@dataclass(frozen=True)
class _Continuation:
    tenant_id: str
    state: str
    offset: int


class _Refusal(Exception):
    """A validation failure, carried to the one place that turns it into an envelope."""

    def __init__(self, status: int, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


class PartnerCenterStandIn(StandInService[PartnerCenterConfig]):
    name = "partner_center"
    counter_totals = ("users_created", "replays_absorbed")
    secret_body_keys = frozenset({"password"})

    def __init__(self, tokens: AccessTokenRegistry) -> None:
        self._tokens = tokens
        self._customers: dict[str, _Customer] = {}
        self._continuations: dict[str, _Continuation] = {}
        super().__init__(PartnerCenterConfig())

    # Python API ----------------------------------------------------------------------------

    def add_customer(self, tenant_id: str, domains: Iterable[Domain], *, gdap: bool = True) -> None:
        """Seed a customer (again: replaces its domains and GDAP flag, keeps its users)."""
        by_name = {domain.name.lower(): domain for domain in domains}
        with self._lock:
            existing = self._customers.get(tenant_id.lower())
            if existing is None:
                self._customers[tenant_id.lower()] = _Customer(tenant_id, by_name, gdap)
            else:
                existing.domains = by_name
                existing.gdap = gdap

    def users(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every user of the customer, oldest first, without passwords."""
        with self._lock:
            return copy.deepcopy(self._customer(tenant_id).users)

    def user_has_password(self, tenant_id: str, user_id: str, password: str) -> bool:
        """Whether the user was created with this password (as a sign-in would tell)."""
        with self._lock:
            digest = self._customer(tenant_id).password_digests.get(user_id)
        return digest is not None and hmac.compare_digest(digest, _digest(password))

    def add_user(self, tenant_id: str, user: dict[str, Any]) -> dict[str, Any]:
        """Seed an existing user (e.g. someone who already has a UPN). Only
        ``userPrincipalName`` is required; ``state: "inactive"`` seeds a deleted user."""
        stored = _user_record(
            {
                "id": str(uuid.uuid4()),
                "usageLocation": "US",
                "firstName": "",
                "lastName": "",
                "displayName": user["userPrincipalName"].split("@")[0],
                "immutableId": None,
                **user,
            }
        )
        with self._lock:
            customer = self._customer(tenant_id)
            if stored["state"] == "active" and customer.active_user_with_upn(
                stored["userPrincipalName"]
            ):
                raise ValueError(f"{stored['userPrincipalName']} already exists in {tenant_id}")
            customer.users.append(stored)
        return copy.deepcopy(stored)

    def _customer(self, tenant_id: str) -> _Customer:
        customer = self._customers.get(tenant_id.lower())
        if customer is None:
            raise KeyError(f"no customer {tenant_id} was seeded")
        return customer

    def clear_state(self) -> None:
        self._customers.clear()
        self._continuations.clear()

    # The API ---------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("POST", USERS_ROUTE, self._create_user),
            Route("GET", USERS_ROUTE, self._list_users),
            Route("GET", USERS_ROUTE + "/{user_id}", self._get_user),
        ]

    def _create_user(self, request: Request, params: dict[str, str]) -> Response:
        try:
            customer = self._authorise(request, params["id"])
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        request_id = request.headers.get("MS-RequestId")
        with self._lock:
            if request_id and self.config.idempotent_request_ids:
                first_answer = customer.answers_by_request_id.get(request_id.lower())
                if first_answer is not None:
                    self.count("replays_absorbed")
                    status, body = first_answer
                    return Response(status, body, self._answer_headers(request, json_body=True))
            try:
                created = self._validated_new_user(customer, request)
            except _Refusal as refusal:
                response = self._refusal(request, refusal)
            else:
                customer.users.append(_user_record(created))
                customer.password_digests[created["id"]] = _digest(
                    created["passwordProfile"]["password"]
                )
                self.count("users_created")
                response = Response.json(
                    self.config.success_status, created, self._answer_headers(request)
                )
            if request_id:
                customer.answers_by_request_id[request_id.lower()] = (
                    response.status,
                    response.body,
                )
            return response

    def _list_users(self, request: Request, params: dict[str, str]) -> Response:
        try:
            customer = self._authorise(request, params["id"])
            page_size = self._page_size(request)
            state, offset = self._list_position(request, customer)
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        with self._lock:
            matching = [user for user in customer.users if user["state"] == state]
            page = copy.deepcopy(matching[offset : offset + page_size])
            path = f"/v1/customers/{params['id']}/users"
            links: dict[str, Any] = {
                "self": {"uri": f"{path}?size={page_size}", "method": "GET", "headers": []}
            }
            if offset + page_size < len(matching):
                token = secrets.token_urlsafe(24)
                self._continuations[token] = _Continuation(
                    customer.tenant_id, state, offset + page_size
                )
                links["next"] = {
                    "uri": self.config.next_link_format.format(
                        base=self.base_url,
                        path=path,
                        tail=path.removeprefix("/v1"),
                        query=f"size={page_size}&seekOperation=next",
                    ),
                    "method": "GET",
                    "headers": [{"key": "MS-ContinuationToken", "value": token}],
                }
        collection = {
            # Partner Center counts the items of this page here, not the whole collection.
            "totalCount": len(page),
            "items": page,
            "links": links,
            "attributes": {"objectType": "Collection"},
        }
        return Response.json(200, collection, self._answer_headers(request))

    def _get_user(self, request: Request, params: dict[str, str]) -> Response:
        try:
            customer = self._authorise(request, params["id"])
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        with self._lock:
            for user in customer.users:
                if user["id"].lower() == params["user_id"].lower():
                    return Response.json(200, copy.deepcopy(user), self._answer_headers(request))
        return self._refusal(
            request,
            _Refusal(404, RESOURCE_NOT_FOUND, f"User {params['user_id']} was not found."),
        )

    # Checks, in the order the service applies them -------------------------------------------

    def _authorise(self, request: Request, tenant_id: str) -> _Customer:
        grant = self._tokens.check(request.bearer_token(), PARTNER_CENTER_RESOURCE)
        if isinstance(grant, TokenProblem):
            raise _token_refusal(grant)
        self._check_app_plus_user(grant)
        for header in ("MS-RequestId", "MS-CorrelationId"):
            value = request.headers.get(header)
            if value is not None and not _is_guid(value):
                raise _Refusal(400, INVALID_REQUEST_INPUT, f"The {header} header must be a GUID.")
        with self._lock:
            customer = self._customers.get(tenant_id.lower())
        if customer is None:
            raise _Refusal(404, TENANT_NOT_FOUND, "Tenant not found")
        if not customer.gdap:
            raise _Refusal(
                403,
                GDAP_ROLE_MISSING,
                "The supplied role does not have the rights to perform the requested operation.",
            )
        return customer

    def _check_app_plus_user(self, grant: AccessToken) -> None:
        if grant.is_app_only:
            raise _Refusal(
                403, ACCESS_DENIED_403, "Access denied: this operation needs App+User credentials."
            )
        if self.config.require_mfa and not grant.mfa:
            raise _Refusal(
                401, MFA_CLAIM_MISSING, "Access denied: the App+User token has no MFA claim."
            )

    def _validated_new_user(self, customer: _Customer, request: Request) -> dict[str, Any]:
        try:
            posted = request.json()
        except ValueError:
            raise _Refusal(
                400, INVALID_REQUEST_INPUT, "The request body is not valid JSON."
            ) from None
        if not isinstance(posted, dict):
            raise _Refusal(400, INVALID_REQUEST_INPUT, "The request body must be a JSON object.")
        for name in REQUIRED_TEXT_FIELDS:
            if not isinstance(posted.get(name), str) or not posted[name].strip():
                raise _Refusal(400, INVALID_INPUT, f"Invalid input: {name} is required.")
        profile = posted.get("passwordProfile")
        if not isinstance(profile, dict) or not isinstance(profile.get("password"), str):
            raise _Refusal(
                400, INVALID_INPUT, "Invalid input: passwordProfile.password is required."
            )
        attributes = posted.get("attributes")
        if not isinstance(attributes, dict) or attributes.get("objectType") != "CustomerUser":
            raise _Refusal(
                400, INVALID_INPUT, 'Invalid input: attributes.objectType must be "CustomerUser".'
            )
        _check_lengths(posted)
        upn: str = posted["userPrincipalName"]
        _check_upn_syntax(upn)
        _check_domain(customer, upn.rpartition("@")[2])
        _check_usage_location(posted["usageLocation"])
        _check_password(profile["password"])
        if customer.active_user_with_upn(upn) is not None:
            raise _Refusal(
                self.config.duplicate_upn_status, INVALID_PROPERTY, DUPLICATE_UPN_DESCRIPTION
            )
        return {
            "id": str(uuid.uuid4()),
            **{name: posted[name] for name in REQUIRED_TEXT_FIELDS},
            **({"immutableId": posted["immutableId"]} if "immutableId" in posted else {}),
            # Echoed like the real API does: the reason clients must keep responses out of logs.
            "passwordProfile": {
                "forceChangePassword": profile.get("forceChangePassword", True),
                "password": profile["password"],
            },
            "lastDirectorySyncTime": None,
            "userDomainType": "managed",
            "state": "active",
            "softDeletionTime": None,
            "attributes": {"objectType": "CustomerUser"},
        }

    def _page_size(self, request: Request) -> int:
        text = request.query_value("size")
        if text is None:
            return self.config.default_page_size
        if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
            raise _Refusal(
                400,
                INVALID_REQUEST_INPUT,
                f"size must be a whole number from 1 to {MAX_PAGE_SIZE}.",
            )
        return int(text)

    def _list_position(self, request: Request, customer: _Customer) -> tuple[str, int]:
        """(user state listed, offset) from the filter or the continuation token."""
        token = request.headers.get("MS-ContinuationToken")
        if token or request.query_value("seekOperation") == "next":
            with self._lock:
                continuation = self._continuations.get(token or "")
            if continuation is None or continuation.tenant_id != customer.tenant_id:
                raise _Refusal(400, INVALID_REQUEST_INPUT, "The continuation token is not valid.")
            return continuation.state, continuation.offset
        return _state_filter(request.query_value("filter")), 0

    # Answers -------------------------------------------------------------------------------

    def _envelope(
        self, status: int, code: int, description: str, headers: dict[str, str] | None = None
    ) -> Response:
        body: dict[str, Any] = {
            "code": str(code) if self.config.code_as_string else code,
            "description": description,
            "data": [],
            "source": "PartnerFD",
        }
        return Response.json(status, body, headers)

    def _refusal(self, request: Request, refusal: _Refusal) -> Response:
        headers = self._answer_headers(request)
        if refusal.status == 401:
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return self._envelope(refusal.status, refusal.code, refusal.description, headers)

    @staticmethod
    def _answer_headers(request: Request, *, json_body: bool = False) -> dict[str, str]:
        headers = {
            "MS-CorrelationId": request.headers.get("MS-CorrelationId") or str(uuid.uuid4()),
            "MS-RequestId": request.headers.get("MS-RequestId") or str(uuid.uuid4()),
        }
        if json_body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        return headers

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status_code or 500
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        if status == 429:
            # The throttling gateway answers in its own shape, not the Partner Center envelope.
            wait = fault.retry_after if fault.retry_after is not None else 1
            message = f"Rate limit is exceeded. Try again in {wait} seconds."
            return Response.json(429, {"statusCode": 429, "message": message}, headers)
        if status == 503:
            message = "The service is temporarily unavailable. Try again later."
            return Response.json(503, {"statusCode": 503, "message": message}, headers)
        if status >= 500:
            return self._envelope(status, UNEXPECTED_ERROR, "Unexpected service error", headers)
        return self._envelope(status, INVALID_REQUEST_INPUT, "Injected fault", headers)

    def not_found(self, request: Request) -> Response:
        return self._envelope(
            404, RESOURCE_NOT_FOUND, f"No resource at {request.method} {request.path}."
        )

    # Control endpoint ----------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        return [
            Route("GET", f"{CONTROL_PREFIX}/customers", self._control_customers),
            Route("POST", f"{CONTROL_PREFIX}/customers", self._control_add_customer),
            Route("GET", f"{CONTROL_PREFIX}/customers/{{id}}/users", self._control_users),
            Route("POST", f"{CONTROL_PREFIX}/customers/{{id}}/users", self._control_add_user),
        ]

    def _control_customers(self, _request: Request, _params: dict[str, str]) -> Response:
        with self._lock:
            customers = [
                {
                    "tenantId": customer.tenant_id,
                    "gdap": customer.gdap,
                    "domains": [vars(domain) for domain in customer.domains.values()],
                    "users": len(customer.users),
                }
                for customer in self._customers.values()
            ]
        return Response.json(200, customers)

    def _control_add_customer(self, request: Request, _params: dict[str, str]) -> Response:
        payload = control_object(request)
        domains = [Domain(**domain) for domain in payload.get("domains", [])]
        if not domains:
            raise ControlError("a customer needs at least one domain")
        self.add_customer(payload["tenantId"], domains, gdap=bool(payload.get("gdap", True)))
        return self._control_customers(request, _params)

    def _control_users(self, _request: Request, params: dict[str, str]) -> Response:
        return Response.json(200, self.users(params["id"]))

    def _control_add_user(self, request: Request, params: dict[str, str]) -> Response:
        return Response.json(200, self.add_user(params["id"], control_object(request)))


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def _user_record(user: dict[str, Any]) -> dict[str, Any]:
    """The user as stored and read back: every field, but never the password."""
    record: dict[str, Any] = {
        "lastDirectorySyncTime": None,
        "userDomainType": "managed",
        "state": "active",
        "softDeletionTime": None,
        "attributes": {"objectType": "CustomerUser"},
        **copy.deepcopy(user),
    }
    profile = record.pop("passwordProfile", None)
    if isinstance(profile, dict):
        record["passwordProfile"] = {
            "forceChangePassword": profile.get("forceChangePassword", True),
        }
    return record


def _token_refusal(problem: TokenProblem) -> _Refusal:
    if problem is TokenProblem.MISSING:
        return _Refusal(401, TOKEN_MISSING, "Partner token missing.")
    reasons = {
        TokenProblem.UNKNOWN: "the token is not valid",
        TokenProblem.EXPIRED: "the token has expired",
        TokenProblem.WRONG_AUDIENCE: f"the token's audience is not {PARTNER_CENTER_RESOURCE}",
    }
    return _Refusal(401, ACCESS_DENIED_401, f"Access denied: {reasons[problem]}.")


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _check_lengths(posted: dict[str, Any]) -> None:
    limits = {"displayName": 256, "firstName": 64, "lastName": 64, "userPrincipalName": 113}
    for name, limit in limits.items():
        if len(posted[name]) > limit:
            raise _Refusal(
                400, INVALID_PROPERTY, f"Invalid property {name}: longer than {limit} characters."
            )
    immutable_id = posted.get("immutableId")
    if immutable_id is not None and not isinstance(immutable_id, str):
        raise _Refusal(400, INVALID_PROPERTY, "Invalid property immutableId: must be a string.")


def _check_upn_syntax(upn: str) -> None:
    local, at, domain = upn.rpartition("@")
    if (
        not at
        or len(local) > 64
        or not _UPN_LOCAL_PART.fullmatch(local)
        or not _DOMAIN_NAME.fullmatch(domain)
    ):
        raise _Refusal(
            400,
            INVALID_PROPERTY,
            f"Invalid property userPrincipalName: {upn!r} is not a valid UPN.",
        )


def _check_domain(customer: _Customer, domain_name: str) -> None:
    domain = customer.domains.get(domain_name.lower())
    if domain is None or not domain.verified:
        raise _Refusal(
            400,
            INVALID_PROPERTY,
            f"Invalid property userPrincipalName: {domain_name} is not a verified domain "
            "of the customer.",
        )
    if domain.federated:
        raise _Refusal(
            400,
            INVALID_PROPERTY,
            f"Invalid property userPrincipalName: {domain_name} is a federated domain; "
            "users of federated domains cannot be created here.",
        )


def _check_usage_location(code: str) -> None:
    if len(code) != 2 or pycountry.countries.get(alpha_2=code.upper()) is None:
        raise _Refusal(
            400,
            INVALID_PROPERTY,
            f"Invalid property usageLocation: {code!r} is not an ISO 3166-1 alpha-2 country code.",
        )


def _check_password(password: str) -> None:
    classes = (
        any(character.islower() for character in password),
        any(character.isupper() for character in password),
        any(character.isdigit() for character in password),
        any(character in _PASSWORD_SYMBOLS for character in password),
    )
    allowed = all(
        character.isascii() and (character.isalnum() or character in _PASSWORD_SYMBOLS)
        for character in password
    )
    if not 8 <= len(password) <= 256 or sum(classes) < 3 or not allowed:
        raise _Refusal(
            400,
            INVALID_PROPERTY,
            "Invalid property passwordProfile.password: the password does not meet the "
            "complexity requirements (8 to 256 characters, three of: lower case, upper case, "
            "digits, symbols).",
        )


def _state_filter(text: str | None) -> str:
    """The user state ``filter={"Field":"UserState","Value":...}`` asks for (default active)."""
    if text is None:
        return "active"
    try:
        wanted = json.loads(text)
    except ValueError:
        wanted = None
    if (
        isinstance(wanted, dict)
        and wanted.get("Field") == "UserState"
        and str(wanted.get("Operator", "")).lower() == "equals"
        and str(wanted.get("Value", "")).lower() in ("active", "inactive")
    ):
        return str(wanted["Value"]).lower()
    raise _Refusal(400, INVALID_REQUEST_INPUT, "The filter is not valid.")
