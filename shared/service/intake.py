"""HR's HTTP front door (docs/contract.md section 6): intake of hire events, status of a hire.

Decisions only: no SDK and no HTTP library. ``function_app.py`` hands over the request's
body, its address and the caller's App Service principal header; the answer comes back as an
``HttpAnswer``. Each event is checked by the queue function's own reading
(``shared.domain.events.decode_body`` and ``parse_event``), so an event refused here would have
been refused on the queue with the same field, rule and message, and an accepted one is
queued unchanged. The answer models below are the source of ``docs/openapi.json``
(``python -m devtools.openapi`` writes it; a test compares the two).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from shared.domain import jsontext
from shared.domain.errors import ProvisioningError
from shared.domain.events import (
    InvalidEvent,
    decode_body,
    find_password,
    invalid_event_message,
    parse_event,
)
from shared.domain.model import PASSWORD_STATES, HireRecord, HireState
from shared.domain.outcomes import Category, Status
from shared.domain.ports import HireReader, RequestQueue
from shared.settings import HttpAccess, HttpAccessSettings

logger = logging.getLogger(__name__)

MAX_EVENTS = 100
# 100 events of a realistic size (about 1 KiB each) fit many times over; a body this large
# is not an HR batch but a mistake or an attack, refused before it is read.
MAX_REQUEST_BYTES = 1024 * 1024
BATCH_MEMBER = "events"
# App roles of the API's app registration, one per route (Entra ID access).
SUBMIT_ROLE = "Hires.Submit"
READ_ROLE = "Hires.Read"
STATUS_PATH = "/api/hires/"
RETRY_AFTER_SECONDS = 10
# Claim types App Service authentication uses for app roles and for the calling application.
_ROLE_CLAIMS = frozenset({"roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})
_CLIENT_CLAIMS = ("appid", "azp")
_MAX_PRINCIPAL_HEADER = 64 * 1024


# ---------------------------------------------------------------------------- answer models


class _Answer(BaseModel):
    # Python names in code, the contract's camelCase on the wire (and in docs/openapi.json).
    model_config = ConfigDict(extra="forbid", frozen=True)


class Refusal(_Answer):
    """Why an event was not queued: the field, the rule, and the outcome's message."""

    category: Literal["invalid_event", "unavailable"] = Field(
        description="invalid_event: the event breaks the contract and was never queued; "
        "unavailable: the request queue could not be written (post the event again)"
    )
    message: str = Field(description="what the outcome on the result queue would say")
    field: str = Field(description='the offending member as a dotted path ("" for the whole event)')
    rule: str = Field(description="the rule the member breaks; never quotes a value")


class AcceptedResult(_Answer):
    index: int = Field(description="position of the event in the request (0 for a single event)")
    event_id: str = Field(serialization_alias="eventId")
    accepted: Literal[True]
    status_url: str = Field(
        serialization_alias="statusUrl", description="GET it for the hire's status"
    )
    already_known: bool | None = Field(
        serialization_alias="alreadyKnown",
        description="the ledger already knew this eventId before this post (null: the ledger "
        "could not be read). Processing is idempotent: it is queued again and creates nothing "
        "twice",
    )
    known_state: HireState | None = Field(
        serialization_alias="knownState",
        description="the ledger's state of the hire before this post",
    )
    note: str | None = None


class RefusedResult(_Answer):
    index: int = Field(description="position of the event in the request (0 for a single event)")
    event_id: str | None = Field(
        serialization_alias="eventId", description="null when the event has no usable eventId"
    )
    accepted: Literal[False]
    error: Refusal


class IntakeAnswer(_Answer):
    """202 (every event accepted or refused) or 503 (the queue failed part way)."""

    results: list[AcceptedResult | RefusedResult]


class Problem(_Answer):
    code: Literal[
        "not_json", "bad_request", "too_large", "unauthorized", "forbidden", "not_found",
        "unavailable",
    ]
    message: str
    field: str | None = Field(default=None, description="where in the body, when known")


class ErrorAnswer(_Answer):
    """400, 401, 403, 404, 413, 503."""

    error: Problem


class LastFailure(_Answer):
    category: Category
    message: str


class LicenseFailureView(_Answer):
    sku_id: str = Field(serialization_alias="skuId")
    category: Category
    message: str


class LicensesView(_Answer):
    assigned: list[str]
    failed: list[LicenseFailureView]


