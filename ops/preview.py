"""`hire-preview`: what a batch of hire events would do, before it is published.

    hire-preview [FILE | -] [--json] [--settings FILE] [--connection-string ...] [--table ...]

Reads hire events as `hire-publish` does: a JSON object, a JSON array or JSON Lines (stdin
without FILE or with ``-``); settings from local.settings.json (or --settings FILE) and the
environment, as for the local host. Says per
event what the function would do: invalid (field and rule), would create (with the UPN it
would get), already this hire's user, would restore (a rehire), conflict (with whom), refused
by Partner Center, and for the licences asked for, which are available and which are short.

Read-only by construction: only ``GET`` calls to Partner Center (users, deleted users,
subscribed SKUs) and, as ``UPN_LOOKUP`` says, to Microsoft Graph in the customer's tenant (who
holds a UPN, in one call, as the function looks it up), the credentials read from Key Vault (a
rotated refresh token is never written back), and the hire ledger read when storage is
configured (never created). Nothing is published, stored or written anywhere.

The verdicts use the decision's own rules (``shared.domain.planning``) and account for the batch
itself: two events generating the same UPN get ``jane.doe`` and ``jane.doe2``, a repeated
``eventId`` is already that hire's user, and licence units are counted down event by event.
What only a create can reveal (a federated or unverified domain, a service outage, throttling)
is not foreseen.

Exit status: 0 when every event would succeed (licences included); 1 otherwise; 2 bad usage or
settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from ops.cli import (
    EXIT_OK,
    EXIT_USAGE,
    TABLE_SERVICE_URI_SETTING,
    Column,
    ToolError,
    add_connection_options,
    add_json_option,
    count_line,
    load_tool_settings,
    print_columns,
    run_guarded,
)
from ops.event_input import EventInputError, EventText, split_events
from ops.ledger_view import LEDGER_TABLE_SETTING
from ops.render import terminal_safe
from shared.domain.errors import ProvisioningError
from shared.domain.events import HireEvent, InvalidEvent, decode_body, parse_event
from shared.domain.license_planning import SHORTFALL_CODE, plan_licenses
from shared.domain.model import SUCCESS_STATES, FoundUser, HireRecord, SubscribedSku
from shared.domain.planning import (
    Step,
    UpnChoice,
    UpnVerdict,
    choose_upn,
    exhausted_message,
    find_holder,
    identity_changes,
    step_for,
)
from shared.domain.ports import UpnDirectory
from shared.domain.upn import UpnGenerationError
from shared.settings import STORAGE_CONNECTION_SETTING, Settings, SettingsError

EXIT_WOULD_FAIL = 1
CA_BUNDLE = "REQUESTS_CA_BUNDLE"

# verdict -> the outcome status the run would report
EXPECTED_STATUS = {
    "invalid": "rejected",
    "create": "created",
    "restore": "restored",
    "exists": "already_exists",
    "conflict": "rejected",
    "refused": "rejected",
    "unknown": None,
}
SUCCESS_VERDICTS = frozenset({"create", "restore", "exists"})


class PartnerCenterReader(Protocol):
    """The read-only part of ``shared.domain.ports.PartnerCenter`` the preview uses."""

    def find_user_by_upn(
        self,
        customer_tenant_id: str,
        user_principal_name: str,
        *,
        correlation_id: str,
        inactive: bool = False,
    ) -> FoundUser | None: ...

    def subscribed_skus(
        self, customer_tenant_id: str, *, correlation_id: str
    ) -> list[SubscribedSku]: ...


class LedgerReader(Protocol):
    def get(self, event_id: str) -> HireRecord | None: ...


@dataclass
class Verdict:
    line: int
    event_id: str | None
    verdict: str
    detail: str = ""
    user_principal_name: str | None = None
    user_id: str | None = None
    category: str | None = None
    licenses: dict[str, list[str]] | None = None

    @property
    def expected_status(self) -> str | None:
        return EXPECTED_STATUS[self.verdict]

    @property
    def would_succeed(self) -> bool:
        short = self.licenses and (self.licenses["short"] or self.licenses["unknown"])
        return self.verdict in SUCCESS_VERDICTS and not short

    def as_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "eventId": self.event_id,
            "verdict": self.verdict,
            "expectedStatus": self.expected_status,
            "category": self.category,
            "userPrincipalName": self.user_principal_name,
            "userId": self.user_id,
            "licenses": self.licenses,
            "detail": self.detail,
            "wouldSucceed": self.would_succeed,
        }


@dataclass
class _Batch:
    """What earlier events of the batch would have done, so later ones see it."""

    taken: dict[tuple[str, str], FoundUser] = field(default_factory=dict)
    hires: dict[str, Verdict] = field(default_factory=dict)
    units: dict[str, dict[str, SubscribedSku]] = field(default_factory=dict)


class Previewer:
    def __init__(
        self,
        partner_center: PartnerCenterReader,
        *,
        upn_template: str,
        ledger: LedgerReader | None = None,
        directory: UpnDirectory | None = None,
    ) -> None:
        self._pc = partner_center
        self._template = upn_template
        self._ledger = ledger
        self._directory = directory

    def preview(self, lines: Iterable[str]) -> list[Verdict]:
        """JSON Lines, one event per line (blank lines skipped)."""
        return self.preview_events(
            EventText(number, f"line {number}", line)
            for number, line in enumerate(lines, start=1)
            if line.strip()
        )

    def preview_events(self, events: Iterable[EventText]) -> list[Verdict]:
        """Events as `hire-publish` reads them (ops.event_input: object, array, JSON Lines)."""
        batch = _Batch()
        return [self._one(event.position, event.text, batch) for event in events]

    def _one(self, number: int, line: str, batch: _Batch) -> Verdict:
        try:
            event = parse_event(decode_body(line.strip().encode("utf-8")))
        except InvalidEvent as error:
            return Verdict(number, error.event_id, "invalid", str(error), category="invalid_event")
        earlier = batch.hires.get(event.event_id)
        if earlier is not None and earlier.verdict in SUCCESS_VERDICTS:
            return Verdict(
                number,
                event.event_id,
                "exists",
                f"the same eventId as line {earlier.line}: that hire's user",
                user_principal_name=earlier.user_principal_name,
                user_id=earlier.user_id,
                licenses=earlier.licenses and _nothing_more(earlier.licenses),
            )
        try:
            verdict = self._decide(number, event, batch)
        except ProvisioningError as error:
            verdict = Verdict(
                number,
                event.event_id,
                "unknown" if error.is_transient else "refused",
                error.failure.message,
                category=error.failure.category.value,
            )
        batch.hires[event.event_id] = verdict
        return verdict

    def _decide(self, number: int, event: HireEvent, batch: _Batch) -> Verdict:
        record = self._ledger.get(event.event_id) if self._ledger else None
        if record is not None and record.state in SUCCESS_STATES:
            return Verdict(
                number,
                event.event_id,
                "exists",
                "the ledger says this hire made or found its user already",
                user_principal_name=record.user_principal_name,
                user_id=record.user_id,
                licenses=self._licenses(event, batch, record.licenses_assigned),
            )
        correlation = event.correlation_guid
        customer = event.customer_tenant_id

        def lookup(upn: str, inactive: bool) -> FoundUser | None:
            if not inactive and (customer, upn.casefold()) in batch.taken:
                return batch.taken[(customer, upn.casefold())]
            return find_holder(
                customer,
                upn,
                directory=self._directory,
                user_list=self._pc.find_user_by_upn,
                correlation_id=correlation,
                inactive=inactive,
            )

        if record is not None and record.identity_fixed:
            record = record.identity_adopted(event.user.immutable_id)  # rows from before
            verdict = self._unsettled(number, event, record, lookup)
            if verdict.verdict in SUCCESS_VERDICTS and verdict.user_principal_name:
                batch.taken[(customer, verdict.user_principal_name.casefold())] = FoundUser(
                    id=verdict.user_id or f"(line {number})",
                    user_principal_name=verdict.user_principal_name,
                    immutable_id=event.user.immutable_id,
                )
                verdict.licenses = self._licenses(event, batch, record.licenses_assigned)
            return verdict

        recorded = record.user_principal_name if record is not None else None
        try:
            choice = choose_upn(
                event,
                self._template,
                lookup,
                recorded=recorded if event.user.user_principal_name is None else None,
            )
        except UpnGenerationError as error:
            return Verdict(number, event.event_id, "invalid", str(error), category="invalid_event")
        if choice.verdict is UpnVerdict.FREE and not choice.generated:
            # The function meets a deleted holder on create; the preview looks it up.
            deleted = lookup(choice.upn, True)
            if deleted is not None:
                choice = UpnChoice(upn=choice.upn, verdict=UpnVerdict.HELD_DELETED, holder=deleted)
        verdict = self._verdict(number, event, choice)
        if verdict.verdict in SUCCESS_VERDICTS:
            batch.taken[(customer, choice.upn.casefold())] = FoundUser(
                id=f"(line {number})",
                user_principal_name=choice.upn,
                immutable_id=event.user.immutable_id,
            )
            verdict.licenses = self._licenses(event, batch, ())
        return verdict

    def _unsettled(
        self,
        number: int,
        event: HireEvent,
        record: HireRecord,
        lookup: Callable[[str, bool], FoundUser | None],
    ) -> Verdict:
        """A create or restore of this hire may have been applied (``creating``,
        ``restoring``, or ``rejected`` after one): what a replay does, by the decision's own
        rules (``shared.domain.planning.step_for`` and the identity rule of ``HireRecord``)."""
        changed = identity_changes(event, record, self._template)
        if changed:
            return Verdict(
                number,
                event.event_id,
                "refused",
                f"this hire's {', '.join(changed)} changed after a create or restore of it may "
                "have been applied: publish it with the recorded values "
                f"(customer {record.customer_tenant_id}, userPrincipalName "
                f"{record.user_principal_name})",
                category="conflict",
            )
        step = step_for(record)
        restore = record.pending_restore
        if step is Step.FINISH_RESTORE and restore is not None:
            return Verdict(
                number,
                event.event_id,
                "restore",
                f"the restore of deleted user {restore.user_id} is not finished: the replay "
                "finishes it and sets the recorded password",
                restore.user_principal_name,
                restore.user_id,
            )
        pending = record.pending_creates[-1]
        upn = pending.user_principal_name
        holder = lookup(upn, False)
        if holder is None:
            return Verdict(
                number,
                event.event_id,
                "create",
                "a create of this hire may have been applied but no user holds the UPN yet: "
                "the replay sends it again (same password)",
                upn,
            )
        if record.maker_of(holder) is not None:
            return Verdict(
                number,
                event.event_id,
                "create",
                f"user {holder.id} is this hire's own (its create's answer was lost): the "
                "replay reports it created, with the recorded password",
                upn,
                holder.id,
            )
        if event.user.immutable_id is not None and holder.immutable_id == event.user.immutable_id:
            return Verdict(
                number,
                event.event_id,
                "exists",
                f"user {holder.id} has this immutableId",
                upn,
                holder.id,
            )
        return Verdict(
            number,
            event.event_id,
            "conflict",
            f"held by user {holder.id}: someone else",
            upn,
            category="conflict",
        )

    def _verdict(self, number: int, event: HireEvent, choice: UpnChoice) -> Verdict:
        upn, holder = choice.upn, choice.holder
        passed = (
            " (passed over " + ", ".join(u for u, _ in choice.skipped) + ": held by others)"
            if choice.skipped
            else ""
        )
        if choice.verdict is UpnVerdict.FREE:
            how = "generated" if choice.generated else "given"
            return Verdict(number, event.event_id, "create", f"UPN {how}, free{passed}", upn)
        if choice.verdict is UpnVerdict.THIS_HIRES:
            assert holder is not None
            return Verdict(
                number,
                event.event_id,
                "exists",
                f"user {holder.id} has this immutableId{passed}",
                upn,
                holder.id,
            )
        if choice.verdict is UpnVerdict.REHIRE:
            assert holder is not None
            return Verdict(
                number,
                event.event_id,
                "restore",
                f"deleted user {holder.id} has this immutableId: a rehire{passed}",
                upn,
                holder.id,
            )
        if choice.verdict is UpnVerdict.EXHAUSTED:
            return Verdict(
                number,
                event.event_id,
                "conflict",
                exhausted_message(event, choice),
                category="conflict",
            )
        assert holder is not None
        state = "deleted user" if choice.verdict is UpnVerdict.HELD_DELETED else "user"
        ids = f"immutableId {holder.immutable_id}" if holder.immutable_id else "no immutableId"
        return Verdict(
            number,
            event.event_id,
            "conflict",
            f"held by {state} {holder.id} ({ids}): someone else",
            upn,
            category="conflict",
        )

    def _licenses(
        self, event: HireEvent, batch: _Batch, assigned: Sequence[str]
    ) -> dict[str, list[str]] | None:
        if not event.licenses:
            return None
        customer = event.customer_tenant_id
        skus = batch.units.get(customer)
        if skus is None:
            listed = self._pc.subscribed_skus(customer, correlation_id=event.correlation_guid)
            skus = batch.units[customer] = {sku.sku_id.lower(): sku for sku in listed}
        plan = plan_licenses(customer, list(event.sku_ids), assigned, list(skus.values()))
        available = [sku for _, ids in plan.groups for sku in ids]
        for sku_id in available:  # this event takes a unit: later ones see one fewer
            sku = skus[sku_id.lower()]
            skus[sku_id.lower()] = SubscribedSku(
                sku_id=sku.sku_id,
                license_group_id=sku.license_group_id,
                available_units=sku.available_units - 1,
                name=sku.name,
            )
        return {
            "assigned": list(assigned),
            "available": available,
            "short": [f.sku_id for f in plan.failed if f.code == SHORTFALL_CODE],
            "unknown": [f.sku_id for f in plan.failed if f.code != SHORTFALL_CODE],
        }


def _nothing_more(licenses: dict[str, list[str]]) -> dict[str, list[str]]:
    """A repeat of an event earlier in the batch: its licences are that hire's already."""
    done = licenses["assigned"] + licenses["available"]
    return {"assigned": done, "available": [], "short": licenses["short"], "unknown": []}


