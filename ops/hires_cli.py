"""`hires`: what the hire ledger says about each hire (docs/operations.md).

    hires show <eventId>  [--format text|json]
    hires list [--state STATE ...] [--outcome STATUS ...] [--customer ID] [--since AGE]
               [--limit N] [--format table|json]

Read-only: nothing here changes a record. Exit status: 0 done; 1 not found or the ledger
could not be read (see stderr); 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ops.selection import parse_age
from shared.errors import ProvisioningError
from shared.ledger import open_table_ledger
from shared.model import HireRecord, HireState
from shared.ports import HireLedger, LedgerQuery
from shared.settings import DEFAULT_LEDGER_TABLE, STORAGE_CONNECTION_SETTING

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
TABLE_SERVICE_URI_SETTING = f"{STORAGE_CONNECTION_SETTING}__tableServiceUri"
OUTCOME_CHOICES = ("created", "restored", "already_exists", "rejected", "failed")


def record_as_json(record: HireRecord, *, now: datetime) -> dict[str, Any]:
    """The operator's view of a record: everything in it (nothing in it is secret)."""
    claim_live = record.claim_owner is not None and (
        record.claim_expires_at is not None and record.claim_expires_at > now
    )
    return {
        "eventId": record.event_id,
        "customerTenantId": record.customer_tenant_id,
        "state": record.state.value,
        "lastOutcome": (record.last_outcome or {}).get("status"),
        "userPrincipalName": record.user_principal_name,
        "userId": record.user_id,
        "initialPasswordSecretId": record.password_secret_id,
        "passwordExpiresOn": _when(record.password_expires_on),
        "requestGeneration": record.generation,
        "createCalls": record.create_calls,
        "deliveries": record.attempts,
        "claim": (
            {"owner": record.claim_owner, "expiresAt": _when(record.claim_expires_at)}
            if claim_live
            else None
        ),
        "licensesAssigned": list(record.licenses_assigned),
        "lastFailure": record.last_failure,
        "outcome": record.last_outcome,
        "createdAt": _when(record.created_at),
        "updatedAt": _when(record.updated_at),
    }


def _when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _safe(value: object) -> Text:
    """Values come from HR events: never let control or escape sequences reach the terminal."""
    text = "" if value is None else str(value)
    return Text("".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text))


def records_table(records: Sequence[dict[str, Any]]) -> Table:
    table = Table(title=f"Hire ledger ({len(records)} records)", show_lines=False)
    for column in (
        "eventId",
        "state",
        "outcome",
        "customer",
        "UPN",
        "userId",
        "updated",
        "failure",
    ):
        table.add_column(column, overflow="fold")
    for item in records:
        failure = item["lastFailure"] or {}
        table.add_row(
            _safe(item["eventId"]),
            _safe(item["state"] + (" (claimed)" if item["claim"] else "")),
            _safe(item["lastOutcome"] or ""),
            _safe(item["customerTenantId"]),
            _safe(item["userPrincipalName"]),
            _safe(item["userId"] or ""),
            _safe(item["updatedAt"] or ""),
            _safe(f"{failure.get('category')}: {failure.get('message')}" if failure else ""),
        )
    return table


def show_lines(item: dict[str, Any]) -> list[Text]:
    lines = []
    for key, value in item.items():
        if isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=True)
        lines.append(_safe(f"{key:>24}: {'' if value is None else value}"))
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hires", description="Read the hire ledger: one record per eventId."
    )
    parser.add_argument(
        "--connection-string",
        help=f"storage connection string (default: the {STORAGE_CONNECTION_SETTING} setting)",
    )
    parser.add_argument(
        "--account-url",
        help="table service URL, used with your Entra sign-in "
        f"(default: the {TABLE_SERVICE_URI_SETTING} setting)",
    )
    parser.add_argument(
        "--table", help=f"ledger table (default: HIRE_LEDGER_TABLE or {DEFAULT_LEDGER_TABLE})"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="one hire's record")
    show.add_argument("event_id", metavar="eventId")
    show.add_argument("--format", choices=("text", "json"), default="text")
    listing = commands.add_parser("list", help="records, newest activity first")
    listing.add_argument(
        "--state", action="append", choices=[s.value for s in HireState], default=[]
    )
    listing.add_argument("--outcome", action="append", choices=OUTCOME_CHOICES, default=[])
    listing.add_argument("--customer", help="customerTenantId")
    listing.add_argument("--since", help="changed within this age (90m, 2h, 3d, 1w)")
    listing.add_argument("--limit", type=int, default=None)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def open_ledger(arguments: argparse.Namespace) -> HireLedger:
    table = arguments.table or os.environ.get("HIRE_LEDGER_TABLE") or DEFAULT_LEDGER_TABLE
    connection = arguments.connection_string or (
        None if arguments.account_url else os.environ.get(STORAGE_CONNECTION_SETTING)
    )
    account_url = arguments.account_url or os.environ.get(TABLE_SERVICE_URI_SETTING)
    if not connection and not account_url:
        raise ValueError(
            f"say where the ledger is: --connection-string or {STORAGE_CONNECTION_SETTING}, "
            f"or --account-url or {TABLE_SERVICE_URI_SETTING}"
        )
    return open_table_ledger(table, connection_string=connection, table_service_uri=account_url)


def main(argv: Sequence[str] | None = None, *, now: datetime | None = None) -> int:
    # Off a terminal (a pipe, a file) the table keeps whole values instead of folding them.
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 400)
    err = Console(stderr=True, highlight=False)
    try:
        arguments = _parser().parse_args(argv)
    except SystemExit as stop:
        return EXIT_USAGE if stop.code else EXIT_OK
    moment = now or datetime.now(UTC)
    try:
        ledger = open_ledger(arguments)
        if arguments.command == "show":
            record = ledger.get(arguments.event_id)
            if record is None:
                err.print(_safe(f"hires: no record for eventId {arguments.event_id}"))
                return EXIT_FAILED
            item = record_as_json(record, now=moment)
            if arguments.format == "json":
                sys.stdout.write(json.dumps(item, ensure_ascii=True, indent=2) + "\n")
            else:
                for line in show_lines(item):
                    out.print(line)
            return EXIT_OK
        since = moment - parse_age(arguments.since) if arguments.since else None
        if arguments.limit is not None and arguments.limit < 1:
            raise ValueError("--limit must be at least 1")
        query = LedgerQuery(
            states=frozenset(HireState(s) for s in arguments.state) or None,
            customer_tenant_id=arguments.customer.lower() if arguments.customer else None,
            since=since,
        )
        items = [
            record_as_json(record, now=moment)
            for record in ledger.query(query)
            if not arguments.outcome
            or (record.last_outcome or {}).get("status") in arguments.outcome
        ]
        items.sort(key=lambda item: item["updatedAt"] or "", reverse=True)
        if arguments.limit is not None:
            items = items[: arguments.limit]
        if arguments.format == "json":
            sys.stdout.write(json.dumps(items, ensure_ascii=True, indent=2) + "\n")
        else:
            out.print(records_table(items))
        return EXIT_OK
    except ValueError as error:
        err.print(_safe(f"hires: {error}"))
        return EXIT_USAGE
    except ProvisioningError as error:
        err.print(_safe(f"hires: {error}"))
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
