"""Partner Center stand-in: ``/v1/customers/{id}/users`` (create, list with continuation, get,
delete, restore, password reset), ``/subscribedskus`` and a user's ``licenseupdates`` and
``licenses``.

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
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pycountry

from .faults import Fault
from .service import CONTROL_PREFIX, ControlError, StandInService, control_object
from .tokens import AccessToken, AccessTokenRegistry, TokenProblem
from .wire import Request, Response, Route

PARTNER_CENTER_RESOURCE = "https://api.partnercenter.microsoft.com"
USERS_ROUTE = "/v1/customers/{id}/users"
USER_ROUTE = USERS_ROUTE + "/{user_id}"
SUBSCRIBED_SKUS_ROUTE = "/v1/customers/{id}/subscribedskus"
DUPLICATE_UPN_DESCRIPTION = (
    "Another object with the same value for property userPrincipalName already exists."
)
# A duplicate answered as a plain validation error (``duplicate_upn_plain``): nothing in it
# says which property clashed.
PLAIN_INVALID_DESCRIPTION = "The request is invalid."
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
NO_LICENSES_LEFT = 60012
# Undocumented: the code that comes with a 404 for a user or a path that does not exist.
RESOURCE_NOT_FOUND = 404
# Undocumented: the code for a method a path does not take (a 405).
METHOD_NOT_ALLOWED = 405

# Which path takes a password reset: Microsoft's page shows both (reference, "Beyond the first
# create"); "both" accepts either.
PASSWORD_RESET_PATHS = ("user", "resetpassword", "both")
_CONFIG_CHOICES: dict[str, tuple[object, ...]] = {
    "success_status": (200, 201),
    "duplicate_upn_status": (400, 409),
    "password_reset_path": PASSWORD_RESET_PATHS,
}

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
    # A deleted user keeps its UPN until it is purged: a create with that UPN is a duplicate.
    deleted_users_hold_upn: bool = True
    restore_window_days: int = 30  # deleted users older than this are purged (then 404)
    password_reset_path: str = "both"  # "user", "resetpassword" or "both"
    reset_echoes_password: bool = True  # the reset answer carries passwordProfile.password
    # How a next-page link is written (its form is undocumented): {path} is
    # /v1/customers/{id}/users, {tail} the same without /v1, {query} the query, {base} the
    # stand-in's URL. Tests point it elsewhere to check where a client sends its token.
    next_link_format: str = "{path}?{query}"
    # A duplicate UPN on create answered as a plain 400 validation error (issue 15).
    duplicate_upn_plain: bool = False
    # The user list leaves out users created less than this many seconds ago (an eventually
    # consistent listing; issue 15's "lagging user list"). Reading one user by id is current.
    user_list_lag_seconds: float = 0.0


@dataclass
class _SubscribedSku:
    sku_id: str
    name: str
    license_group_id: str
    units: int
    consumed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "availableUnits": self.units - self.consumed,
            "activeUnits": self.units,
            "consumedUnits": self.consumed,
            "suspendedUnits": 0,
            "totalUnits": self.units,
            "warningUnits": 0,
            "productSku": self.product_sku(),
            "servicePlans": [],
            "capabilityStatus": "Enabled",
            "licenseGroupId": self.license_group_id,
            "attributes": {"objectType": "SubscribedSku"},
        }

    def product_sku(self) -> dict[str, Any]:
        return {
            "id": self.sku_id,
            "name": self.name,
            "skuPartNumber": self.name.upper().replace(" ", "_"),
            "targetType": "User",
            "licenseGroupId": self.license_group_id,
        }


@dataclass
class _Customer:
    tenant_id: str
    domains: dict[str, Domain]
    gdap: bool
    users: list[dict[str, Any]] = field(default_factory=list)
    skus: dict[str, _SubscribedSku] = field(default_factory=dict)
    # SKU ids assigned to each user id, in the order they were assigned.
    assigned_skus: dict[str, list[str]] = field(default_factory=dict)
    # First answer per MS-RequestId, replayed verbatim to a retry.
    answers_by_request_id: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    # A digest of each created user's password, so tests can check the user could sign in
    # with the password a caller claims it set (the password itself is never kept).
    password_digests: dict[str, str] = field(default_factory=dict)
    # When each created user shows in the user list (``user_list_lag_seconds``; monotonic).
    listed_from: dict[str, float] = field(default_factory=dict)
    # When the directory made each user (by user id). Partner Center's user resource has no
    # creation time, so it is kept beside the users and only Microsoft Graph shows it.
    created_at: dict[str, datetime] = field(default_factory=dict)

    # Indexes over ``users``, so a look-up by UPN or id costs the same in a customer of ten
    # users as in one of ten thousand, as it does in the real directory (a scan per call made
    # long soaks slow down as the customers grew). Users are added through ``add``.
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # Every user holding a UPN (lower case), oldest first: a deleted one may share it.
    by_upn: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    # Ids of users deleted at some point (a superset of the deleted ones): what purge reads.
    ever_deleted: set[str] = field(default_factory=set, repr=False)

    def add(self, user: dict[str, Any], created_at: datetime) -> None:
        self.users.append(user)
        self.by_id[user["id"].lower()] = user
        self.by_upn.setdefault(user["userPrincipalName"].lower(), []).append(user)
        self.created_at[user["id"]] = created_at
        if user["state"] != "active":
            self.ever_deleted.add(user["id"].lower())

    def user_with_upn(self, upn: str, *, deleted_too: bool) -> dict[str, Any] | None:
        """The oldest user holding ``upn`` (``deleted_too``: deleted ones count)."""
        for user in self.by_upn.get(upn.lower(), ()):
            if deleted_too or user["state"] == "active":
                return user
        return None

    def user(self, user_id: str) -> dict[str, Any] | None:
        return self.by_id.get(user_id.lower())

    def purge(self, now: datetime, window: timedelta) -> None:
        """Forget deleted users past the restore window, as the directory does."""
        gone: set[str] = set()
        for key in list(self.ever_deleted):
            user = self.by_id.get(key)
            if user is None or user["state"] == "active":
                self.ever_deleted.discard(key)  # purged, or restored since
                continue
            deleted_at = user.get("softDeletionTime")
            if isinstance(deleted_at, str) and now - _parse_time(deleted_at) > window:
                gone.add(key)
        if not gone:
            return
        for key in gone:
            user = self.by_id.pop(key)
            self.ever_deleted.discard(key)
            self.password_digests.pop(user["id"], None)
            self.created_at.pop(user["id"], None)
            holders = self.by_upn[user["userPrincipalName"].lower()]
            holders.remove(user)
            if not holders:
                del self.by_upn[user["userPrincipalName"].lower()]
        self.users = [user for user in self.users if user["id"].lower() not in gone]

    def release_licenses(self, user_id: str) -> None:
        for sku_id in self.assigned_skus.pop(user_id, []):
            self.skus[sku_id].consumed -= 1


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
    counter_totals = (
        "users_created",
        "replays_absorbed",
        "users_deleted",
        "users_restored",
        "passwords_reset",
        "license_updates",
        "licenses_assigned",
        "licenses_removed",
    )
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
        """Every user of the customer (deleted ones too), oldest first, without passwords."""
        with self._lock:
            return copy.deepcopy(self._live_customer(tenant_id).users)

    def user_has_password(self, tenant_id: str, user_id: str, password: str) -> bool:
        """Whether the user's password (from its create or latest reset) is this one, as a
        sign-in would tell."""
        with self._lock:
            digest = self._customer(tenant_id).password_digests.get(user_id)
        return digest is not None and hmac.compare_digest(digest, _digest(password))

    def add_user(self, tenant_id: str, user: dict[str, Any]) -> dict[str, Any]:
        """Seed an existing user (e.g. someone who already has a UPN). Only
        ``userPrincipalName`` is required; ``state: "inactive"`` seeds a deleted user (deleted
        now unless ``softDeletionTime`` says when)."""
        user = dict(user)
        created_text = user.pop("createdDateTime", None)
        created_at = _parse_time(created_text) if created_text else _now()
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
        if stored["state"] not in ("active", "inactive"):
            raise ValueError("state is active or inactive")
        if stored["state"] == "inactive":
            deleted_at = stored["softDeletionTime"]
            stored["softDeletionTime"] = _format_time(
                _parse_time(deleted_at) if deleted_at else _now()
            )
        with self._lock:
            customer = self._live_customer(tenant_id)
            if stored["state"] == "active" and customer.user_with_upn(
                stored["userPrincipalName"], deleted_too=False
            ):
                raise ValueError(f"{stored['userPrincipalName']} already exists in {tenant_id}")
            customer.add(stored, created_at)
        return copy.deepcopy(stored)

    def seed_users(
        self,
        tenant_id: str,
        count: int,
        *,
        domain: str,
        prefix: str = "seeded",
        created_at: datetime | None = None,
    ) -> None:
        """``count`` active users ``{prefix}{n}@{domain}`` at once (a large customer, for
        benchmarks): no per-user uniqueness scan, so 30,000 take a moment, not minutes."""
        when = created_at or _now()
        with self._lock:
            customer = self._live_customer(tenant_id)
            for number in range(count):
                upn = f"{prefix}{number}@{domain}"
                if upn.lower() in customer.by_upn:
                    raise ValueError(f"{upn} already exists in {tenant_id}")
                stored = _user_record(
                    {
                        "id": str(uuid.uuid4()),
                        "usageLocation": "US",
                        "userPrincipalName": upn,
                        "firstName": "Seeded",
                        "lastName": f"User{number}",
                        "displayName": f"Seeded User{number}",
                        "immutableId": None,
                    }
                )
                customer.add(stored, when)

    def has_customer(self, tenant_id: str) -> bool:
        with self._lock:
            return tenant_id.lower() in self._customers

    def directory_user(self, tenant_id: str, key: str) -> tuple[dict[str, Any], datetime] | None:
        """The active user whose UPN (case-insensitive) or object id is ``key``, with its
        creation time: the customer's directory as Microsoft Graph reads it (the Graph
        stand-in shares this store). None for an unknown customer or user."""
        wanted = key.lower()
        with self._lock:
            customer = self._customers.get(tenant_id.lower())
            if customer is None:
                return None
            customer.purge(_now(), self._restore_window)
            user = customer.user(wanted) or customer.user_with_upn(wanted, deleted_too=False)
            if user is None or user["state"] != "active":
                return None
            return copy.deepcopy(user), customer.created_at.get(user["id"], _now())

    def delete_user(
        self, tenant_id: str, user_id: str, *, deleted_at: datetime | None = None
    ) -> dict[str, Any]:
        """Soft-delete a user as the directory does: ``state`` inactive, ``softDeletionTime``
        ``deleted_at`` (default now; more than ``restore_window_days`` ago purges it at once),
        its licences released."""
        with self._lock:
            customer = self._live_customer(tenant_id)
            user = customer.user(user_id)
            if user is None:
                raise KeyError(f"no user {user_id} in {tenant_id}")
            _soft_delete(customer, user, deleted_at or _now())
            customer.purge(_now(), self._restore_window)
            return copy.deepcopy(user)

    def add_subscribed_sku(
        self,
        tenant_id: str,
        sku_id: str,
        license_group_id: str = "group1",
        units: int = 1,
        *,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Give the customer a product: ``units`` licences of ``sku_id`` in a licence group
        (``group1`` Entra ID, ``group2`` Minecraft). Again: replaces units, group and name."""
        if units < 0:
            raise ValueError("units must not be negative")
        with self._lock:
            customer = self._customer(tenant_id)
            key = sku_id.lower()
            existing = customer.skus.get(key)
            consumed = existing.consumed if existing else 0
            customer.skus[key] = _SubscribedSku(
                sku_id, name or f"Product {sku_id[:8]}", license_group_id, units, consumed
            )
            return customer.skus[key].to_json()

    def add_units(self, tenant_id: str, sku_id: str, units: int) -> dict[str, Any]:
        """Buy ``units`` more licences of a subscribed SKU (negative: cancel some)."""
        with self._lock:
            sku = self._customer(tenant_id).skus[sku_id.lower()]
            if sku.units + units < 0:
                raise ValueError("a SKU cannot have fewer than no units")
            sku.units += units
            return sku.to_json()

    def subscribed_skus(self, tenant_id: str) -> list[dict[str, Any]]:
        """The customer's products with their unit accounting, as the API lists them."""
        with self._lock:
            return [sku.to_json() for sku in self._customer(tenant_id).skus.values()]

    def assigned_skus(self, tenant_id: str, user_id: str) -> list[str]:
        """The SKU ids assigned to a user, in the order they were assigned."""
        with self._lock:
            customer = self._customer(tenant_id)
            return [customer.skus[key].sku_id for key in customer.assigned_skus.get(user_id, [])]

    def _customer(self, tenant_id: str) -> _Customer:
        customer = self._customers.get(tenant_id.lower())
        if customer is None:
            raise KeyError(f"no customer {tenant_id} was seeded")
        return customer

    def _live_customer(self, tenant_id: str) -> _Customer:
        """The customer, after purging the users whose restore window has passed."""
        customer = self._customer(tenant_id)
        customer.purge(_now(), self._restore_window)
        return customer

    @property
    def _restore_window(self) -> timedelta:
        return timedelta(days=self.config.restore_window_days)

    def update_config(self, changes: dict[str, Any]) -> None:
        for name, choices in _CONFIG_CHOICES.items():
            if name in changes and changes[name] not in choices:
                raise ControlError(f"config field {name!r} is one of {list(choices)}")
        super().update_config(changes)

    def clear_state(self) -> None:
        self._customers.clear()
        self._continuations.clear()

    # The API ---------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("POST", USERS_ROUTE, self._create_user),
            Route("GET", USERS_ROUTE, self._list_users),
            Route("GET", USER_ROUTE, self._get_user),
            Route("DELETE", USER_ROUTE, self._delete_user),
            Route("PATCH", USER_ROUTE, self._update_user),
            Route("PATCH", USER_ROUTE + "/resetpassword", self._reset_password),
            Route("GET", SUBSCRIBED_SKUS_ROUTE, self._list_subscribed_skus),
            Route("POST", USER_ROUTE + "/licenseupdates", self._update_licenses),
            Route("GET", USER_ROUTE + "/licenses", self._list_licenses),
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
                customer.add(_user_record(created), _now())
                customer.listed_from[created["id"]] = (
                    time.monotonic() + self.config.user_list_lag_seconds
                )
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
            now = time.monotonic()
            matching = [
                user
                for user in customer.users
                if user["state"] == state and customer.listed_from.get(user["id"], 0.0) <= now
            ]
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
        """One user, deleted ones too (with their ``state`` and ``softDeletionTime``)."""
        try:
            customer = self._authorise(request, params["id"])
            with self._lock:
                user = copy.deepcopy(_existing_user(customer, params["user_id"]))
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        return Response.json(200, user, self._answer_headers(request))

    def _delete_user(self, request: Request, params: dict[str, str]) -> Response:
        try:
            customer = self._authorise(request, params["id"])
            with self._lock:
                user = _existing_user(customer, params["user_id"], active=True)
                _soft_delete(customer, user, _now())
                self.count("users_deleted")
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        return Response.empty(204, self._answer_headers(request))

    def _update_user(self, request: Request, params: dict[str, str]) -> Response:
        """``{"state": "active"}`` restores a deleted user; ``passwordProfile`` resets the
        password (when ``password_reset_path`` allows it here); both at once do both."""
        try:
            customer = self._authorise(request, params["id"])
            patch = _json_object(request)
            restore, profile = "state" in patch, patch.get("passwordProfile")
            if not restore and profile is None:
                raise _Refusal(
                    400,
                    INVALID_INPUT,
                    "Invalid input: nothing to update (state or passwordProfile).",
                )
            if profile is not None and self.config.password_reset_path == "resetpassword":
                raise _Refusal(
                    405,
                    METHOD_NOT_ALLOWED,
                    "The requested resource does not support updating passwordProfile.",
                )
            _check_object_type(patch, "CustomerUser")
            if restore and patch["state"] != "active":
                raise _Refusal(
                    400, INVALID_INPUT, 'Invalid input: state can only be set to "active".'
                )
            password = None if profile is None else _new_password(profile)
            with self._lock:
                user = _existing_user(customer, params["user_id"])
                if restore:
                    self._restore(customer, user)
                if password is not None:
                    self._reset(customer, user, password, profile)
                answer = self._user_answer(user, password)
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        return Response.json(200, answer, self._answer_headers(request))

    def _reset_password(self, request: Request, params: dict[str, str]) -> Response:
        if self.config.password_reset_path == "user":
            return self.not_found(request)  # this service has no such path
        try:
            customer = self._authorise(request, params["id"])
            posted = _json_object(request)
            profile = posted.get("passwordProfile")
            _check_object_type(posted, "CustomerUser")
            password = _new_password(profile)
            with self._lock:
                user = _existing_user(customer, params["user_id"])
                self._reset(customer, user, password, profile)
                answer = self._user_answer(user, password)
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        return Response.json(200, answer, self._answer_headers(request))

    def _restore(self, customer: _Customer, user: dict[str, Any]) -> None:
        if user["state"] == "active":
            return  # restoring an active user changes nothing (a retried restore succeeds)
        holder = customer.user_with_upn(user["userPrincipalName"], deleted_too=False)
        if holder is not None:
            raise _Refusal(
                self.config.duplicate_upn_status, INVALID_PROPERTY, DUPLICATE_UPN_DESCRIPTION
            )
        user["state"] = "active"
        user["softDeletionTime"] = None
        self.count("users_restored")

    def _reset(
        self, customer: _Customer, user: dict[str, Any], password: str, profile: Any
    ) -> None:
        if user["state"] != "active":
            raise _Refusal(404, RESOURCE_NOT_FOUND, f"User {user['id']} was not found.")
        user["passwordProfile"] = {"forceChangePassword": profile.get("forceChangePassword", True)}
        customer.password_digests[user["id"]] = _digest(password)
        self.count("passwords_reset")

    def _user_answer(self, user: dict[str, Any], password: str | None) -> dict[str, Any]:
        answer = copy.deepcopy(user)
        if password is not None and self.config.reset_echoes_password:
            answer["passwordProfile"] = {**answer.get("passwordProfile", {}), "password": password}
        return answer

    def _list_subscribed_skus(self, request: Request, params: dict[str, str]) -> Response:
        try:
            customer = self._authorise(request, params["id"])
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        groups = _license_group_filter(request)
        with self._lock:
            items = [
                sku.to_json()
                for sku in customer.skus.values()
                if groups is None or sku.license_group_id in groups
            ]
        return Response.json(200, _collection(items), self._answer_headers(request))

    def _list_licenses(self, request: Request, params: dict[str, str]) -> Response:
        try:
            customer = self._authorise(request, params["id"])
            groups = _license_group_filter(request)
            with self._lock:
                user = _existing_user(customer, params["user_id"])
                skus = [customer.skus[key] for key in customer.assigned_skus.get(user["id"], [])]
                items = [
                    {
                        "servicePlans": [],
                        "productSku": sku.product_sku(),
                        "attributes": {"objectType": "License"},
                    }
                    for sku in skus
                    if groups is None or sku.license_group_id in groups
                ]
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        return Response.json(200, _collection(items), self._answer_headers(request))

    def _update_licenses(self, request: Request, params: dict[str, str]) -> Response:
        try:
            customer = self._authorise(request, params["id"])
            posted = _json_object(request)
            with self._lock:
                user = _existing_user(customer, params["user_id"], active=True)
                update = self._license_update(customer, user["id"], posted)
        except _Refusal as refusal:
            return self._refusal(request, refusal)
        return Response.json(201, update, self._answer_headers(request))

    def _license_update(
        self, customer: _Customer, user_id: str, posted: dict[str, Any]
    ) -> dict[str, Any]:
        """Check the whole request, then apply it: all of it or nothing."""
        _check_object_type(posted, "LicenseUpdate")
        to_assign = _licenses_to_assign(posted.get("licensesToAssign"))
        to_remove = _licenses_to_remove(posted.get("licensesToRemove"))
        if not to_assign and not to_remove:
            raise _Refusal(
                400, INVALID_INPUT, "Invalid input: licensesToAssign or licensesToRemove is empty."
            )
        wanted = [entry["skuId"].lower() for entry in to_assign] + [s.lower() for s in to_remove]
        for key in wanted:
            if key not in customer.skus:
                raise _Refusal(
                    400,
                    INVALID_INPUT,
                    f"Invalid input: the customer has no subscription for SKU {key}.",
                )
        if len({customer.skus[key].license_group_id for key in wanted}) > 1:
            raise _Refusal(
                400,
                INVALID_INPUT,
                "Invalid input: licences of different licence groups cannot be updated in one "
                "request.",
            )
        held = customer.assigned_skus.setdefault(user_id, [])
        removing = [key for key in dict.fromkeys(s.lower() for s in to_remove) if key in held]
        adding = [
            key
            for key in dict.fromkeys(entry["skuId"].lower() for entry in to_assign)
            if key not in held or key in removing
        ]
        for key in adding:
            sku = customer.skus[key]
            freed = 1 if key in removing else 0
            if sku.units - sku.consumed + freed < 1:
                raise _Refusal(
                    400,
                    NO_LICENSES_LEFT,
                    f"No licenses available for {sku.name} ({sku.sku_id}): all "
                    f"{sku.units} are assigned.",
                )
        for key in removing:
            held.remove(key)
            customer.skus[key].consumed -= 1
        for key in adding:
            held.append(key)
            customer.skus[key].consumed += 1
        self.count("license_updates")
        self.count("licenses_assigned", len(adding))
        self.count("licenses_removed", len(removing))
        return {
            "licensesToAssign": to_assign,
            "licensesToRemove": to_remove,
            "licenseWarnings": [],
            "attributes": {"objectType": "LicenseUpdate"},
        }

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
        with self._lock:
            customer.purge(_now(), self._restore_window)
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
        posted = _json_object(request)
        for name in REQUIRED_TEXT_FIELDS:
            if not isinstance(posted.get(name), str) or not posted[name].strip():
                raise _Refusal(400, INVALID_INPUT, f"Invalid input: {name} is required.")
        profile = posted.get("passwordProfile")
        if not isinstance(profile, dict) or not isinstance(profile.get("password"), str):
            raise _Refusal(
                400, INVALID_INPUT, "Invalid input: passwordProfile.password is required."
            )
        _check_object_type(posted, "CustomerUser")
        _check_lengths(posted)
        upn: str = posted["userPrincipalName"]
        _check_upn_syntax(upn)
        _check_domain(customer, upn.rpartition("@")[2])
        _check_usage_location(posted["usageLocation"])
        _check_password(profile["password"])
        if customer.user_with_upn(upn, deleted_too=self.config.deleted_users_hold_upn):
            if self.config.duplicate_upn_plain:
                raise _Refusal(400, INVALID_PROPERTY, PLAIN_INVALID_DESCRIPTION)
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
            Route(
                "POST",
                f"{CONTROL_PREFIX}/customers/{{id}}/users/{{user_id}}/delete",
                self._control_delete_user,
            ),
            Route(
                "GET",
                f"{CONTROL_PREFIX}/customers/{{id}}/users/{{user_id}}/licenses",
                self._control_assigned_skus,
            ),
            Route("GET", f"{CONTROL_PREFIX}/customers/{{id}}/subscribedskus", self._control_skus),
            Route(
                "POST", f"{CONTROL_PREFIX}/customers/{{id}}/subscribedskus", self._control_add_sku
            ),
            Route(
                "POST",
                f"{CONTROL_PREFIX}/customers/{{id}}/subscribedskus/{{sku_id}}/units",
                self._control_add_units,
            ),
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

    def _control_delete_user(self, request: Request, params: dict[str, str]) -> Response:
        """``{"deletedAt": ISO 8601}`` or ``{"daysAgo": N}``; neither: now."""
        payload = control_object(request)
        deleted_at = None
        if payload.get("deletedAt") is not None:
            deleted_at = _parse_time(str(payload["deletedAt"]))
        elif payload.get("daysAgo") is not None:
            deleted_at = _now() - timedelta(days=float(payload["daysAgo"]))
        user = self.delete_user(params["id"], params["user_id"], deleted_at=deleted_at)
        return Response.json(200, user)

    def _control_assigned_skus(self, _request: Request, params: dict[str, str]) -> Response:
        return Response.json(200, self.assigned_skus(params["id"], params["user_id"]))

    def _control_skus(self, _request: Request, params: dict[str, str]) -> Response:
        return Response.json(200, self.subscribed_skus(params["id"]))

    def _control_add_sku(self, request: Request, params: dict[str, str]) -> Response:
        payload = control_object(request)
        sku = self.add_subscribed_sku(
            params["id"],
            str(payload["skuId"]),
            str(payload.get("licenseGroupId", "group1")),
            int(payload.get("units", 1)),
            name=payload.get("name"),
        )
        return Response.json(200, sku)

    def _control_add_units(self, request: Request, params: dict[str, str]) -> Response:
        units = int(control_object(request)["units"])
        return Response.json(200, self.add_units(params["id"], params["sku_id"], units))


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


