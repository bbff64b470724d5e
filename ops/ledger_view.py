"""The hire ledger as operators read it: opened read-only, every row shown, none fatal.

A row another version of the app wrote (a member this one does not know, a value of an
unexpected type, a missing member) is shown as it is, marked unreadable where it makes no
record: `hires` and `poison-queue` carry on with the next row.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from ops.cli import StorageTarget, ToolError, ToolSettings
from shared.adapters.ledger import LedgerRow, TableHireLedger, open_table_ledger
from shared.domain.errors import ProvisioningError
from shared.domain.model import HireRecord, HireState, Send
from shared.settings import DEFAULT_LEDGER_TABLE

LEDGER_TABLE_SETTING = "HIRE_LEDGER_TABLE"
UNREADABLE = "unreadable"
NO_RECORD = "no-record"

# record attribute -> the name operators see (the JSON member); others are camel-cased.
_NAMES = {
    "event_id": "eventId",
    "customer_tenant_id": "customerTenantId",
    "state": "state",
    "user_principal_name": "userPrincipalName",
    "user_id": "userId",
    "password_secret_id": "initialPasswordSecretId",
    "password_expires_on": "passwordExpiresOn",
    "generation": "requestGeneration",
    "create_calls": "createCalls",
    # Creates and restores that may have been applied and are not settled (issue 15).
    "sends": "unsettledSends",
    "attempts": "deliveries",
    "licenses_assigned": "licensesAssigned",
    "last_failure": "lastFailure",
    "last_outcome": "outcome",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
}
_HIDDEN = frozenset({"etag", "claim_owner", "claim_expires_at"})  # shown as "claim"


def ledger_table_name(explicit: str | None, settings: ToolSettings) -> str:
    return explicit or settings.get(LEDGER_TABLE_SETTING) or DEFAULT_LEDGER_TABLE


def open_ledger_read_only(target: StorageTarget, table: str) -> TableHireLedger:
    """The ledger, never created: a wrong table name is reported, not made."""
    # The ledger factory already sets short timeouts and no retries.
    try:
        return open_table_ledger(
            table,
            connection_string=target.connection_string,
            table_service_uri=target.table_service_uri,
            read_only=True,
        )
    except ValueError as error:
        raise ToolError(f"cannot open the hire ledger: {error}") from None


def ledger_error(
    error: ProvisioningError, ledger: TableHireLedger, target: StorageTarget
) -> ToolError:
    """One line: what failed, at which address, and which setting points there."""
    return ToolError(f"{error.failure.message} at {ledger.endpoint} (set by {target.source})")


def require_table(ledger: TableHireLedger, target: StorageTarget) -> None:
    try:
        exists = ledger.table_exists()
    except ProvisioningError as error:
        raise ledger_error(error, ledger, target) from None
    if not exists:
        raise ToolError(
            f"the hire ledger table {ledger.table_name!r} does not exist in that storage "
            f"account (set by {target.source}): check --table / {LEDGER_TABLE_SETTING}; "
            "nothing was created"
        )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_safe(value: Any) -> Any:
    if isinstance(value, Send):
        return json_safe(value.as_json())
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _fits(value: Any, hint: Any) -> bool:
    """A loose isinstance for the record's annotations (unions, tuples, dicts, Any)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        args = typing.get_args(hint)
        return isinstance(value, tuple) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if origin is list:
        return isinstance(value, list)
    if isinstance(hint, type):
        if hint is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, hint)
    return True


def record_problems(record: HireRecord) -> list[str]:
    hints = typing.get_type_hints(HireRecord)
    problems = []
    for each in dataclasses.fields(record):
        value = getattr(record, each.name, None)
        if each.name in hints and not _fits(value, hints[each.name]):
            problems.append(f"{each.name} is {type(value).__name__} {value!r:.40}")
    if isinstance(record.last_outcome, dict) and not isinstance(
        record.last_outcome.get("status", ""), str
    ):
        problems.append("last_outcome.status is not text")
    return problems


def row_view(row: LedgerRow, *, now: datetime) -> dict[str, Any]:
    """One row for an operator: the record's members (unknown ones too), or the raw row."""
    record = row.record
    problems = [row.problem] if row.problem else []
    if record is not None:
        problems += record_problems(record)
    if record is None:
        return {
            "eventId": row.event_id,
            "state": UNREADABLE,
            "unreadable": "; ".join(problems),
            "properties": json_safe(row.properties),
        }
    view: dict[str, Any] = {}
    for attribute, name in _NAMES.items():
        view[name] = json_safe(getattr(record, attribute, None))
    state = record.state
    view["state"] = state.value if isinstance(state, HireState) else UNREADABLE
    stored_state = row.properties.get("State")
    if isinstance(state, HireState) and stored_state not in (None, state.value):
        problems.append(f"unknown state {stored_state!r} (read as {state.value})")
    outcome = record.last_outcome if isinstance(record.last_outcome, dict) else {}
    status = outcome.get("status")
    view["lastOutcome"] = status if isinstance(status, str) else None
    owner, expires = record.claim_owner, record.claim_expires_at
    live = owner is not None and isinstance(expires, datetime) and expires > now
    view["claim"] = (
        {"owner": json_safe(owner), "expiresAt": json_safe(expires)} if live else None
    )
    for each in dataclasses.fields(record):  # members added since: shown, never dropped
        if each.name not in _NAMES and each.name not in _HIDDEN:
            view[_camel(each.name)] = json_safe(getattr(record, each.name, None))
    if problems:
        view["unreadable"] = "; ".join(problems)
    return view


def state_summary(view: dict[str, Any] | None) -> str:
    """For a poison message's ledger column: 'created (last: created)', 'no record'..."""
    if view is None:
        return "no record"
    if view.get("state") == UNREADABLE:
        return "unreadable row"
    last = view.get("lastOutcome")
    return str(view.get("state")) + (f" (last: {last})" if last else "")


def updated_key(view: dict[str, Any]) -> str:
    value = view.get("updatedAt")
    return value if isinstance(value, str) else ""