# ---------------------------------------------------------------------------- output


def render_verdicts(verdicts: Sequence[Verdict]) -> None:
    """One line per event, fitted to the terminal; whole values with --json."""

    def cells(pick: Callable[[Verdict], str | None]) -> list[str]:
        return [terminal_safe(pick(v) or "-") for v in verdicts]

    print("hire-preview: what each event would do (nothing was written)")
    print_columns(
        [
            Column("line", cells(lambda v: str(v.line)), "id", keep=9),
            Column("eventId", cells(lambda v: v.event_id), "id", keep=8),
            Column("verdict", cells(lambda v: v.verdict), "id", keep=7),
            Column("run status", cells(lambda v: v.expected_status or "?"), "id", keep=3),
            Column("UPN", cells(lambda v: v.user_principal_name), "text", keep=5),
            Column("licences", cells(lambda v: _license_text(v.licenses)), "text", keep=2),
            Column("detail", cells(lambda v: v.detail), "text", keep=6),
        ]
    )
    failing = sum(1 for v in verdicts if not v.would_succeed)
    print(
        f"{count_line('event', len(verdicts), len(verdicts), limit=None)}; "
        f"{len(verdicts) - failing} would succeed, {failing} would not (or not fully)"
    )


def _license_text(licenses: dict[str, list[str]] | None) -> str:
    if licenses is None:
        return "-"
    parts = []
    for label in ("assigned", "available", "short", "unknown"):
        if licenses[label]:
            parts.append(f"{label}: {', '.join(licenses[label])}")
    return "; ".join(parts) or "-"


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hire-preview",
        description="Say what each hire event would do, reading only (docs/operations.md).",
    )
    parser.add_argument(
        "file",
        nargs="?",
        default="-",
        help="a JSON object, a JSON array or JSON Lines (as hire-publish reads); - for stdin",
    )
    add_connection_options(parser, queue=False, table=True)
    add_json_option(parser, "table")
    args = parser.parse_args(argv)
    return run_guarded("hire-preview", lambda: _run(args, stdin))


