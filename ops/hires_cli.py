"""`hires`: what the hire ledger says about each hire (docs/operations.md).

    hires [connection] show <eventId>  [--json]
    hires [connection] list [--state STATE ...] [--outcome STATUS ...] [--customer ID]
                            [--since AGE] [--limit N] [--json]

Connection flags (--settings, --connection-string, --account-url, --table) go before or after
the subcommand; by default the settings come from local.settings.json and the environment, as
for the local host. Read-only: the table is never created and nothing in it changes. A row
this version cannot read is shown as unreadable, and the listing goes on.

Exit status: 0 done; 1 not found, or the ledger could not be read (see stderr); 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ops.cli import (
    EXIT_OK,
    EXIT_USAGE,
    Column,
    ToolError,
    add_connection_options,
    add_json_option,
    connection_parent,
    count_line,
    load_tool_settings,
    print_columns,
    run_guarded,
    storage_target,
    tenant_id,
)
from ops.ledger_view import (
    UNREADABLE,
    ledger_error,
    ledger_table_name,
    open_ledger_read_only,
    require_table,
    row_view,
    updated_key,
)
from ops.render import terminal_safe
from ops.selection import parse_age
from shared.domain.errors import ProvisioningError
from shared.domain.model import HireState
from shared.domain.ports import LedgerQuery

OUTCOME_CHOICES = ("created", "restored", "already_exists", "rejected", "failed")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return terminal_safe(str(value))


def failure_text(view: dict[str, Any]) -> str:
    if view.get("unreadable"):
        return f"unreadable: {view['unreadable']}"
    failure = view.get("lastFailure")
    if isinstance(failure, dict):
        return f"{failure.get('category')}: {failure.get('message')}"
    return ""


def records_columns(views: Sequence[dict[str, Any]]) -> list[Column]:
    def values(pick: Any) -> list[str]:
        return [_text(pick(view)) for view in views]

    return [
        Column("eventId", values(lambda v: v.get("eventId") or "?"), "id", keep=9),
        Column(
            "state",
            values(lambda v: str(v.get("state")) + (" (claimed)" if v.get("claim") else "")),
            "id",
            keep=8,
        ),
        Column("outcome", values(lambda v: v.get("lastOutcome") or ""), "id", keep=7),
        Column("updated", values(lambda v: (updated_key(v) or "")[:19]), "id", keep=4),
        Column("UPN", values(lambda v: v.get("userPrincipalName") or ""), "text", keep=6),
        Column("customer", values(lambda v: v.get("customerTenantId") or ""), "id", keep=2),
        Column("userId", values(lambda v: v.get("userId") or ""), "id", keep=1),
        Column("failure", values(failure_text), "text", keep=5),
    ]


def show_lines(view: dict[str, Any]) -> list[str]:
    """Every member, one per line, nested members as 'outcome.status'; nothing cut short."""
    flat: list[tuple[str, Any]] = []
    for key, value in view.items():
        if isinstance(value, dict) and value:
            flat += [(f"{key}.{inner}", item) for inner, item in value.items()]
        else:
            flat.append((key, value))
    width = max(len(key) for key, _ in flat)
    return [f"{key:>{width}}: {_scalar(value)}" for key, value in flat]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_scalar(item) for item in value) or "-"
    if value is None or value == {}:
        return "-"
    return _text(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hires", description="Read the hire ledger: one record per eventId (read-only)."
    )
    add_connection_options(parser, queue=False, table=True)
    connection = connection_parent(queue=False, table=True)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", parents=[connection], help="one hire's record in full")
    show.add_argument("event_id", metavar="eventId")
    add_json_option(show, "text")
    listing = commands.add_parser(
        "list", parents=[connection], help="records, newest activity first"
    )
    listing.add_argument(
        "--state", action="append", choices=[s.value for s in HireState], default=[]
    )
    listing.add_argument("--outcome", action="append", choices=OUTCOME_CHOICES, default=[])
    listing.add_argument(
        "--customer", type=tenant_id, metavar="TENANT_ID", help="customerTenantId (a GUID)"
    )
    listing.add_argument("--since", help="changed within this age (90m, 2h, 3d, 1w)")
    listing.add_argument("--limit", type=int, default=None, help="show at most N records")
    add_json_option(listing, "table")
    return parser


def main(argv: Sequence[str] | None = None, *, now: datetime | None = None) -> int:
    try:
        arguments = _parser().parse_args(argv)
    except SystemExit as stop:
        return EXIT_USAGE if stop.code else EXIT_OK
    return run_guarded("hires", lambda: _run(arguments, now or datetime.now(UTC)))


def _run(arguments: argparse.Namespace, moment: datetime) -> int:
    settings = load_tool_settings(arguments.settings)
    target = storage_target(arguments, settings)
    ledger = open_ledger_read_only(target, ledger_table_name(arguments.table, settings))
    try:
        require_table(ledger, target)
        if arguments.command == "show":
            return _show(arguments, ledger.read_row(arguments.event_id), moment)
        return _list(arguments, ledger, moment)
    except ProvisioningError as error:
        raise ledger_error(error, ledger, target) from None


def _show(arguments: argparse.Namespace, row: Any, moment: datetime) -> int:
    if row is None:
        raise ToolError(f"no record for eventId {terminal_safe(arguments.event_id)}")
    view = row_view(row, now=moment)
    if arguments.format == "json":
        sys.stdout.write(json.dumps(view, ensure_ascii=True, indent=2) + "\n")
    else:
        for line in show_lines(view):
            print(line)
    return EXIT_OK


def _list(arguments: argparse.Namespace, ledger: Any, moment: datetime) -> int:
    if arguments.limit is not None and arguments.limit < 1:
        raise ToolError("--limit must be at least 1", EXIT_USAGE)
    try:
        since = moment - parse_age(arguments.since) if arguments.since else None
    except ValueError as error:
        raise ToolError(f"--since: {error}", EXIT_USAGE) from None
    customer = arguments.customer
    query = LedgerQuery(
        states=frozenset(HireState(s) for s in arguments.state) or None,
        customer_tenant_id=customer,
        since=since,
    )
    views = [
        view
        for view in (row_view(row, now=moment) for row in ledger.scan(query))
        if not arguments.outcome
        or view.get("lastOutcome") in arguments.outcome
        or view.get("state") == UNREADABLE
    ]
    views.sort(key=updated_key, reverse=True)
    matched = len(views)
    if arguments.limit is not None:
        views = views[: arguments.limit]
    if arguments.format == "json":
        sys.stdout.write(json.dumps(views, ensure_ascii=True, indent=2) + "\n")
    else:
        if views:
            print_columns(records_columns(views), full_hint="hires show <eventId> or --json")
        print(count_line("record", len(views), matched, limit=arguments.limit))
    unreadable = sum(1 for view in views if view.get("unreadable"))
    if unreadable:
        print(
            f"hires: {unreadable} row(s) could not be read as records; shown as they are",
            file=sys.stderr,
        )
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
