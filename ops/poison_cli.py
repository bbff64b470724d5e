"""`poison-queue`: inspect, export and replay the poison queue (docs/operations.md).

    poison-queue list    [filters] [--format table|json]
    poison-queue show    <message-id | eventId> [--format text|json]
    poison-queue replay  [filters] [--limit N] [--dry-run] [--yes] [--from-file FILE.jsonl]
    poison-queue export  --output FILE.jsonl [filters] [--delete-after] [--yes]

Exit status: 0 done; 1 something failed (see stderr); 2 bad usage, or a confirmation refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.core.exceptions import AzureError
from rich.console import Console
from rich.prompt import Confirm
from rich.text import Text

from ops.audit import AuditTrail, current_operator
from ops.export import export_poison_queue, export_record, read_export
from ops.messages import MessageEncoding, PoisonMessage
from ops.poison_queue import (
    DEFAULT_LEASE_SECONDS,
    OperatorError,
    Queues,
    approximate_message_count,
    first_line,
    read_poison_queue,
    replay_entries,
    replay_poison_queue,
)
from ops.render import (
    ProgressBar,
    list_record,
    messages_table,
    plan_table,
    print_left_in_place,
    print_replay_problems,
    report_summary,
    show_text,
)
from ops.selection import CATEGORY_CHOICES, Selection, parse_age, plan_replay
from shared.hostconfig import QueueHostConfig
from shared.ledger import open_table_ledger
from shared.ports import HireLedger
from shared.settings import (
    DEFAULT_LEDGER_TABLE,
    DEFAULT_REQUEST_QUEUE,
    STORAGE_CONNECTION_SETTING,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

QUEUE_SERVICE_URI_SETTING = f"{STORAGE_CONNECTION_SETTING}__queueServiceUri"
TABLE_SERVICE_URI_SETTING = f"{STORAGE_CONNECTION_SETTING}__tableServiceUri"
MAX_LEASE_SECONDS = 7 * 24 * 3600  # the service's limit for a visibility timeout


@dataclass(frozen=True)
class Session:
    """What every command needs, built once from the arguments."""

    queues: Queues
    encoding: MessageEncoding
    selection: Selection
    audit: AuditTrail
    now: datetime
    out: Console
    err: Console
    lease_seconds: int
    ledger: HireLedger | None = None

    def ledger_states(self, messages: list[PoisonMessage]) -> dict[str, str]:
        """Each event's state in the hire ledger, next to its poison copy (read-only)."""
        states: dict[str, str] = {}
        if self.ledger is None:
            return states
        for event_id in dict.fromkeys(m.event_id for m in messages if m.event_id):
            try:
                record = self.ledger.get(event_id)
            except Exception as error:  # the poison queue is what matters here: carry on
                self.err.print(
                    Text(f"note: the hire ledger could not be read ({type(error).__name__})")
                )
                return states
            if record is None:
                states[event_id] = "no record"
            else:
                last = (record.last_outcome or {}).get("status")
                states[event_id] = record.state.value + (f" (last: {last})" if last else "")
        return states

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
    value = int(text)
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
    common = argparse.ArgumentParser(add_help=False)
    storage = common.add_argument_group("storage")
    account = storage.add_mutually_exclusive_group()
    account.add_argument(
        "--connection-string",
        help="storage connection string (default: env AzureWebJobsStorage; "
        "UseDevelopmentStorage=true means Azurite on 127.0.0.1:10001)",
    )
    account.add_argument(
        "--account-url",
        help="https://<account>.queue.core.windows.net, signed in with DefaultAzureCredential "
        "(default: env AzureWebJobsStorage__queueServiceUri)",
    )
    storage.add_argument(
        "--queue",
        default=os.environ.get("REQUEST_QUEUE_NAME", "").strip() or DEFAULT_REQUEST_QUEUE,
        help="the REQUEST queue's name; the poison queue is <queue>-poison "
        "(default: env REQUEST_QUEUE_NAME or %(default)s)",
    )
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
    storage.add_argument(
        "--ledger-table",
        help="the hire ledger's table, whose state list and show print next to each event "
        f"(default: env HIRE_LEDGER_TABLE or {DEFAULT_LEDGER_TABLE}; the same account)",
    )
    audit = common.add_argument_group("audit")
    audit.add_argument("--operator", help="who is acting (default: the OS user)")
    audit.add_argument("--audit-file", type=Path, help="also append audit lines to this file")

    filters = argparse.ArgumentParser(add_help=False)
    group = filters.add_argument_group("filters (combine with AND; a repeated filter ORs)")
    group.add_argument("--category", action="append", choices=CATEGORY_CHOICES, default=[])
    group.add_argument(
        "--customer", action="append", default=[], metavar="TENANT_ID", help="customerTenantId"
    )
    group.add_argument("--event-id", action="append", default=[])
    group.add_argument("--message-id", action="append", default=[])
    group.add_argument("--older-than", type=_age, metavar="AGE", help="poisoned before, e.g. 3d")
    group.add_argument("--newer-than", type=_age, metavar="AGE", help="poisoned within, e.g. 2h")

    parser = argparse.ArgumentParser(
        prog="poison-queue", description="Inspect, export and replay the poison queue."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser(
        "list", parents=[common, filters], help="one row per poison message"
    )
    listing.add_argument("--format", choices=["table", "json"], default="table")
    listing.set_defaults(handler=run_list)

    show = commands.add_parser("show", parents=[common], help="one message in full")
    show.add_argument("target", metavar="MESSAGE_ID_OR_EVENT_ID")
    show.add_argument("--format", choices=["text", "json"], default="text")
    show.set_defaults(handler=run_show)

    replay = commands.add_parser(
        "replay", parents=[common, filters], help="move messages back to the request queue"
    )
    replay.add_argument("--dry-run", action="store_true", help="change nothing; show the plan")
    replay.add_argument("--limit", type=_positive_int, help="replay at most N events")
    replay.add_argument("--yes", action="store_true", help="no confirmation for everything")
    replay.add_argument(
        "--from-file", type=Path, metavar="FILE.jsonl", help="replay an export file instead"
    )
    replay.set_defaults(handler=run_replay)

    export = commands.add_parser(
        "export", parents=[common, filters], help="write messages to a JSON Lines file"
    )
    export.add_argument("--output", type=Path, required=True, metavar="FILE.jsonl")
    export.add_argument(
        "--delete-after",
        action="store_true",
        help="delete the exported messages once the file is safely on disk",
    )
    export.add_argument("--yes", action="store_true", help="no confirmation for everything")
    export.set_defaults(handler=run_export)
    return parser


def storage_target(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """(connection string, account URL): flags first, then AzureWebJobsStorage, then its URI."""
    if args.connection_string or args.account_url:
        return args.connection_string, args.account_url
    connection_string = environ.get(STORAGE_CONNECTION_SETTING, "").strip()
    if connection_string:
        return connection_string, None
    return None, environ.get(QUEUE_SERVICE_URI_SETTING, "").strip() or None


def ledger_from(
    args: argparse.Namespace,
    connection_string: str | None,
    account_url: str | None,
    environ: Mapping[str, str],
) -> HireLedger | None:
    """The hire ledger in the same storage account, to show each event's state (optional)."""
    table = args.ledger_table or environ.get("HIRE_LEDGER_TABLE") or DEFAULT_LEDGER_TABLE
    table_url = environ.get(TABLE_SERVICE_URI_SETTING, "").strip() or None
    if account_url and not table_url:
        # https://<account>.queue.core.windows.net -> https://<account>.table.core.windows.net
        table_url = account_url.replace(".queue.", ".table.", 1)
    try:
        return open_table_ledger(
            table, connection_string=connection_string, table_service_uri=table_url
        )
    except ValueError:
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


# --- rendering --------------------------------------------------------------------------


# --- commands ---------------------------------------------------------------------------


def _read(session: Session) -> list[PoisonMessage]:
    return read_poison_queue(
        session.queues.poison, session.encoding, lease_seconds=session.lease_seconds
    )


def run_list(args: argparse.Namespace, session: Session) -> int:
    messages = _read(session)
    selected = session.selection.select(messages, session.now)
    states = session.ledger_states(selected)
    if args.format == "json":
        print(
            json.dumps(
                [list_record(m, states.get(m.event_id or "")) for m in selected], indent=2
            )
        )
    else:
        session.out.print(messages_table(selected, states))
    approximate = approximate_message_count(session.queues.poison)
    if approximate > len(messages):
        session.err.print(
            f"note: the service counts about {approximate} messages, {len(messages)} were "
            "visible (others may be held by another reader right now)",
            highlight=False,
        )
    session.record("list", {"listed": len(selected), "read": len(messages)})
    return EXIT_OK


def run_show(args: argparse.Namespace, session: Session) -> int:
    matches = [
        message
        for message in _read(session)
        if args.target in (message.message_id, message.event_id)
    ]
    session.record("show", {"shown": len(matches)}, details={"target": args.target})
    if not matches:
        session.err.print(Text(f"no poison message with id or eventId {args.target!r}"))
        return EXIT_FAILED
    states = session.ledger_states(matches)
    if args.format == "json":
        records = [
            {**export_record(m), "ledgerState": states.get(m.event_id or "")} for m in matches
        ]
        print(json.dumps(records, indent=2))
    else:
        print(
            "\n\n".join(
                show_text(m, session.encoding, states.get(m.event_id or "")) for m in matches
            )
        )
    return EXIT_OK


def _confirmed(session: Session, assume_yes: bool, question: str, refusal: str) -> bool:
    if mass_action_allowed(
        question,
        assume_yes=assume_yes,
        interactive=sys.stdin.isatty(),
        ask=lambda text: Confirm.ask(text, console=session.err),
    ):
        return True
    session.err.print(
        f"refused: {refusal}; confirm at a terminal or pass --yes", highlight=False
    )
    return False


def run_replay(args: argparse.Namespace, session: Session) -> int:
    from_file: Path | None = args.from_file
    entries = read_export(from_file, session.encoding) if from_file is not None else None
    source = str(from_file) if from_file is not None else session.queues.poison.queue_name
    target = session.queues.request.queue_name
    details = {"to": target, **({"fromFile": str(from_file)} if from_file else {})}

    if args.dry_run:
        candidates = entries if entries is not None else _read(session)
        selected = session.selection.select(candidates, session.now)
        plan = plan_replay(selected, limit=args.limit)
        session.out.print(plan_table(plan))
        print_left_in_place(session.err, plan.left_in_place)
        duplicates = sum(len(item.duplicates) for item in plan.items)
        print(
            f"dry run: would replay {len(plan.items)} from {source} to {target}, "
            f"duplicates {duplicates}, skipped {len(plan.left_in_place)}, "
            f"not selected {len(candidates) - len(selected)}; nothing changed"
        )
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
            )
        else:
            report = replay_poison_queue(
                session.queues,
                session.selection,
                encoding=session.encoding,
                now=session.now,
                limit=args.limit,
                lease_seconds=session.lease_seconds,
                on_progress=progress,
            )
    print_replay_problems(session.err, report)
    print(report_summary(report, from_file=entries is not None))
    session.record("replay", report.counts(), details=details)
    return EXIT_OK if report.succeeded else EXIT_FAILED


def run_export(args: argparse.Namespace, session: Session) -> int:
    if args.delete_after and session.selection.is_everything:
        count = approximate_message_count(session.queues.poison)
        poison = session.queues.poison.queue_name
        question = f"Export and then DELETE everything in {poison} (about {count} messages)?"
        refusal = "--delete-after without a filter deletes everything"
        if not _confirmed(session, args.yes, question, refusal):
            return EXIT_USAGE
    report = export_poison_queue(
        session.queues.poison,
        session.selection,
        args.output,
        encoding=session.encoding,
        now=session.now,
        delete_after=args.delete_after,
        lease_seconds=session.lease_seconds,
    )
    text = f"exported {report.exported} messages to {args.output}"
    if args.delete_after:
        text += f"; deleted {report.deleted} from the poison queue"
        if report.not_deleted:
            text += f", {report.not_deleted} NOT deleted (still in the queue, and in the file)"
    print(text)
    session.record(
        "export",
        {"exported": report.exported, "deleted": report.deleted},
        details={"output": str(args.output)},
    )
    return EXIT_FAILED if report.not_deleted else EXIT_OK


# --- entry point ------------------------------------------------------------------------


def _stdout_console() -> Console:
    # Piped output is read by grep or saved to a file: do not fold it to 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=240)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    err = Console(stderr=True)
    try:
        connection_string, account_url = storage_target(args, os.environ)
        queues = Queues.connect(
            args.queue, connection_string=connection_string, account_url=account_url
        )
        session = Session(
            queues=queues,
            encoding=MessageEncoding(args.message_encoding),
            selection=selection_from(args),
            audit=AuditTrail(current_operator(args.operator), sys.stderr, args.audit_file),
            now=datetime.now(UTC),
            out=_stdout_console(),
            err=err,
            lease_seconds=args.lease_seconds,
            ledger=ledger_from(args, connection_string, account_url, os.environ),
        )
        handler: Callable[[argparse.Namespace, Session], int] = args.handler
        return handler(args, session)
    except OperatorError as error:
        err.print(Text(f"error: {error}"))
        return EXIT_FAILED
    except AzureError as error:
        # Authorisation, network or service errors: the first line says which, without the
        # response dump that follows it.
        err.print(Text(f"error: storage request failed: {first_line(error)}"))
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