def _run(args: argparse.Namespace, stdin: TextIO | None) -> int:
    tool_settings = load_tool_settings(args.settings)
    if tool_settings.overridden(CA_BUNDLE):
        print(
            f"hire-preview: note: {CA_BUNDLE} from the environment wins over the one in "
            f"{tool_settings.file}; if the stand-ins' certificates are not trusted, run "
            "`./scripts/stack run hire-preview ...` (local stack) or unset it",
            file=sys.stderr,
        )
    overrides: dict[str, str] = {}
    if args.connection_string:
        overrides[STORAGE_CONNECTION_SETTING] = args.connection_string
    elif args.account_url:
        overrides[STORAGE_CONNECTION_SETTING] = ""
        overrides[TABLE_SERVICE_URI_SETTING] = args.account_url.replace(".queue.", ".table.", 1)
    if args.table:
        overrides[LEDGER_TABLE_SETTING] = args.table
    try:
        settings = Settings.from_environment({**tool_settings.values, **overrides})
    except SettingsError as error:
        where = f" (settings file: {tool_settings.file})" if tool_settings.file else (
            " (no settings file: pass --settings FILE or run where local.settings.json is)"
        )
        raise ToolError(f"{error}{where}", EXIT_USAGE) from None
    source = "stdin" if args.file == "-" else args.file
    try:
        if args.file == "-":
            text = (stdin or sys.stdin).read()
        else:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ToolError(f"cannot read {source}: {error}", EXIT_USAGE) from None
    try:
        events = split_events(text, source=source)
    except EventInputError as error:
        raise ToolError(str(error), EXIT_USAGE) from None
    if not events:
        raise ToolError(f"{source} holds no events", EXIT_USAGE)
    verdicts = preview_events_with_settings(settings, events, explicit_table=bool(args.table))
    if args.format == "json":
        print(json.dumps([v.as_json() for v in verdicts], indent=2, ensure_ascii=False))
    else:
        render_verdicts(verdicts)
    return EXIT_OK if all(v.would_succeed for v in verdicts) else EXIT_WOULD_FAIL