def _json_object(request: Request) -> dict[str, Any]:
    try:
        posted = request.json()
    except ValueError:
        raise _Refusal(400, INVALID_REQUEST_INPUT, "The request body is not valid JSON.") from None
    if not isinstance(posted, dict):
        raise _Refusal(400, INVALID_REQUEST_INPUT, "The request body must be a JSON object.")
    return posted


def _check_object_type(posted: dict[str, Any], object_type: str) -> None:
    attributes = posted.get("attributes")
    if not isinstance(attributes, dict) or attributes.get("objectType") != object_type:
        raise _Refusal(
            400, INVALID_INPUT, f'Invalid input: attributes.objectType must be "{object_type}".'
        )


def _new_password(profile: Any) -> str:
    if not isinstance(profile, dict) or not isinstance(profile.get("password"), str):
        raise _Refusal(400, INVALID_INPUT, "Invalid input: passwordProfile.password is required.")
    password: str = profile["password"]
    _check_password(password)
    return password


def _existing_user(customer: _Customer, user_id: str, *, active: bool = False) -> dict[str, Any]:
    """The user (``active``: only if not deleted), or the service's 404."""
    user = customer.user(user_id)
    if user is None or (active and user["state"] != "active"):
        raise _Refusal(404, RESOURCE_NOT_FOUND, f"User {user_id} was not found.")
    return user


