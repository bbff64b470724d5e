"""The kinds of failure the decision tells apart, raised by the adapters already classified.

Every message here is written for an operator and never contains a secret value: adapters
build it from status codes, service error codes and names, not from request or response bodies
that could echo a credential or a password.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from shared.domain.outcomes import Category, Failure

# delta-seconds: ASCII digits (float() would also take "1_0", "1e3", "inf" and other digits).
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


class ProvisioningError(Exception):
    """A classified failure of an outside service (Key Vault, Entra ID, Partner Center, ledger)."""

    def __init__(
        self,
        category: Category,
        message: str,
        *,
        http_status: int | None = None,
        code: int | str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = Failure(
            category=category, message=message, http_status=http_status, code=code
        )
        self.retry_after = retry_after

    @property
    def is_transient(self) -> bool:
        return self.failure.is_transient


class CredentialsError(ProvisioningError):
    """A person must act (re-consent, store a secret, grant vault access): retrying cannot help."""

    def __init__(
        self, message: str, *, http_status: int | None = None, code: int | str | None = None
    ) -> None:
        super().__init__(Category.CREDENTIALS, message, http_status=http_status, code=code)


class ServiceUnavailableError(ProvisioningError):
    """A transient failure: timeout, dropped connection, 5xx or throttling."""

    def __init__(
        self,
        message: str,
        *,
        throttled: bool = False,
        http_status: int | None = None,
        code: int | str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            Category.THROTTLED if throttled else Category.UNAVAILABLE,
            message,
            http_status=http_status,
            code=code,
            retry_after=retry_after,
        )


class AnswerLost(ServiceUnavailableError):
    """A create call got no usable answer (timeout, dropped connection, 5xx): it may have
    been applied. Only a look-up can tell."""


class Refused(ProvisioningError):
    """Partner Center gave a definite answer that this create cannot succeed as it stands
    (validation, permission, a unique value taken): nothing was created."""


class UpnTaken(Refused):
    """Partner Center says the userPrincipalName is already held (a deleted user included)."""

    def __init__(
        self, message: str, *, http_status: int | None = None, code: int | str | None = None
    ) -> None:
        super().__init__(Category.CONFLICT, message, http_status=http_status, code=code)


class LedgerConflict(Exception):
    """The hire's record was written by someone else since it was read (or already exists)."""


class RedeliveryRequested(Exception):
    """Raised out of the function so the host makes the message visible again later."""


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds to wait: None when absent or unreadable.

    The one reading of the header for every service (Partner Center, Entra ID, Key Vault,
    Table Storage, Graph). HTTP allows delta-seconds or an HTTP date (IMF-fixdate, and the
    obsolete RFC 850 and asctime forms, all read as UTC); a date in the past means no wait.
    A fraction of a second is accepted; a negative, non-finite or other value is not.
    """
    text = (value or "").strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


class DirectoryUnavailable(Exception):
    """The customer's directory cannot be read by UPN (no consent for Microsoft Graph): the
    caller falls back to Partner Center's user list. Not a failure of the hire."""