def preview_events_with_settings(
    settings: Settings, events: Sequence[EventText], *, explicit_table: bool = False
) -> list[Verdict]:
    # Imported here: the composition root pulls in every SDK, which --help does not need.
    from shared import composition

    ledger = None
    if settings.storage_connection_string or settings.storage_table_service_uri:
        ledger = composition.build_ledger(settings, read_only=True)
        try:
            exists = ledger.table_exists()
        except ProvisioningError as error:
            raise ToolError(error.failure.message) from None
        if not exists:
            message = (
                f"the hire ledger table {settings.ledger_table!r} does not exist "
                "(nothing was created)"
            )
            if explicit_table:
                raise ToolError(f"{message}: check --table")
            print(f"hire-preview: note: {message}; verdicts assume no hire was seen before",
                  file=sys.stderr)
            ledger = None
    client, directory = composition.build_read_only_readers(settings)
    try:
        previewer = Previewer(
            client, upn_template=settings.upn_template, ledger=ledger, directory=directory
        )
        return previewer.preview_events(events)
    finally:
        client.close()


def preview_with_settings(settings: Settings, lines: Iterable[str]) -> list[Verdict]:
    """JSON Lines, as ``Previewer.preview`` reads them."""
    events = [
        EventText(number, f"line {number}", line)
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]
    return preview_events_with_settings(settings, events)


if __name__ == "__main__":
    raise SystemExit(main())
