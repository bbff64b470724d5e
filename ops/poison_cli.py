"""`poison-queue`: inspect, export and replay the poison queue (docs/operations.md).

    poison-queue [connection] list    [filters] [--limit N] [--json]
    poison-queue [connection] show    <message-id | eventId> [--json]
    poison-queue [connection] replay  [filters] [--limit N] [--dry-run] [--yes] [--force]
                                      [--from-file FILE.jsonl] [--json]
    poison-queue [connection] export  --output FILE.jsonl [filters] [--delete-after] [--yes]

Connection flags (--settings, --connection-string, --account-url, --queue, --table) go before
or after the subcommand; by default they come from local.settings.json and the environment,
as for the local host. Nothing here creates a queue or a table.

Exit status: 0 done; 1 something failed or nothing matched (see stderr); 2 bad usage, a
confirmation refused or cancelled, or a replay that would fail again without --force.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from rich.console import Console
from rich.prompt import Confirm
from rich.text import Text

from ops.audit import AuditTrail, current_operator
from ops.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    StorageTarget,
    ToolError,
    ToolSettings,
    add_connection_options,
    add_json_option,
    client_options,
    connection_parent,
    count_line,
    describe_storage_error,
    load_tool_settings,
    print_columns,
    run_guarded,
    storage_target,
    tenant_id,
)
from ops.export import export_poison_queue, read_export
from ops.ledger_view import (
    ledger_table_name,
    open_ledger_read_only,
    row_view,
)
from ops.messages import MessageEncoding, PoisonMessage
from ops.poison_queue import (
    DEFAULT_LEASE_SECONDS,
    OperatorError,
    Queues,
    ReplayReport,
    approximate_message_count,
    first_line,
    read_poison_queue,
    replay_entries,
    replay_poison_queue,
    require_queue,
)
from ops.render import (
    ProgressBar,
    list_record,
    messages_columns,
    plan_columns,
    print_left_in_place,
    print_replay_problems,
    report_summary,
    show_record,
    show_text,
)
from ops.selection import (
    CATEGORY_CHOICES,
    ReplayPlan,
    Selection,
    fails_unchanged,
    parse_age,
    plan_replay,
    unmatched_names,
)
from shared.adapters.ledger import TableHireLedger
from shared.domain.errors import ProvisioningError
from shared.hostconfig import QueueHostConfig
from shared.settings import DEFAULT_REQUEST_QUEUE

MAX_LEASE_SECONDS = 7 * 24 * 3600  # the service's limit for a visibility timeout
REQUEST_QUEUE_SETTING = "REQUEST_QUEUE_NAME"
LedgerViews = dict[str, dict[str, Any] | None]


@dataclass(frozen=True)
class Session:
    """What every command needs, built once from the arguments."""

    queues: Queues
    encoding: MessageEncoding
    selection: Selection
    audit: AuditTrail
    now: datetime
    err: Console
    lease_seconds: int
    open_ledger: Callable[[], TableHireLedger | None] = lambda: None
    _opened: dict[str, TableHireLedger | None] = field(default_factory=dict)

    @property
    def ledger(self) -> TableHireLedger | None:
        """Opened on first use: after the queue has answered, so an unreachable account is
        reported once, by the queue, and a command that shows no states never asks."""
        if "ledger" not in self._opened:
            self._opened["ledger"] = self.open_ledger()
        return self._opened["ledger"]

    @property
    def ledger_consulted(self) -> bool:
        return self._opened.get("ledger") is not None

    def ledger_views(self, messages: list[PoisonMessage]) -> LedgerViews:
        """Each event's ledger record (None: no record), next to its poison copy (read-only)."""
        views: LedgerViews = {}
        if not any(m.event_id for m in messages) or self.ledger is None:
            return views
        for event_id in dict.fromkeys(m.event_id for m in messages if m.event_id):
            try:
                row = self.ledger.read_row(event_id)
            except ProvisioningError as error:  # the poison queue is what matters: carry on
                self.err.print(
                    Text(f"note: the hire ledger could not be read ({error.failure.message})")
                )
                return {}
            views[event_id] = None if row is None else row_view(row, now=self.now)
        return views

    def record(
        self,
        action: str,
        counts: Mapping[str, int],
        *,
        dry_run: bool = False,
        details: Mapping[str, object] | None = None,
    ) -> None:
        details = dict(details or {})
        if not self.selection.is_everything:
            details["selection"] = self.selection.describe()
        self.audit.record(
            action,
            at=self.now,
            account=self.queues.poison.account_name or "",
            queue=self.queues.poison.queue_name,
            counts=counts,
            dry_run=dry_run,
            details=details,
        )