class HireStatus(_Answer):
    """A hire as the ledger knows it. Nothing in it is secret."""

    event_id: str = Field(serialization_alias="eventId")
    state: HireState = Field(description="how far the hire got (the ledger's state)")
    status: Status | None = Field(description="status of the last outcome; null before the first")
    customer_tenant_id: str = Field(serialization_alias="customerTenantId")
    user_principal_name: str | None = Field(serialization_alias="userPrincipalName")
    user_id: str | None = Field(serialization_alias="userId")
    initial_password_secret_id: str | None = Field(
        serialization_alias="initialPasswordSecretId",
        description="the Key Vault secret id of the user's initial password (never the value)",
    )
    licenses: LicensesView | None
    last_failure: LastFailure | None = Field(serialization_alias="lastFailure")
    attempts: int
    created_at: str | None = Field(serialization_alias="createdAt")
    updated_at: str | None = Field(serialization_alias="updatedAt")
    completed_at: str | None = Field(
        serialization_alias="completedAt", description="when the last outcome was written"
    )


# ---------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: _Answer
    headers: Mapping[str, str] = field(default_factory=dict)

    def body_bytes(self) -> bytes:
        return self.body.model_dump_json(by_alias=True).encode("utf-8")


@dataclass(frozen=True)
class _Valid:
    index: int
    event_id: str
    body: bytes