def _soft_delete(customer: _Customer, user: dict[str, Any], at: datetime) -> None:
    user["state"] = "inactive"
    user["softDeletionTime"] = _format_time(at)
    customer.ever_deleted.add(user["id"].lower())
    # A deleted user's licences go back to the pool (a restored user has none).
    customer.release_licenses(user["id"])


def _collection(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "totalCount": len(items),
        "items": items,
        "links": {},
        "attributes": {"objectType": "Collection"},
    }


def _license_group_filter(request: Request) -> set[str] | None:
    """``licenseGroupIds=group1`` (repeated or comma-separated) narrows a licence listing."""
    values = request.query.get("licenseGroupIds")
    if not values:
        return None
    return {group.strip() for value in values for group in value.split(",") if group.strip()}


def _licenses_to_assign(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Refusal(400, INVALID_INPUT, "Invalid input: licensesToAssign must be a list.")
    entries = []
    for index, entry in enumerate(value):
        sku_id = entry.get("skuId") if isinstance(entry, dict) else None
        excluded = entry.get("excludedPlans") if isinstance(entry, dict) else None
        if not isinstance(sku_id, str) or not _is_guid(sku_id):
            raise _Refusal(
                400, INVALID_INPUT, f"Invalid input: licensesToAssign[{index}].skuId is not a GUID."
            )
        if excluded is not None and not (
            isinstance(excluded, list) and all(isinstance(plan, str) for plan in excluded)
        ):
            raise _Refusal(
                400,
                INVALID_INPUT,
                f"Invalid input: licensesToAssign[{index}].excludedPlans must be null or a "
                "list of service plan ids.",
            )
        entries.append({"skuId": sku_id, "excludedPlans": excluded})
    return entries


def _licenses_to_remove(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(sku_id, str) and _is_guid(sku_id) for sku_id in value
    ):
        raise _Refusal(
            400, INVALID_INPUT, "Invalid input: licensesToRemove must be a list of SKU ids."
        )
    return list(value)


def _now() -> datetime:
    return datetime.now(UTC)


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