# --- argument parsing -------------------------------------------------------------------


def _age(text: str) -> timedelta:
    try:
        return parse_age(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _lease_seconds(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_LEASE_SECONDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_LEASE_SECONDS} (7 days)")
    return value


def default_message_encoding() -> MessageEncoding:
    """The app's own host.json setting, so the tool reads what the host writes."""
    configured = QueueHostConfig.load().message_encoding
    known = {encoding.value for encoding in MessageEncoding}
    return MessageEncoding(configured) if configured in known else MessageEncoding.BASE64


def build_parser() -> argparse.ArgumentParser:
    connection = connection_parent(queue=True, table=True)
    common = argparse.ArgumentParser(add_help=False, parents=[connection])
    storage = common.add_argument_group("queues")
    storage.add_argument(
        "--message-encoding",
        choices=[encoding.value for encoding in MessageEncoding],
        default=default_message_encoding().value,
        help="how bodies sit on the queues (default: host.json's "
        "extensions.queues.messageEncoding, %(default)s)",
    )
    storage.add_argument(
        "--lease-seconds",
        type=_lease_seconds,
        default=DEFAULT_LEASE_SECONDS,
        help="how long received messages stay invisible to others while this tool holds them; "
        "released as soon as the command ends (default: %(default)s)",
    )
    audit = common.add_argument_group("audit")
    audit.add_argument("--operator", help="who is acting (default: the OS user)")
    audit.add_argument("--audit-file", type=Path, help="also append audit lines to this file")

    filters = argparse.ArgumentParser(add_help=False)
    group = filters.add_argument_group("filters (combine with AND; a repeated filter ORs)")
    group.add_argument("--category", action="append", choices=CATEGORY_CHOICES, default=[])
    group.add_argument(
        "--customer",
        action="append",
        default=[],
        type=tenant_id,
        metavar="TENANT_ID",
        help="customerTenantId (a GUID)",
    )
    group.add_argument("--event-id", action="append", default=[])
    group.add_argument("--message-id", action="append", default=[])
    group.add_argument("--older-than", type=_age, metavar="AGE", help="poisoned before, e.g. 3d")
    group.add_argument("--newer-than", type=_age, metavar="AGE", help="poisoned within, e.g. 2h")

    parser = argparse.ArgumentParser(
        prog="poison-queue", description="Inspect, export and replay the poison queue."
    )
    add_connection_options(parser, queue=True, table=True)
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser(
        "list", parents=[common, filters], help="one row per poison message"
    )
    listing.add_argument("--limit", type=_positive_int, help="show at most N messages")
    add_json_option(listing, "table")
    listing.set_defaults(handler=run_list)

    show = commands.add_parser("show", parents=[common], help="one message in full")
    show.add_argument("target", metavar="MESSAGE_ID_OR_EVENT_ID")
    add_json_option(show, "text")
    show.set_defaults(handler=run_show)

    replay = commands.add_parser(
        "replay", parents=[common, filters], help="move messages back to the request queue"
    )
    replay.add_argument("--dry-run", action="store_true", help="change nothing; show the plan")
    replay.add_argument("--limit", type=_positive_int, help="replay at most N events")
    replay.add_argument("--yes", action="store_true", help="no confirmation for everything")
    replay.add_argument(
        "--force",
        action="store_true",
        help="also replay copies that would fail again unchanged (invalid_event, validation, "
        "conflict, not-an-event)",
    )
    replay.add_argument(
        "--from-file", type=Path, metavar="FILE.jsonl", help="replay an export file instead"
    )
    add_json_option(replay, "text")
    replay.set_defaults(handler=run_replay)

    export = commands.add_parser(
        "export", parents=[common, filters], help="write messages to a JSON Lines file (0600)"
    )
    export.add_argument("--output", type=Path, required=True, metavar="FILE.jsonl")
    export.add_argument(
        "--delete-after",
        action="store_true",
        help="delete the exported messages once the file is safely on disk",
    )
    export.add_argument("--yes", action="store_true", help="no confirmation for everything")
    add_json_option(export, "text")
    export.set_defaults(handler=run_export)
    return parser


def request_queue_name(args: argparse.Namespace, settings: ToolSettings) -> str:
    return args.queue or settings.get(REQUEST_QUEUE_SETTING) or DEFAULT_REQUEST_QUEUE


def ledger_from(
    args: argparse.Namespace, target: StorageTarget, settings: ToolSettings, err: Console
) -> TableHireLedger | None:
    """The hire ledger in the same storage account, to show each event's state (optional).

    Opened read-only; a missing table is an error when named with --table, else a note.
    """
    if target.connection_string is None and target.table_service_uri is None:
        return None
    table = ledger_table_name(args.table, settings)
    try:
        ledger = open_ledger_read_only(target, table)
        exists = ledger.table_exists()
    except (ToolError, ProvisioningError) as error:
        err.print(Text(f"note: the hire ledger is not shown ({error})"))
        return None
    if exists:
        return ledger
    message = f"the hire ledger table {table!r} does not exist (nothing was created)"
    if args.table:
        raise ToolError(f"{message}: check --table")
    err.print(Text(f"note: {message}; ledger states are not shown"), highlight=False)
    return None


def selection_from(args: argparse.Namespace) -> Selection:
    return Selection(
        categories=frozenset(getattr(args, "category", [])),
        customers=frozenset(getattr(args, "customer", [])),
        event_ids=frozenset(getattr(args, "event_id", [])),
        message_ids=frozenset(getattr(args, "message_id", [])),
        older_than=getattr(args, "older_than", None),
        newer_than=getattr(args, "newer_than", None),
    )


def mass_action_allowed(
    question: str, *, assume_yes: bool, interactive: bool, ask: Callable[[str], bool]
) -> bool:
    """Acting on every message needs --yes, or a person at a terminal answering yes."""
    if assume_yes:
        return True
    if not interactive:
        return False
    return ask(question)


# --- checks before anything moves --------------------------------------------------------


def require_matches(
    selection: Selection, candidates: Sequence[PoisonMessage], selected: Sequence[PoisonMessage]
) -> None:
    """Named ids that match nothing, or filters that select nothing, stop the command."""
    missing = unmatched_names(selection, candidates)
    if missing:
        raise ToolError(
            "no poison message has " + ", ".join(missing) + " (check the spelling, or "
            "`poison-queue list`); nothing was changed"
        )
    if not selected:
        raise ToolError("no poison message matches the selection; nothing was changed")


def doomed(plan: ReplayPlan) -> list[tuple[PoisonMessage, str]]:
    return [
        (item.chosen, reason)
        for item in plan.items
        if (reason := fails_unchanged(item.chosen)) is not None
    ]


def refuse_doomed(plan: ReplayPlan, *, force: bool, err: Console) -> None:
    """Copies that would come straight back: refused without --force, warned about with it."""
    found = doomed(plan)
    if not found:
        return
    for message, reason in found[:20]:
        err.print(
            Text(
                f"warning: {message.event_id or message.message_id} ({message.category}) "
                f"would fail again unchanged: {reason}"
            ),
            highlight=False,
        )
    if len(found) > 20:
        err.print(f"warning: ... and {len(found) - 20} more", highlight=False)
    if not force:
        raise ToolError(
            f"{len(found)} of the selected copies would fail again unchanged; nothing was "
            "replayed. Fix them first, narrow the selection (--category), or pass --force",
            EXIT_USAGE,
        )


# --- commands ---------------------------------------------------------------------------


def _read(session: Session) -> list[PoisonMessage]:
    require_queue(session.queues.poison)
    return read_poison_queue(
        session.queues.poison, session.encoding, lease_seconds=session.lease_seconds
    )


def _require_named(session: Session, messages: Sequence[PoisonMessage]) -> None:
    missing = unmatched_names(session.selection, messages)
    if missing:
        raise ToolError("no poison message has " + ", ".join(missing))


def run_list(args: argparse.Namespace, session: Session) -> int:
    messages = _read(session)
    _require_named(session, messages)
    selected = session.selection.select(messages, session.now)
    shown = selected[: args.limit] if args.limit else selected
    views = session.ledger_views(shown)
    if args.format == "json":
        records = [list_record(m, views, consulted=session.ledger_consulted) for m in shown]
        print(json.dumps(records, indent=2))
    else:
        if shown:
            print_columns(
                messages_columns(shown, views), full_hint="poison-queue show <id> or --json"
            )
        print(count_line("message", len(shown), len(selected), limit=args.limit))
    approximate = approximate_message_count(session.queues.poison)
    if approximate > len(messages):
        session.err.print(
            f"note: the service counts about {approximate} messages, {len(messages)} were "
            "visible (others may be held by another reader right now)",
            highlight=False,
        )
    session.record("list", {"listed": len(shown), "read": len(messages)})
    return EXIT_OK


def run_show(args: argparse.Namespace, session: Session) -> int:
    matches = [
        message
        for message in _read(session)
        if args.target in (message.message_id, message.event_id)
    ]
    session.record("show", {"shown": len(matches)}, details={"target": args.target})
    if not matches:
        raise ToolError(f"no poison message with id or eventId {args.target!r}")
    views = session.ledger_views(matches)
    consulted = session.ledger_consulted
    if args.format == "json":
        print(json.dumps([show_record(m, views, consulted=consulted) for m in matches], indent=2))
    else:
        print("\n\n".join(show_text(m, session.encoding, views, consulted) for m in matches))
    return EXIT_OK


def _confirmed(session: Session, assume_yes: bool, question: str, refusal: str) -> bool:
    interactive = sys.stdin.isatty()
    if mass_action_allowed(
        question,
        assume_yes=assume_yes,
        interactive=interactive,
        ask=lambda text: Confirm.ask(text, console=session.err),
    ):
        return True
    if interactive:
        session.err.print("cancelled: nothing was changed", highlight=False)
    else:
        session.err.print(
            f"refused: {refusal}; confirm at a terminal or pass --yes", highlight=False
        )
    return False


def _ids(messages: Sequence[PoisonMessage]) -> list[dict[str, str | None]]:
    return [{"eventId": m.event_id, "messageId": m.message_id} for m in messages]


def report_json(report: ReplayReport) -> dict[str, Any]:
    return {
        "replayed": _ids(report.replayed),
        "duplicatesDropped": _ids(report.duplicates_dropped),
        "sentNotDeleted": _ids(report.sent_not_deleted),
        "skipped": [
            {"eventId": m.event_id, "messageId": m.message_id, "reason": reason}
            for m, reason in report.left_in_place
        ],
        "notSent": [
            {"eventId": m.event_id, "messageId": m.message_id, "reason": reason}
            for m, reason in report.not_sent
        ],
        "notSelected": report.not_selected,
        "succeeded": report.succeeded,
    }


def run_replay(args: argparse.Namespace, session: Session) -> int:
    from_file: Path | None = args.from_file
    try:
        entries = read_export(from_file, session.encoding) if from_file is not None else None
    except OperatorError as error:  # a missing or malformed file: bad input, nothing sent
        raise ToolError(str(error), EXIT_USAGE) from None
    source = str(from_file) if from_file is not None else session.queues.poison.queue_name
    target = session.queues.request.queue_name
    details: dict[str, object] = {
        "to": target,
        **({"fromFile": str(from_file)} if from_file else {}),
    }

    if args.dry_run:
        candidates = entries if entries is not None else _read(session)
        selected = session.selection.select(candidates, session.now)
        require_matches(session.selection, candidates, selected)
        plan = plan_replay(selected, limit=args.limit)
        found = doomed(plan)
        duplicates = sum(len(item.duplicates) for item in plan.items)
        summary = (
            f"dry run: would replay {len(plan.items)} from {source} to {target}, "
            f"duplicates {duplicates}, skipped {len(plan.left_in_place)}, "
            f"not selected {len(candidates) - len(selected)}; nothing changed"
        )
        if args.format == "json":
            print(
                json.dumps(
                    {
                        "dryRun": True,
                        "wouldReplay": _ids([item.chosen for item in plan.items]),
                        "duplicates": _ids([d for item in plan.items for d in item.duplicates]),
                        "wouldFailAgain": [
                            {"eventId": m.event_id, "messageId": m.message_id, "reason": r}
                            for m, r in found
                        ],
                        "skipped": [
                            {"eventId": m.event_id, "messageId": m.message_id, "reason": r}
                            for m, r in plan.left_in_place
                        ],
                    },
                    indent=2,
                )
            )
        else:
            print_columns(plan_columns(plan, {m.message_id for m, _ in found}))
            print_left_in_place(session.err, plan.left_in_place)
            if found:
                session.err.print(
                    f"{len(found)} would fail again unchanged (marked !); a replay needs --force",
                    highlight=False,
                )
            print(summary)
        counts = {"would_replay": len(plan.items), "duplicates": duplicates}
        session.record("replay", counts, dry_run=True, details=details)
        return EXIT_OK

    if session.selection.is_everything:
        count = len(entries) if entries is not None else approximate_message_count(
            session.queues.poison
        )
        question = f"Replay everything in {source} (about {count} messages) to {target}?"
        if not _confirmed(session, args.yes, question, "no filter selects everything"):
            return EXIT_USAGE

    def approve(selected: Sequence[PoisonMessage], plan: ReplayPlan) -> None:
        # Inside the lease, before the first send: a refusal moves nothing.
        require_matches(session.selection, selected, selected)
        refuse_doomed(plan, force=args.force, err=session.err)

    with ProgressBar(session.err, "replaying") as progress:
        if entries is not None:
            report = replay_entries(
                entries,
                session.queues.request,
                session.selection,
                encoding=session.encoding,
                now=session.now,
                limit=args.limit,
                on_progress=progress,
                approve=approve,
            )
        else:
            require_queue(session.queues.poison)
            report = replay_poison_queue(
                session.queues,
                session.selection,
                encoding=session.encoding,
                now=session.now,
                limit=args.limit,
                lease_seconds=session.lease_seconds,
                on_progress=progress,
                approve=approve,
            )
    print_replay_problems(session.err, report)
    if args.format == "json":
        print(json.dumps(report_json(report), indent=2))
    else:
        print(report_summary(report, from_file=entries is not None))
    details["moved"] = _ids(report.replayed)
    if report.duplicates_dropped:
        details["duplicatesDropped"] = _ids(report.duplicates_dropped)
    if report.sent_not_deleted:
        details["sentNotDeleted"] = _ids(report.sent_not_deleted)
    if report.not_sent:
        details["notSent"] = _ids([m for m, _ in report.not_sent])
    session.record("replay", report.counts(), details=details)
    return EXIT_OK if report.succeeded else EXIT_FAILED


def run_export(args: argparse.Namespace, session: Session) -> int:
    require_queue(session.queues.poison)
    if args.delete_after and session.selection.is_everything:
        count = approximate_message_count(session.queues.poison)
        poison = session.queues.poison.queue_name
        question = f"Export and then DELETE everything in {poison} (about {count} messages)?"
        refusal = "--delete-after without a filter deletes everything"
        if not _confirmed(session, args.yes, question, refusal):
            return EXIT_USAGE
    exported: list[PoisonMessage] = []

    def approve(selected: Sequence[PoisonMessage]) -> None:
        if not session.selection.is_everything:
            require_matches(session.selection, selected, selected)
        exported.extend(selected)

    report = export_poison_queue(
        session.queues.poison,
        session.selection,
        args.output,
        encoding=session.encoding,
        now=session.now,
        delete_after=args.delete_after,
        lease_seconds=session.lease_seconds,
        approve=approve,
    )
    if args.format == "json":
        print(
            json.dumps(
                {
                    "output": str(args.output),
                    "exported": _ids(exported),
                    "deleted": report.deleted,
                    "notDeleted": report.not_deleted,
                },
                indent=2,
            )
        )
    else:
        text = f"exported {report.exported} messages to {args.output} (readable by you only)"
        if args.delete_after:
            text += f"; deleted {report.deleted} from the poison queue"
            if report.not_deleted:
                text += f", {report.not_deleted} NOT deleted (still in the queue, and in the file)"
        print(text)
    session.record(
        "export",
        {"exported": report.exported, "deleted": report.deleted},
        details={"output": str(args.output), "exported": _ids(exported)},
    )
    return EXIT_FAILED if report.not_deleted else EXIT_OK


# --- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Messages on stderr are whole lines: never folded, whatever reads them.
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    return run_guarded("poison-queue", lambda: _run(args, err))


def _run(args: argparse.Namespace, err: Console) -> int:
    settings = load_tool_settings(args.settings)
    target = storage_target(args, settings)
    queue_name = request_queue_name(args, settings)
    queues = Queues.connect(
        queue_name,
        connection_string=target.connection_string,
        account_url=target.queue_service_uri,
        **client_options(),
    )
    try:
        session = Session(
            queues=queues,
            encoding=MessageEncoding(args.message_encoding),
            selection=selection_from(args),
            audit=AuditTrail(current_operator(args.operator), sys.stderr, args.audit_file),
            now=datetime.now(UTC),
            err=err,
            lease_seconds=args.lease_seconds,
            open_ledger=lambda: ledger_from(args, target, settings, err),
        )
        handler: Callable[[argparse.Namespace, Session], int] = args.handler
        return handler(args, session)
    except OperatorError as error:
        raise ToolError(str(error)) from None
    except AzureError as error:
        # Network, authorisation or service errors: one line naming the place and the setting.
        raise ToolError(
            describe_storage_error(
                error, what="the queue service", url=queues.poison.url, source=target.source
            )
        ) from None


__all__ = ["first_line", "main"]


if __name__ == "__main__":
    raise SystemExit(main())
