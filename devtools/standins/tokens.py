"""Access tokens the Entra stand-in issues and the resource stand-ins validate.

Tokens are opaque random strings; what they stand for (tenant, app, audience, expiry, whether
a user and MFA are behind them) lives in this shared in-memory registry, the way a real
resource reads it from a signed JWT.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class AccessToken:
    tenant_id: str
    client_id: str
    audience: str
    expires_on: float
    user_id: str | None  # None: an app-only token (client credentials)
    mfa: bool

    @property
    def is_app_only(self) -> bool:
        return self.user_id is None


class TokenProblem(Enum):
    MISSING = "missing"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    WRONG_AUDIENCE = "wrong_audience"


def normalise_resource(resource: str) -> str:
    return resource.rstrip("/").lower()


class AccessTokenRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, AccessToken] = {}
        self._expired_early: set[str] = set()

    def issue(
        self,
        *,
        tenant_id: str,
        client_id: str,
        audience: str,
        lifetime: float,
        user_id: str | None,
        mfa: bool,
    ) -> tuple[str, AccessToken]:
        token = "standin-at." + secrets.token_urlsafe(32)
        grant = AccessToken(
            tenant_id=tenant_id,
            client_id=client_id,
            audience=normalise_resource(audience),
            expires_on=time.time() + lifetime,
            user_id=user_id,
            mfa=mfa,
        )
        with self._lock:
            self._tokens[token] = grant
        return token, grant

    def check(self, token: str | None, audience: str) -> AccessToken | TokenProblem:
        """What the token grants, or why a resource server must refuse it."""
        if not token:
            return TokenProblem.MISSING
        with self._lock:
            grant = self._tokens.get(token)
            expired_early = token in self._expired_early
        if grant is None:
            return TokenProblem.UNKNOWN
        if expired_early or grant.expires_on <= time.time():
            return TokenProblem.EXPIRED
        if grant.audience != normalise_resource(audience):
            return TokenProblem.WRONG_AUDIENCE
        return grant

    def expire_all(self) -> None:
        """Make every token issued so far expired, as if an hour had passed."""
        with self._lock:
            self._expired_early.update(self._tokens)

    def undo_early_expiry(self) -> None:
        """Tokens are never forgotten (clients cache them, as they cache real ones, and a
        stand-in reset must not break a client that outlives a test); only early expiry is
        undone."""
        with self._lock:
            self._expired_early.clear()
