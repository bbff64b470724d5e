"""Entra ID stand-in: the v1 and v2.0 token endpoints and the OpenID metadata msal reads.

Grants: ``refresh_token`` (App+User, the secure application model: each exchange returns a new
refresh token) and ``client_credentials`` (app-only, e.g. for the vault). Errors use Entra's
shape (``error``, ``error_description`` starting with the AADSTS code, ``error_codes``...),
since msal and azure-identity read those fields.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .faults import Fault
from .service import CONTROL_PREFIX, ControlError, StandInService, control_object
from .tokens import AccessTokenRegistry, normalise_resource
from .wire import Request, Response, Route

KNOWN_RESOURCES = frozenset(
    {
        "https://api.partnercenter.microsoft.com",
        "https://vault.azure.net",
        "https://graph.microsoft.com",
    }
)
# Scopes that ask for OpenID Connect artefacts rather than access to a resource.
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
NINETY_DAYS = 90 * 24 * 3600


@dataclass
class EntraConfig:
    access_token_lifetime: int = 3600
    # Inactivity lifetime of a refresh token: the real one is 90 days (then AADSTS700082).
    refresh_token_lifetime: int = NINETY_DAYS
    # True: a refresh token stops working once exchanged (the real one stays valid).
    revoke_exchanged_refresh_tokens: bool = False
    # MFA claim on App+User tokens issued from refresh tokens made by issue_refresh_token().
    mfa_by_default: bool = True


@dataclass
class _RefreshToken:
    tenant_id: str
    client_id: str
    user_id: str
    mfa: bool
    expires_on: float
    revoked: bool = False


@dataclass(eq=False)
class _TokenError(Exception):
    status: int
    error: str
    aadsts: int
    text: str
    extra: dict[str, Any] = field(default_factory=dict)


class EntraStandIn(StandInService[EntraConfig]):
    name = "entra"
    counter_tallies = ("token_requests", "token_errors")
    secret_body_keys = frozenset({"client_secret", "refresh_token", "client_assertion"})

    def __init__(self, tokens: AccessTokenRegistry) -> None:
        self._tokens = tokens
        self._apps: dict[tuple[str, str], str] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        # Customer tenants (the stack points this at the Partner Center and Graph stand-ins):
        # None for a tenant that is no partner's customer, else whether the partner's app is
        # consented there ("token_refused": the token endpoint refuses it, AADSTS65001).
        self.customer_consent: Callable[[str], str | None] = lambda _tenant: None
        super().__init__(EntraConfig())

    @property
    def authority_host(self) -> str:
        return self.base_url

    # Python API ----------------------------------------------------------------------------

    def register_app(self, tenant_id: str, client_id: str, client_secret: str) -> None:
        """An app registration (confidential client) in ``tenant_id``; again: new secret."""
        with self._lock:
            self._apps[(tenant_id.lower(), client_id.lower())] = client_secret

    def issue_refresh_token(
        self, tenant_id: str, client_id: str, *, mfa: bool | None = None
    ) -> str:
        """A refresh token as if a partner user had consented to the app (with MFA by default)."""
        with self._lock:
            if (tenant_id.lower(), client_id.lower()) not in self._apps:
                raise KeyError(f"app {client_id} is not registered in tenant {tenant_id}")
        return self._new_refresh_token(
            tenant_id,
            client_id,
            user_id=str(uuid.uuid4()),
            mfa=self.config.mfa_by_default if mfa is None else mfa,
        )

    def revoke_refresh_token(self, token: str) -> None:
        with self._lock:
            self._refresh_tokens[token].revoked = True

    def expire_refresh_token(self, token: str) -> None:
        """As if the refresh token had not been used for 90 days."""
        with self._lock:
            self._refresh_tokens[token].expires_on = 0.0

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now (resources answer 401)."""
        self._tokens.expire_all()

    def clear_state(self) -> None:
        self._apps.clear()
        with self._lock:
            self._refresh_tokens.clear()
        self._tokens.undo_early_expiry()

    def _new_refresh_token(self, tenant_id: str, client_id: str, *, user_id: str, mfa: bool) -> str:
        token = "standin-rt." + secrets.token_urlsafe(48)
        expires_on = time.time() + self.config.refresh_token_lifetime
        with self._lock:
            self._refresh_tokens[token] = _RefreshToken(
                tenant_id.lower(), client_id.lower(), user_id, mfa, expires_on
            )
        return token

    # The API ---------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/{tenant}/oauth2/token", self._token_v1),
            Route("POST", "/{tenant}/oauth2/v2.0/token", self._token_v2),
            Route("GET", "/{tenant}/v2.0/.well-known/openid-configuration", self._metadata_v2),
            Route("GET", "/{tenant}/.well-known/openid-configuration", self._metadata_v1),
            Route("GET", "/{tenant}/discovery/v2.0/keys", self._keys),
            Route("GET", "/{tenant}/discovery/keys", self._keys),
        ]

    def _known_tenant(self, tenant_id: str) -> bool:
        with self._lock:
            if any(app_tenant == tenant_id.lower() for app_tenant, _ in self._apps):
                return True
        return self._is_customer(tenant_id)

    def _is_customer(self, tenant_id: str) -> bool:
        with self._lock:
            if any(app_tenant == tenant_id.lower() for app_tenant, _ in self._apps):
                return False  # a tenant with its own apps is a partner's, not a customer's
        return self.customer_consent(tenant_id) is not None

    def _metadata_v2(self, _request: Request, params: dict[str, str]) -> Response:
        tenant = params["tenant"]
        if not self._known_tenant(tenant):
            return self._error_response(_unknown_tenant(tenant))
        base = f"{self.base_url}/{tenant}"
        return Response.json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{base}/openid/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def _metadata_v1(self, _request: Request, params: dict[str, str]) -> Response:
        tenant = params["tenant"]
        if not self._known_tenant(tenant):
            return self._error_response(_unknown_tenant(tenant))
        base = f"{self.base_url}/{tenant}"
        return Response.json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
                "scopes_supported": ["openid"],
                "issuer": f"{base}/",
                "authorization_endpoint": f"{base}/oauth2/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/devicecode",
                "end_session_endpoint": f"{base}/oauth2/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            },
        )

    def _keys(self, _request: Request, _params: dict[str, str]) -> Response:
        # Tokens are opaque registry handles, not signed JWTs: there is nothing to publish.
        return Response.json(200, {"keys": []})

    def _token_v1(self, request: Request, params: dict[str, str]) -> Response:
        return self._token(request, params["tenant"], v2=False)

    def _token_v2(self, request: Request, params: dict[str, str]) -> Response:
        return self._token(request, params["tenant"], v2=True)

    def _token(self, request: Request, tenant_id: str, *, v2: bool) -> Response:
        form = request.form()
        grant_type = form.get("grant_type", "")
        self.tally("token_requests", grant_type or "(none)")
        try:
            client_id = self._authenticate_client(request, form, tenant_id)
            resource, permission = _requested_resource(form, v2=v2)
            if grant_type == "refresh_token":
                return self._refresh(form, tenant_id, client_id, resource, permission, v2=v2)
            if grant_type == "client_credentials":
                return self._client_credentials(tenant_id, client_id, resource, permission, v2=v2)
            raise _TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        except _TokenError as problem:
            self.tally("token_errors", problem.error)
            return self._error_response(problem)

    def _authenticate_client(self, request: Request, form: dict[str, str], tenant_id: str) -> str:
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            decoded = base64.b64decode(credentials).decode("utf-8")
            client_id, _, client_secret = decoded.partition(":")
        if not self._known_tenant(tenant_id):
            raise _unknown_tenant(tenant_id)
        with self._lock:
            expected_secret = self._apps.get((tenant_id.lower(), client_id.lower()))
            if expected_secret is None and self._is_customer(tenant_id):
                # A multi-tenant app registered in the partner's tenant, used in a customer's.
                expected_secret = next(
                    (
                        secret
                        for (_tenant, app), secret in self._apps.items()
                        if app == client_id.lower()
                    ),
                    None,
                )
        if expected_secret is None:
            raise _TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant_id}'.",
            )
        if client_secret is None:
            raise _TokenError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if not secrets.compare_digest(client_secret, expected_secret):
            raise _TokenError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for app '{client_id}'.",
            )
        return client_id

    def _refresh(
        self,
        form: dict[str, str],
        tenant_id: str,
        client_id: str,
        resource: str,
        permission: str,
        *,
        v2: bool,
    ) -> Response:
        presented = form.get("refresh_token", "")
        with self._lock:
            grant = self._refresh_tokens.get(presented)
            # The partner's refresh token is also redeemed in its customers' tenants (the
            # documented New-PartnerAccessToken -Tenant <customer>), for Microsoft Graph there.
            in_customer = grant is not None and (
                grant.tenant_id != tenant_id.lower() and self._is_customer(tenant_id)
            )
            if (
                grant is None
                or (grant.tenant_id != tenant_id.lower() and not in_customer)
                or grant.client_id != client_id.lower()
            ):
                raise _TokenError(
                    400,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid.",
                )
            if grant.revoked or grant.expires_on <= time.time():
                raise _TokenError(
                    400,
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity. The token was issued on "
                    f"{_iso(grant.expires_on - self.config.refresh_token_lifetime)} and was "
                    "inactive for 90.00:00:00.",
                    {"suberror": "bad_token"},
                )
            if in_customer and self.customer_consent(tenant_id) == "token_refused":
                raise _TokenError(
                    400,
                    "invalid_grant",
                    65001,
                    f"The user or administrator has not consented to use the application with "
                    f"ID '{client_id}'. Send an interactive authorization request for this user "
                    "and resource.",
                    {"suberror": "consent_required"},
                )
            if self.config.revoke_exchanged_refresh_tokens:
                grant.revoked = True
        new_refresh_token = self._new_refresh_token(
            tenant_id, client_id, user_id=grant.user_id, mfa=grant.mfa
        )
        access_token, _ = self._tokens.issue(
            tenant_id=tenant_id,
            client_id=client_id,
            audience=resource,
            lifetime=self.config.access_token_lifetime,
            user_id=grant.user_id,
            mfa=grant.mfa,
        )
        answer = self._token_answer(access_token, resource, permission, v2=v2)
        answer["refresh_token"] = new_refresh_token
        if v2 and form.get("client_info") == "1":
            client_info = {"uid": grant.user_id, "utid": tenant_id}
            answer["client_info"] = _base64url(json.dumps(client_info).encode("utf-8"))
        return Response.json(200, answer, _no_store())

    def _client_credentials(
        self, tenant_id: str, client_id: str, resource: str, permission: str, *, v2: bool
    ) -> Response:
        if v2 and permission != ".default":
            raise _TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {resource}/{permission} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the resource "
                "identifier (application ID URI).",
            )
        access_token, _ = self._tokens.issue(
            tenant_id=tenant_id,
            client_id=client_id,
            audience=resource,
            lifetime=self.config.access_token_lifetime,
            user_id=None,
            mfa=False,
        )
        return Response.json(
            200, self._token_answer(access_token, resource, permission, v2=v2), _no_store()
        )

    def _token_answer(
        self, access_token: str, resource: str, permission: str, *, v2: bool
    ) -> dict[str, Any]:
        lifetime = self.config.access_token_lifetime
        if v2:
            return {
                "token_type": "Bearer",
                "scope": f"{resource}/{permission}",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": access_token,
            }
        now = int(time.time())
        # The v1 endpoint sends its numbers as strings.
        return {
            "token_type": "Bearer",
            "scope": permission,
            "expires_in": str(lifetime),
            "ext_expires_in": str(lifetime),
            "expires_on": str(now + lifetime),
            "not_before": str(now),
            "resource": resource,
            "access_token": access_token,
        }

    def _error_response(self, problem: _TokenError) -> Response:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{problem.aadsts}: {problem.text} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
        )
        body = {
            "error": problem.error,
            "error_description": description,
            "error_codes": [problem.aadsts],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{self.base_url}/error?code={problem.aadsts}",
            **problem.extra,
        }
        return Response.json(problem.status, body, _no_store())

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status_code or 500
        error = _TokenError(
            status,
            "temporarily_unavailable" if status in (429, 503) else "server_error",
            50196 if status == 429 else 90033,
            "The server is temporarily unable to handle the request (injected fault).",
        )
        response = self._error_response(error)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    def not_found(self, request: Request) -> Response:
        return Response.json(404, {"error": "not_found", "error_description": request.path})

    # Control endpoint ----------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        return [
            Route("POST", f"{CONTROL_PREFIX}/apps", self._control_register_app),
            Route("POST", f"{CONTROL_PREFIX}/refresh-tokens", self._control_issue_refresh_token),
            Route("POST", f"{CONTROL_PREFIX}/refresh-tokens/revoke", self._control_revoke),
            Route("POST", f"{CONTROL_PREFIX}/access-tokens/expire", self._control_expire),
        ]

    def _control_register_app(self, request: Request, _params: dict[str, str]) -> Response:
        payload = control_object(request)
        self.register_app(payload["tenantId"], payload["clientId"], payload["clientSecret"])
        return Response.json(
            200, {"tenantId": payload["tenantId"], "clientId": payload["clientId"]}
        )

    def _control_issue_refresh_token(self, request: Request, _params: dict[str, str]) -> Response:
        payload = control_object(request)
        mfa = payload.get("mfa")
        token = self.issue_refresh_token(
            payload["tenantId"], payload["clientId"], mfa=None if mfa is None else bool(mfa)
        )
        return Response.json(200, {"refreshToken": token})

    def _control_revoke(self, request: Request, _params: dict[str, str]) -> Response:
        token = control_object(request)["refreshToken"]
        try:
            self.revoke_refresh_token(token)
        except KeyError:
            raise ControlError("no such refresh token") from None
        return Response.json(200, {"revoked": True})

    def _control_expire(self, _request: Request, _params: dict[str, str]) -> Response:
        self.expire_access_tokens()
        return Response.json(200, {"expired": True})


def _requested_resource(form: dict[str, str], *, v2: bool) -> tuple[str, str]:
    """(resource, permission) asked for: v1 names a resource, v2 lists scopes."""
    if not v2:
        resource = form.get("resource", "")
        if not resource:
            raise _TokenError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'resource'.",
            )
        return _known_resource(resource), "user_impersonation"
    requested = [scope for scope in form.get("scope", "").split() if scope not in OIDC_SCOPES]
    if not requested:
        raise _TokenError(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        )
    resources = {scope.rstrip("/").rpartition("/")[0] for scope in requested}
    if len(resources) != 1 or "" in resources:
        raise _TokenError(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid: the scopes must "
            "all belong to one resource.",
        )
    permission = requested[0].rstrip("/").rpartition("/")[2]
    return _known_resource(resources.pop()), permission


def _known_resource(resource: str) -> str:
    if normalise_resource(resource) not in KNOWN_RESOURCES:
        raise _TokenError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant.",
        )
    return normalise_resource(resource)


def _unknown_tenant(tenant_id: str) -> _TokenError:
    return _TokenError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID.",
    )


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
