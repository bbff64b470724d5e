"""Key Vault stand-in: the secrets data-plane API as ``azure-keyvault-secrets`` uses it.

Authentication is Key Vault's challenge protocol: a call without a valid token gets 401 with
``WWW-Authenticate: Bearer authorization="{entra}/{tenant}", resource="https://vault.azure.net"``,
the client asks the Entra stand-in for a token in that tenant and sends the call again.
Authorisation is an access list: the vault's own service principal plus any app granted
access; ``deny()`` makes names (or everything) answer 403 as a missing permission does.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .faults import Fault
from .service import CONTROL_PREFIX, StandInService, control_object
from .tokens import AccessToken, AccessTokenRegistry, TokenProblem
from .wire import Request, Response, Route

VAULT_RESOURCE = "https://vault.azure.net"
# Versions azure-keyvault-secrets knows (4.12 sends 2026-04-01 by default).
SUPPORTED_API_VERSIONS = frozenset(
    {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
)
_SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")


@dataclass
class KeyVaultConfig:
    # Real vaults hand out expired secrets (the expiry is informational); True: 403 SecretExpired.
    enforce_expiry: bool = False


@dataclass
class _SecretVersion:
    name: str
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int = field(default_factory=lambda: int(time.time()))
    updated: int = field(default_factory=lambda: int(time.time()))

    def attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "enabled": self.enabled,
            "created": self.created,
            "updated": self.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        if self.not_before is not None:
            attributes["nbf"] = self.not_before
        if self.expires is not None:
            attributes["exp"] = self.expires
        return attributes


class _VaultError(Exception):
    def __init__(self, status: int, code: str, message: str, *, inner: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner


class KeyVaultStandIn(StandInService[KeyVaultConfig]):
    name = "key_vault"
    counter_tallies = ("secret_reads", "secret_writes")
    secret_body_keys = frozenset({"value"})

    def __init__(self, tokens: AccessTokenRegistry, *, authority_host: str) -> None:
        self._tokens = tokens
        self._authority_host = authority_host
        # The service principal the function app reads and writes the vault as.
        self.vault_tenant_id = str(uuid.uuid4())
        self.vault_client_id = str(uuid.uuid4())
        self.vault_client_secret = "standin-vault-sp." + secrets.token_urlsafe(24)
        self._secrets: dict[str, list[_SecretVersion]] = {}
        self._granted: set[str] = set()
        self._denied: set[str | None] = set()
        super().__init__(KeyVaultConfig())

    @property
    def vault_url(self) -> str:
        return self.base_url

    # Python API (not counted: these are the test's own reads and writes) -------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        tags: dict[str, str] | None = None,
        expires_on: datetime | None = None,
        not_before: datetime | None = None,
        content_type: str | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Store a new version; returns it in the REST shape (with ``value``)."""
        if not _SECRET_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid secret name")
        stored = self._store(
            name,
            value,
            content_type=content_type,
            tags=tags,
            enabled=enabled,
            not_before=None if not_before is None else int(not_before.timestamp()),
            expires=None if expires_on is None else int(expires_on.timestamp()),
        )
        return self._bundle(stored)

    def get_secret_value(self, name: str) -> str:
        """The latest value; KeyError if there is no such secret."""
        with self._lock:
            return self._secrets[name.lower()][-1].value

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version, oldest first, in the REST shape (with ``value``); [] if none."""
        with self._lock:
            return [self._bundle(version) for version in self._secrets.get(name.lower(), [])]

    def deny(self, name: str | None) -> None:
        """Answer 403 for this secret name from now on (``None``: for every call)."""
        with self._lock:
            self._denied.add(None if name is None else name.lower())

    def grant_access(self, client_id: str) -> None:
        """Let another app (besides the vault service principal) read and write secrets."""
        with self._lock:
            self._granted.add(client_id.lower())

    def clear_state(self) -> None:
        self._secrets.clear()
        self._granted.clear()
        self._denied.clear()

    def _store(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None,
        tags: dict[str, str] | None,
        enabled: bool,
        not_before: int | None,
        expires: int | None,
    ) -> _SecretVersion:
        version = _SecretVersion(
            name=name,
            version=uuid.uuid4().hex,
            value=value,
            content_type=content_type,
            tags=copy.deepcopy(tags),
            enabled=enabled,
            not_before=not_before,
            expires=expires,
        )
        with self._lock:
            self._secrets.setdefault(name.lower(), []).append(version)
        return version

    # The API ---------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/secrets", self._list_secrets, trailing_slash=True),
            Route("GET", "/secrets/{name}/versions", self._list_versions),
            # SecretClient.get_secret(name) asks for "/secrets/{name}/" (an empty version).
            Route("GET", "/secrets/{name}", self._get_latest, trailing_slash=True),
            Route("GET", "/secrets/{name}/{version}", self._get_version),
            Route("PUT", "/secrets/{name}", self._set_secret),
            Route("PATCH", "/secrets/{name}", self._update_latest, trailing_slash=True),
            Route("PATCH", "/secrets/{name}/{version}", self._update_properties),
        ]

    def _get_latest(self, request: Request, params: dict[str, str]) -> Response:
        return self._handle(request, lambda: self._read(params["name"], None))

    def _get_version(self, request: Request, params: dict[str, str]) -> Response:
        return self._handle(request, lambda: self._read(params["name"], params["version"]))

    def _set_secret(self, request: Request, params: dict[str, str]) -> Response:
        return self._handle(request, lambda: self._write(params["name"], request))

    def _update_latest(self, request: Request, params: dict[str, str]) -> Response:
        return self._handle(request, lambda: self._update(params["name"], None, request))

    def _update_properties(self, request: Request, params: dict[str, str]) -> Response:
        return self._handle(
            request, lambda: self._update(params["name"], params["version"], request)
        )

    def _list_versions(self, request: Request, params: dict[str, str]) -> Response:
        def listing() -> Response:
            name = self._permitted_name(params["name"])
            with self._lock:
                versions = self._secrets.get(name.lower(), [])
                items = [self._properties(version) for version in versions]
            return self._vault_json(200, {"value": items, "nextLink": None})

        return self._handle(request, listing)

    def _list_secrets(self, request: Request, _params: dict[str, str]) -> Response:
        def listing() -> Response:
            with self._lock:
                if None in self._denied:
                    raise _forbidden("list")
                latest = [versions[-1] for versions in self._secrets.values()]
            items = []
            for version in latest:
                item = self._properties(version)
                item["id"] = f"{self.vault_url}/secrets/{version.name}"
                items.append(item)
            return self._vault_json(200, {"value": items, "nextLink": None})

        return self._handle(request, listing)

    def _handle(self, request: Request, operation: Callable[[], Response]) -> Response:
        """Authenticate, check the api-version, then run the operation; errors become JSON."""
        try:
            self._authenticate(request)
            _check_api_version(request.query_value("api-version"))
            return operation()
        except _VaultError as problem:
            return self._error(problem)

    def _authenticate(self, request: Request) -> AccessToken:
        grant = self._tokens.check(request.bearer_token(), VAULT_RESOURCE)
        if isinstance(grant, TokenProblem):
            messages = {
                TokenProblem.MISSING: "AKV10000: Request is missing a Bearer or PoP token.",
                TokenProblem.UNKNOWN: "AKV10013: Invalid token.",
                TokenProblem.EXPIRED: "AKV10013: Token has expired.",
                TokenProblem.WRONG_AUDIENCE: "AKV10022: Invalid audience.",
            }
            raise _VaultError(401, "Unauthorized", messages[grant])
        if grant.tenant_id.lower() != self.vault_tenant_id.lower():
            raise _VaultError(401, "Unauthorized", "AKV10032: Invalid issuer.")
        with self._lock:
            allowed = grant.client_id.lower() in self._granted | {self.vault_client_id.lower()}
        if not allowed:
            raise _forbidden("access", caller=grant.client_id)
        return grant

    def _permitted_name(self, name: str) -> str:
        _check_name(name)
        with self._lock:
            if None in self._denied or name.lower() in self._denied:
                raise _forbidden(name)
        return name

    def _read(self, name: str, version_id: str | None) -> Response:
        self._permitted_name(name)
        version = self._find(name, version_id)
        if not version.enabled:
            raise _VaultError(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner="SecretDisabled",
            )
        if (
            self.config.enforce_expiry
            and version.expires is not None
            and version.expires <= time.time()
        ):
            raise _VaultError(
                403,
                "Forbidden",
                "Operation get is not allowed on an expired secret.",
                inner="SecretExpired",
            )
        self.tally("secret_reads", name)
        return self._vault_json(200, self._bundle(version))

    def _write(self, name: str, request: Request) -> Response:
        self._permitted_name(name)
        body = _json_object(request)
        value = body.get("value")
        if not isinstance(value, str):
            raise _VaultError(400, "BadParameter", "The property 'value' is required.")
        attributes = body.get("attributes") or {}
        stored = self._store(
            name,
            value,
            content_type=body.get("contentType"),
            tags=body.get("tags"),
            enabled=bool(attributes.get("enabled", True)),
            not_before=attributes.get("nbf"),
            expires=attributes.get("exp"),
        )
        self.tally("secret_writes", name)
        return self._vault_json(200, self._bundle(stored))

    def _update(self, name: str, version_id: str | None, request: Request) -> Response:
        self._permitted_name(name)
        body = _json_object(request)
        with self._lock:
            version = self._find(name, version_id)
            attributes = body.get("attributes") or {}
            if "contentType" in body:
                version.content_type = body["contentType"]
            if "tags" in body:
                version.tags = body["tags"]
            if "enabled" in attributes:
                version.enabled = bool(attributes["enabled"])
            if "nbf" in attributes:
                version.not_before = attributes["nbf"]
            if "exp" in attributes:
                version.expires = attributes["exp"]
            version.updated = int(time.time())
            return self._vault_json(200, self._properties(version))

    def _find(self, name: str, version_id: str | None) -> _SecretVersion:
        with self._lock:
            versions = self._secrets.get(name.lower(), [])
            if version_id is None and versions:
                return versions[-1]
            for version in versions:
                if version.version == version_id:
                    return version
        shown = name if version_id is None else f"{name}/{version_id}"
        raise _VaultError(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {shown} was not found in this key vault.",
        )

    def _properties(self, version: _SecretVersion) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": f"{self.vault_url}/secrets/{version.name}/{version.version}",
            "attributes": version.attributes(),
        }
        if version.content_type is not None:
            item["contentType"] = version.content_type
        if version.tags is not None:
            item["tags"] = copy.deepcopy(version.tags)
        return item

    def _bundle(self, version: _SecretVersion) -> dict[str, Any]:
        return {"value": version.value, **self._properties(version)}

    def _vault_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> Response:
        return Response.json(
            status,
            payload,
            {
                "x-ms-request-id": str(uuid.uuid4()),
                "x-ms-keyvault-service-version": "1.9.0.0",
                **(headers or {}),
            },
        )

    def _error(self, problem: _VaultError) -> Response:
        error: dict[str, Any] = {"code": problem.code, "message": problem.message}
        if problem.inner:
            error["innererror"] = {"code": problem.inner}
        headers = {}
        if problem.status == 401:
            headers["WWW-Authenticate"] = (
                f'Bearer authorization="{self._authority_host}/{self.vault_tenant_id}", '
                f'resource="{VAULT_RESOURCE}"'
            )
        return self._vault_json(problem.status, {"error": error}, headers)

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status_code or 500
        codes = {429: "Throttled", 500: "InternalServerError", 503: "ServiceUnavailable"}
        problem = _VaultError(
            status, codes.get(status, "InjectedFault"), f"Injected fault: HTTP {status}."
        )
        response = self._error(problem)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    def not_found(self, request: Request) -> Response:
        return self._error(
            _VaultError(404, "NotFound", f"No route {request.method} {request.path}.")
        )

    # Control endpoint ----------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        return [
            Route("GET", f"{CONTROL_PREFIX}/secrets", self._control_names),
            Route("PUT", f"{CONTROL_PREFIX}/secrets/{{name}}", self._control_set_secret),
            Route("POST", f"{CONTROL_PREFIX}/deny", self._control_deny),
            Route("POST", f"{CONTROL_PREFIX}/grant", self._control_grant),
        ]

    def _control_names(self, _request: Request, _params: dict[str, str]) -> Response:
        with self._lock:
            names = {versions[-1].name: len(versions) for versions in self._secrets.values()}
        return Response.json(200, {"versions": names})

    def _control_set_secret(self, request: Request, params: dict[str, str]) -> Response:
        payload = control_object(request)
        expires = payload.get("expiresOn")
        stored = self.set_secret(
            params["name"],
            str(payload["value"]),
            tags=payload.get("tags"),
            expires_on=None if expires is None else datetime.fromisoformat(expires),
            content_type=payload.get("contentType"),
        )
        stored.pop("value")
        return Response.json(200, stored)

    def _control_deny(self, request: Request, _params: dict[str, str]) -> Response:
        self.deny(control_object(request).get("name"))
        with self._lock:
            denied = sorted("*" if name is None else name for name in self._denied)
        return Response.json(200, {"denied": denied})

    def _control_grant(self, request: Request, _params: dict[str, str]) -> Response:
        self.grant_access(control_object(request)["clientId"])
        with self._lock:
            granted = sorted(self._granted)
        return Response.json(200, {"granted": granted})


def _check_name(name: str) -> None:
    if not _SECRET_NAME.fullmatch(name):
        raise _VaultError(
            400,
            "BadParameter",
            f"The request URI contains an invalid name: {name}",
        )


def _check_api_version(version: str | None) -> None:
    if version is None:
        raise _VaultError(400, "BadParameter", "The 'api-version' query parameter is missing.")
    if version not in SUPPORTED_API_VERSIONS:
        raise _VaultError(
            400,
            "BadParameter",
            f"The specified version ({version}) is not recognized. Consider using the latest "
            "supported version (2026-04-01).",
        )


def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _VaultError(400, "BadParameter", "The request body must be a JSON object.")
    return body


def _forbidden(target: str, *, caller: str | None = None) -> _VaultError:
    who = f" Caller: appid={caller}." if caller else ""
    return _VaultError(
        403,
        "Forbidden",
        f"Caller is not authorized to perform action on resource '{target}'.{who}",
        inner="ForbiddenByPolicy",
    )
