"""The outcome (docs/contract.md section 2) and the failure it may carry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NotRequired

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict  # pydantic needs this one on Python 3.11

SCHEMA_VERSION = "1.0"


class Status(StrEnum):
    """What became of the event; one final status per event (docs/contract.md section 2)."""

    CREATED = "created"
    RESTORED = "restored"
    ALREADY_EXISTS = "already_exists"
    REJECTED = "rejected"
    FAILED = "failed"


class Category(StrEnum):
    """What kind of failure, which says who must act (docs/operations.md, "By category")."""

    INVALID_EVENT = "invalid_event"
    VALIDATION = "validation"
    CONFLICT = "conflict"
    PERMISSION = "permission"
    CREDENTIALS = "credentials"
    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"


TRANSIENT_CATEGORIES = frozenset({Category.THROTTLED, Category.UNAVAILABLE})


# The outcome on the wire: what ``Outcome.as_message`` writes, declared once so that mypy checks
# the writer and docs/schemas/outcome.schema.json is generated from it (python -m devtools.schemas).


@with_config(ConfigDict(use_attribute_docstrings=True))
class ErrorMessage(TypedDict):
    """Why the event did not succeed."""

    category: Category
    """What kind of failure; says who must act."""
    message: str
    """What an operator should do; never a secret."""
    httpStatus: int | None
    """The service's HTTP status, when a service answered."""
    code: int | str | None
    """The service's error code (Partner Center's numbers, Entra's AADSTS codes), if any."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class LicenseFailureMessage(TypedDict):
    """A requested licence that could not be assigned."""

    skuId: str
    category: Category
    message: str
    code: int | str | None


@with_config(ConfigDict(use_attribute_docstrings=True))
class LicenseReportMessage(TypedDict):
    """The licences the event asked for: assigned, and failed with the reason."""

    assigned: list[str]
    failed: list[LicenseFailureMessage]


@with_config(ConfigDict(use_attribute_docstrings=True))
class OutcomeMessage(TypedDict):
    """The one final outcome of a hire event (docs/contract.md section 2).

    Written to the result queue as UTF-8 JSON, base64-encoded. Delivered at least once:
    consumers dedupe on eventId. Consumers ignore members they do not know.
    """

    schemaVersion: str
    """The outcome's schema version, 1.0."""
    eventId: str | None
    """The event's eventId; null only when the message had no usable one."""
    status: Status
    customerTenantId: str | None
    userPrincipalName: str | None
    """The UPN the user has (or would have had), a generated one included."""
    userId: str | None
    """The user's id in the customer's tenant, when there is a user."""
    initialPasswordSecretId: str | None
    """The Key Vault secret (name and version) holding the initial password; never the value."""
    error: ErrorMessage | None
    """null on success."""
    attempts: int
    """Deliveries of the event so far, this one included."""
    correlationId: str | None
    completedAt: str
    """When the outcome was written, UTC, ISO 8601 (2026-11-21T09:30:00Z)."""
    licenses: NotRequired[LicenseReportMessage]
    """Only when the event asked for licences."""
    traceparent: NotRequired[str]
    """Only when the event carried one: the trace the invocation belongs to."""


def utc_now_text(now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, kw_only=True)
class Failure:
    """Why an event did not succeed. ``message`` tells an operator what to do; never secrets."""

    category: Category
    message: str
    http_status: int | None = None
    code: int | str | None = None

    @property
    def is_transient(self) -> bool:
        return self.category in TRANSIENT_CATEGORIES

    def as_error(self) -> dict[str, Any]:
        return dict(self.error_message())

    def error_message(self) -> ErrorMessage:
        """The outcome's ``error`` member (and the poison copy's ``lastFailure`` starts so)."""
        return {
            "category": self.category,
            "message": self.message,
            "httpStatus": self.http_status,
            "code": self.code,
        }


@dataclass(frozen=True, kw_only=True)
class LicenseFailure:
    """A requested licence that could not be assigned, and what an operator should do."""

    sku_id: str
    category: Category
    message: str
    code: int | str | None = None

    def as_message(self) -> LicenseFailureMessage:
        return {
            "skuId": self.sku_id,
            "category": self.category,
            "message": self.message,
            "code": self.code,
        }


@dataclass(frozen=True, kw_only=True)
class LicenseReport:
    """The outcome's ``licenses``: present only when the event asked for licences."""

    assigned: tuple[str, ...] = ()
    failed: tuple[LicenseFailure, ...] = ()

    def as_message(self) -> LicenseReportMessage:
        return {
            "assigned": list(self.assigned),
            "failed": [failure.as_message() for failure in self.failed],
        }


@dataclass(frozen=True, kw_only=True)
class Outcome:
    event_id: str | None
    status: Status
    customer_tenant_id: str | None
    user_principal_name: str | None
    correlation_id: str | None
    attempts: int
    user_id: str | None = None
    initial_password_secret_id: str | None = None
    failure: Failure | None = None
    completed_at: str = ""
    licenses: LicenseReport | None = None
    # W3C trace context of the invocation, when the event carried one (docs/contract.md section 2).
    traceparent: str | None = None

    def as_message(self) -> dict[str, Any]:
        message: OutcomeMessage = {
            "schemaVersion": SCHEMA_VERSION,
            "eventId": self.event_id,
            "status": self.status,
            "customerTenantId": self.customer_tenant_id,
            "userPrincipalName": self.user_principal_name,
            "userId": self.user_id,
            "initialPasswordSecretId": self.initial_password_secret_id,
            "error": self.failure.error_message() if self.failure else None,
            "attempts": self.attempts,
            "correlationId": self.correlation_id,
            "completedAt": self.completed_at or utc_now_text(),
        }
        if self.licenses is not None:
            message["licenses"] = self.licenses.as_message()
        if self.traceparent:
            message["traceparent"] = self.traceparent
        return dict(message)

    def to_json(self) -> str:
        return json.dumps(self.as_message(), ensure_ascii=False)


def outcome_from_message(message: dict[str, Any]) -> Outcome | None:
    """An outcome kept in the hire ledger, read back; None when it is not one."""
    try:
        error = message.get("error")
        failure = (
            Failure(
                category=Category(error["category"]),
                message=str(error.get("message", "")),
                http_status=error.get("httpStatus"),
                code=error.get("code"),
            )
            if isinstance(error, dict)
            else None
        )
        return Outcome(
            event_id=message.get("eventId"),
            status=Status(message["status"]),
            customer_tenant_id=message.get("customerTenantId"),
            user_principal_name=message.get("userPrincipalName"),
            correlation_id=message.get("correlationId"),
            attempts=int(message.get("attempts") or 1),
            user_id=message.get("userId"),
            initial_password_secret_id=message.get("initialPasswordSecretId"),
            failure=failure,
            completed_at=str(message.get("completedAt") or ""),
            licenses=_license_report(message.get("licenses")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _license_report(value: object) -> LicenseReport | None:
    if not isinstance(value, dict):
        return None
    failed = tuple(
        LicenseFailure(
            sku_id=str(item["skuId"]),
            category=Category(item["category"]),
            message=str(item.get("message", "")),
            code=item.get("code"),
        )
        for item in value.get("failed") or []
    )
    return LicenseReport(
        assigned=tuple(str(item) for item in value.get("assigned") or []), failed=failed
    )