class HireIntake:
    """``POST /api/hires`` and ``GET /api/hires/{eventId}`` behind their access check."""

    def __init__(
        self, queue: RequestQueue, ledger: HireReader, access: HttpAccessSettings
    ) -> None:
        self._queue = queue
        self._ledger = ledger
        self._access = access

    @property
    def access(self) -> HttpAccessSettings:
        return self._access

    def submit(self, body: bytes, *, base_url: str, principal: str | None) -> HttpAnswer:
        """Validate each event, queue the valid ones, refuse the others; ``base_url`` is the
        app's scheme and host (``https://func.example.net``) for the status addresses."""
        refused = check_access(self._access, principal, SUBMIT_ROLE)
        if refused is not None:
            return refused
        if len(body) > MAX_REQUEST_BYTES:
            return _problem(
                413, "too_large", f"the body is larger than {MAX_REQUEST_BYTES} bytes; "
                f"send at most {MAX_EVENTS} events per request"
            )
        events = _read_request(body)
        if isinstance(events, HttpAnswer):
            return events
        checked = [self._check(index, raw) for index, raw in enumerate(events)]
        return self._queue_valid(checked, base_url)

    def status(self, event_id: str, *, principal: str | None) -> HttpAnswer:
        refused = check_access(self._access, principal, READ_ROLE)
        if refused is not None:
            return refused
        unknown = _problem(404, "not_found", "the ledger has no hire with this eventId")
        if not event_id or len(event_id) > 128:
            return unknown
        try:
            record = self._ledger.get(event_id)
        except ProvisioningError as error:
            return _problem(
                503, "unavailable", f"the hire ledger cannot be read now: {error.failure.message}",
                retry=True,
            )
        if record is None:
            return unknown
        return HttpAnswer(200, hire_status(record))

    # -- one event

    def _check(self, index: int, raw: bytes) -> _Valid | RefusedResult:
        """The queue function's reading of one message body, and the queue's size limit."""
        try:
            event = parse_event(decode_body(raw))
        except InvalidEvent as error:
            return _refused(index, error)
        if len(raw) > self._queue.max_body_bytes:
            return _refused(
                index,
                InvalidEvent(
                    "",
                    f"the event is {len(raw)} bytes; a queue message carries at most "
                    f"{self._queue.max_body_bytes} bytes of event",
                    event_id=event.event_id,
                ),
            )
        return _Valid(index, event.event_id, raw)

    def _queue_valid(
        self, checked: Sequence[_Valid | RefusedResult], base_url: str
    ) -> HttpAnswer:
        results: list[AcceptedResult | RefusedResult] = []
        queue_failure: str | None = None
        for item in checked:
            if isinstance(item, RefusedResult):
                # Field and rule never quote a value from the event (shared.domain.events).
                logger.info(
                    "HTTP intake refused event %r (index %d): %s: %s",
                    item.event_id,
                    item.index,
                    item.error.field or "(the event)",
                    item.error.rule,
                )
                results.append(item)
                continue
            if queue_failure is not None:
                results.append(_unqueued(item, queue_failure))
                continue
            known = self._known(item.event_id)  # before queueing: the function may be quick
            try:
                self._queue.send(item.body)
            except ProvisioningError as error:
                queue_failure = error.failure.message
                results.append(_unqueued(item, queue_failure))
                continue
            results.append(_accepted(item, known, base_url))
        accepted = sum(1 for r in results if isinstance(r, AcceptedResult))
        logger.info(
            "HTTP intake: %d event(s) queued, %d refused", accepted, len(results) - accepted
        )
        if queue_failure is not None:
            return HttpAnswer(
                503, IntakeAnswer(results=results), {"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        return HttpAnswer(202, IntakeAnswer(results=results))

    def _known(self, event_id: str) -> HireRecord | bool | None:
        try:
            record = self._ledger.get(event_id)
        except ProvisioningError:
            return None
        return record if record is not None else False


def _read_request(body: bytes) -> list[bytes] | HttpAnswer:
    """The events of a request as message bodies, or the answer refusing the whole request.

    A single event is its body, byte for byte, so the queue function reads exactly what was
    posted. A batch is read strictly as a whole (a repeated member name anywhere in it has no
    single meaning, so nothing of it is queued); each event is then written out compactly.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return _problem(400, "not_json", f"the body is not UTF-8 text (byte {error.start})")
    try:
        # Lenient here: a single event with a repeated member name is the queue function's to
        # refuse, per event, with its eventId. Two levels more for {"events": [...]}.
        document = jsontext.parse(
            text, max_depth=jsontext.MAX_DEPTH + 2, repeated_members=True, lone_surrogates=True
        )
    except jsontext.JsonRejected as error:
        return _problem(400, "not_json", f"the body is not JSON this service reads: {error}")
    if not isinstance(document, dict):
        return _problem(
            400, "bad_request", 'the body must be a hire event (a JSON object) or {"events": [...]}'
        )
    if BATCH_MEMBER not in document:
        return [body]
    try:
        document = jsontext.parse(text, max_depth=jsontext.MAX_DEPTH + 2)
    except jsontext.JsonRejected as error:
        return _problem(
            400, "bad_request",
            f"the batch cannot be read one way: {error.rule}; nothing was queued",
            field=error.field or None,
        )
    events = document[BATCH_MEMBER]
    password = find_password({k: v for k, v in document.items() if k != BATCH_MEMBER})
    if password is not None:
        return _problem(
            400, "bad_request",
            "passwords are never accepted from the HR system; remove it; nothing was queued",
            field=password,
        )
    if not isinstance(events, list) or not events:
        return _problem(
            400, "bad_request", f"{BATCH_MEMBER} must be a JSON array of 1 to {MAX_EVENTS} events",
            field=BATCH_MEMBER,
        )
    if len(events) > MAX_EVENTS:
        return _problem(
            413, "too_large", f"the batch holds {len(events)} events; at most {MAX_EVENTS}",
            field=BATCH_MEMBER,
        )
    return [jsontext.dump_bytes(event) for event in events]


def _refused(index: int, error: InvalidEvent) -> RefusedResult:
    return RefusedResult(
        index=index,
        event_id=error.event_id,
        accepted=False,
        error=Refusal(
            category="invalid_event",
            message=invalid_event_message(error),
            field=error.field,
            rule=error.rule,
        ),
    )


def _unqueued(item: _Valid, reason: str) -> RefusedResult:
    return RefusedResult(
        index=item.index,
        event_id=item.event_id,
        accepted=False,
        error=Refusal(
            category="unavailable",
            message=f"the request queue cannot be written now ({reason}); post the event again",
            field="",
            rule="the event is valid but was not queued",
        ),
    )


def _accepted(item: _Valid, known: HireRecord | bool | None, base_url: str) -> AcceptedResult:
    record = known if isinstance(known, HireRecord) else None
    note = None
    if record is not None:
        note = (
            f"the ledger already knows this hire (state {record.state.value}); it is queued "
            "again and processing it again creates nothing twice"
        )
    return AcceptedResult(
        index=item.index,
        event_id=item.event_id,
        accepted=True,
        status_url=status_url(base_url, item.event_id),
        already_known=None if known is None else record is not None,
        known_state=record.state if record is not None else None,
        note=note,
    )


def status_url(base_url: str, event_id: str) -> str:
    return f"{base_url.rstrip('/')}{STATUS_PATH}{quote(event_id, safe='')}"


def _problem(
    status: int, code: str, message: str, *, field: str | None = None, retry: bool = False
) -> HttpAnswer:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if retry else {}
    return HttpAnswer(
        status,
        ErrorAnswer(
            error=Problem.model_validate({"code": code, "message": message, "field": field})
        ),
        headers,
    )


# ---------------------------------------------------------------------------- the status


def hire_status(record: HireRecord) -> HireStatus:
    """The one mapping from a ledger record to the status answer (extend it here)."""
    outcome = record.last_outcome if isinstance(record.last_outcome, dict) else {}
    failure = record.last_failure if isinstance(record.last_failure, dict) else None
    return HireStatus(
        event_id=record.event_id,
        state=record.state,
        status=_status_of(outcome.get("status")),
        customer_tenant_id=record.customer_tenant_id,
        user_principal_name=record.user_principal_name,
        user_id=record.user_id,
        # Only where the recorded secret holds the user's password (shared.domain.model).
        initial_password_secret_id=(
            record.password_secret_id if record.state in PASSWORD_STATES else None
        ),
        licenses=_licenses(record, outcome.get("licenses")),
        last_failure=_last_failure(failure),
        attempts=record.attempts,
        created_at=_time_text(record.created_at),
        updated_at=_time_text(record.updated_at),
        completed_at=_text(outcome.get("completedAt")),
    )


def _status_of(value: object) -> Status | None:
    try:
        return Status(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _category(value: object) -> Category | None:
    try:
        return Category(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _last_failure(failure: dict[str, Any] | None) -> LastFailure | None:
    if failure is None:
        return None
    category = _category(failure.get("category"))
    if category is None:
        return None
    return LastFailure(category=category, message=str(failure.get("message") or ""))


def _licenses(record: HireRecord, reported: object) -> LicensesView | None:
    failed: list[LicenseFailureView] = []
    if isinstance(reported, dict):
        for item in reported.get("failed") or []:
            category = _category(item.get("category")) if isinstance(item, dict) else None
            if category is not None:
                failed.append(
                    LicenseFailureView(
                        sku_id=str(item.get("skuId")),
                        category=category,
                        message=str(item.get("message") or ""),
                    )
                )
    if not record.licenses_assigned and not failed and not isinstance(reported, dict):
        return None
    return LicensesView(assigned=list(record.licenses_assigned), failed=failed)


def _time_text(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------- access


def check_access(
    access: HttpAccessSettings, principal: str | None, role: str
) -> HttpAnswer | None:
    """None when the caller may use the route; otherwise the 401 or 403 answer.

    With function keys the Functions host has already checked the route's key. With Entra ID,
    App Service authentication has validated the caller's token and put its claims in the
    ``X-MS-CLIENT-PRINCIPAL`` header (a client cannot set it); the app role is checked here.
    Without App Service authentication that header proves nothing, so every call is refused.
    """
    if access.mode is HttpAccess.FUNCTION_KEY:
        return None
    if not access.easy_auth_enabled:
        logger.error(
            "HIRES_HTTP_AUTH=entra but App Service authentication is off: refusing the call"
        )
        return _problem(
            401, "unauthorized",
            "Entra ID access is configured but App Service authentication is not enabled",
        )
    claims = _principal_claims(principal)
    if claims is None:
        return _problem(401, "unauthorized", "no authenticated caller: send an Entra ID token")
    if access.allowed_client_ids:
        clients = {value.lower() for typ, value in claims if typ in _CLIENT_CLAIMS}
        if not clients & access.allowed_client_ids:
            return _problem(403, "forbidden", "this client application may not call the API")
    if role not in {value for typ, value in claims if typ in _ROLE_CLAIMS}:
        return _problem(403, "forbidden", f"the caller lacks the app role {role}")
    return None


def _principal_claims(header: str | None) -> list[tuple[str, str]] | None:
    """The (type, value) claims of App Service's principal header; None when unusable."""
    if not header or len(header) > _MAX_PRINCIPAL_HEADER:
        return None
    try:
        document = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("claims"), list):
        return None
    role_type = document.get("role_typ")
    claims: list[tuple[str, str]] = []
    for claim in document["claims"]:
        if isinstance(claim, dict):
            typ, val = claim.get("typ"), claim.get("val")
            if isinstance(typ, str) and isinstance(val, str):
                claims.append(("roles" if typ == role_type else typ, val))
    return claims
