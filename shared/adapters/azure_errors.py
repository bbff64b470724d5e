"""One reading of azure-core's exceptions for the adapters built on the Azure SDK.

Key Vault and Table Storage fail the same ways: the identity gets no token, the service
answers a status, or it cannot be reached. Which of those is worth another try, and how long
the service asked to wait, is decided here once; what a definite refusal means (and what an
operator should grant or fix) is the adapter's, passed in as ``refusal``. Messages name the
call and the exception's type, never its text, which may quote a request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.domain.errors import (
    CredentialsError,
    ProvisioningError,
    ServiceUnavailableError,
    retry_after_seconds,
)

# Answers that say "not now": timeouts, throttling and the service's own failures.
_TRANSIENT_STATUS = 408
_THROTTLED_STATUS = 429


@dataclass(frozen=True, kw_only=True)
class AzureCall:
    """One call of an Azure SDK client, in an operator's words."""

    service: str
    """Who answers: "Key Vault", "the hire ledger (table 'hireledger')"."""
    what: str
    """The call, after "could not get a token to" / "could not be reached to": "read secret
    'x' in Key Vault https://...". """
    identity_advice: str
    """What to check when the function's identity cannot authenticate at all."""
    refusal: Callable[[int, str | None], ProvisioningError]
    """A definite answer (any status not transient) and its service error code -> the failure."""
    throttling_statuses: frozenset[int] = frozenset({_THROTTLED_STATUS})
    """Statuses that mean throttling (Table Storage also says 503 ServerBusy)."""


def classify_azure_error(error: Exception, call: AzureCall) -> ProvisioningError:
    """The failure an Azure SDK exception means for the decision; total, never raises."""
    status = _status(error)
    if isinstance(error, ClientAuthenticationError) and (
        status is None or status >= 500 or status == _THROTTLED_STATUS
    ):
        # The identity could not get a token (a managed identity endpoint or Entra hiccup,
        # as often as not): worth another try.
        return ServiceUnavailableError(
            f"the function's identity could not get a token to {call.what} "
            f"({type(error).__name__}); if this lasts, {call.identity_advice}"
        )
    if isinstance(error, ClientAuthenticationError) and status != 403:
        return CredentialsError(
            f"the function could not authenticate to {call.what} ({type(error).__name__}); "
            f"{call.identity_advice}",
            http_status=status,
        )
    if isinstance(error, HttpResponseError) and status is not None:
        code = _error_code(error)
        if status in call.throttling_statuses or status >= 500 or status == _TRANSIENT_STATUS:
            headers = getattr(error.response, "headers", None) or {}
            return ServiceUnavailableError(
                f"{call.service} answered {status} when asked to {call.what}",
                throttled=status in call.throttling_statuses,
                http_status=status,
                code=code,
                # The SDKs' own retries are off (composition): the decision's policy waits.
                retry_after=retry_after_seconds(headers.get("Retry-After")),
            )
        return call.refusal(status, code)
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return ServiceUnavailableError(
            f"{call.service} could not be reached to {call.what} ({type(error).__name__})"
        )
    return ServiceUnavailableError(
        f"unexpected failure to {call.what} ({type(error).__name__})"
    )


def _status(error: Exception) -> int | None:
    status = getattr(error, "status_code", None)
    return int(status) if isinstance(status, int) else None


def _error_code(error: HttpResponseError) -> str | None:
    """The service's error code: the parsed error body's, else the x-ms-error-code header's."""
    parsed = getattr(error.error, "code", None) if error.error else None
    code = parsed or getattr(error, "error_code", None)
    return str(code) if code else None
