"""Each operator tool as a person runs it: a subprocess in a pseudo-terminal at 80 and 120
columns, and piped. Settings come from a settings file, as from local.settings.json; no
connection flag and no exported variable is needed.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import pty
import select
import stat
import struct
import subprocess
import sys
import termios
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient

from devtools.azurite import PROJECT_ROOT, AzuriteQueue, free_port
from shared.adapters.ledger import open_table_ledger, partition_key_for, row_key_for
from shared.domain.model import HireRecord, HireState
from tests.ops.conftest import CUSTOMER, hire_event, iso

BIN = Path(sys.executable).parent
WIDTHS = (80, 120)
ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"
LONG_FAILURE = (
    "Partner Center refused the create: the GDAP relationship lacks the User Administrator "
    "role for this customer; grant it in Partner Center and replay the event"
)


@dataclass
class Run:
    code: int
    output: str
    """stdout and stderr as the person sees them."""
    stdout: str = ""
    """stdout alone (piped runs only), for JSON."""

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()


def _environment(settings_file: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AzureWebJobsStorage")
        and key not in ("COLUMNS", "LINES", "REQUEST_QUEUE_NAME", "HIRE_LEDGER_TABLE")
    }
    env["HIRE_SETTINGS_FILE"] = str(settings_file)
    env["TERM"] = "xterm"
    return env


def in_terminal(
    tool: str,
    *args: str,
    settings_file: Path,
    columns: int,
    answer: str | None = None,
    cwd: Path | None = None,
) -> Run:
    """Run ``tool`` with stdin, stdout and stderr on a pseudo-terminal ``columns`` wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [str(BIN / tool), *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=_environment(settings_file),
        cwd=cwd or PROJECT_ROOT,
        start_new_session=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    answered = answer is None
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            if not ready:
                process.kill()
                raise AssertionError(f"{tool} produced nothing for 60 s: {b''.join(chunks)!r}")
            try:
                chunk = os.read(leader, 65536)
            except OSError as error:  # EIO: the terminal's other side closed
                if error.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not answered and b"[y/n]" in b"".join(chunks):
                os.write(leader, answer.encode() + b"\r")  # type: ignore[union-attr]
                answered = True
    finally:
        os.close(leader)
        code = process.wait(timeout=60)
    text = b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")
    return Run(code, text)


def piped(tool: str, *args: str, settings_file: Path, cwd: Path | None = None) -> Run:
    completed = subprocess.run(
        [str(BIN / tool), *args],
        env=_environment(settings_file),
        cwd=cwd or PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Run(completed.returncode, completed.stdout + completed.stderr, completed.stdout)


def no_traceback(run: Run) -> None:
    assert "Traceback" not in run.output, run.output


def fits(run: Run, columns: int) -> None:
    too_wide = [line for line in run.lines if len(line) > columns and not line.startswith("audit:")]
    assert not too_wide, "\n".join(too_wide)


# --- fixtures ---------------------------------------------------------------------------


@dataclass
class Stack:
    azurite: AzuriteQueue
    queue: str
    table: str
    settings_file: Path
    request: QueueClient
    poison: QueueClient

    def poison_recorded(
        self, event: dict[str, Any], *, category: str, message: str = LONG_FAILURE
    ) -> str:
        body = {
            **event,
            "lastFailure": {
                "category": category,
                "message": message,
                "httpStatus": 403,
                "code": None,
                "attempts": 2,
                "at": iso(datetime.now(UTC) - timedelta(minutes=5)),
            },
        }
        encoded = base64.b64encode(json.dumps(body).encode()).decode()
        return str(self.poison.send_message(encoded, time_to_live=-1).id)

    def run(self, tool: str, *args: str, columns: int | None, answer: str | None = None) -> Run:
        if columns is None:
            return piped(tool, *args, settings_file=self.settings_file)
        return in_terminal(
            tool, *args, settings_file=self.settings_file, columns=columns, answer=answer
        )


def write_settings(path: Path, values: dict[str, str]) -> Path:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}), encoding="utf-8")
    return path


@pytest.fixture
def stack(azurite: AzuriteQueue, tmp_path: Path) -> Iterator[Stack]:
    queue = f"req-{uuid.uuid4().hex[:12]}"
    table = f"ledger{uuid.uuid4().hex[:10]}"
    settings_file = write_settings(
        tmp_path / "local.settings.json",
        {
            "AzureWebJobsStorage": azurite.connection_string,
            "REQUEST_QUEUE_NAME": queue,
            "HIRE_LEDGER_TABLE": table,
            # What hire-preview needs to start (it reads nothing for invalid events).
            "KEY_VAULT_URL": "https://127.0.0.1:9",
            "PARTNER_TENANT_ID": str(uuid.uuid4()),
            "PARTNER_CENTER_APP_ID_SECRET": "app-id",
            "PARTNER_CENTER_APP_SECRET_SECRET": "app-secret",
            "PARTNER_CENTER_REFRESH_TOKEN_SECRET": "refresh-token",
            "INITIAL_PASSWORD_VAULT_URL": "https://127.0.0.1:9",
        },
    )
    request = QueueClient.from_connection_string(azurite.connection_string, queue)
    poison = QueueClient.from_connection_string(azurite.connection_string, f"{queue}-poison")
    request.create_queue()
    poison.create_queue()
    TableServiceClient.from_connection_string(azurite.connection_string).create_table(table)
    yield Stack(azurite, queue, table, settings_file, request, poison)


@pytest.fixture
def poisoned(stack: Stack) -> dict[str, str]:
    long_event = hire_event("hr-2026-000777")
    long_event["user"]["userPrincipalName"] = (
        "bartholomew.featherstonehaugh-worthington@contoso-holdings-international.onmicrosoft.com"
    )
    invalid = hire_event("hr-2026-000900")
    invalid["user"]["usageLocation"] = "XX"
    return {
        "hr-2026-000101": stack.poison_recorded(
            hire_event("hr-2026-000101"), category="permission"
        ),
        "hr-2026-000777": stack.poison_recorded(long_event, category="permission"),
        "hr-2026-000900": stack.poison_recorded(
            invalid, category="invalid_event", message="usageLocation XX"
        ),
    }


# --- poison-queue -----------------------------------------------------------------------


@pytest.mark.parametrize("columns", [*WIDTHS, None], ids=["80", "120", "piped"])
def test_list_fits_the_terminal_and_never_breaks_an_id(
    stack: Stack, poisoned: dict[str, str], columns: int | None
) -> None:
    run = stack.run("poison-queue", "list", columns=columns)

    no_traceback(run)
    assert run.code == 0, run.output
    rows = [line for line in run.lines if line.startswith("hr-2026-")]
    assert sorted(row.split()[0] for row in rows) == sorted(poisoned)  # one line per message
    assert "3 messages" in run.output
    if columns is None:  # piped: whole values, one line per row, whatever the length
        assert LONG_FAILURE in run.output and ELLIPSIS not in run.output
        assert all(message_id in run.output for message_id in poisoned.values())
    else:
        fits(run, columns)
        assert ELLIPSIS in run.output  # the long failure is cut short, and says so
        assert "all of it: poison-queue show <id> or --json" in run.output.replace("\n", " ")
        for row in rows:  # what is shown of an id is shown whole
            assert row.split()[0] in poisoned


def test_list_limit_and_count_line(stack: Stack, poisoned: dict[str, str]) -> None:
    run = stack.run("poison-queue", "list", "--limit", "1", columns=120)
    assert run.code == 0
    assert "3 messages, 1 shown (--limit 1)" in run.output


def test_connection_flags_before_or_after_the_subcommand(
    stack: Stack, poisoned: dict[str, str], tmp_path: Path
) -> None:
    empty = write_settings(tmp_path / "empty.json", {})
    flags = ["--connection-string", stack.azurite.connection_string, "--queue", stack.queue]
    before = piped("poison-queue", *flags, "list", "--json", settings_file=empty)
    after = piped("poison-queue", "list", "--json", *flags, settings_file=empty)
    for run in (before, after):
        assert run.code == 0, run.output
        assert len(json.loads(run.stdout)) == 3
    hires_before = piped(
        "hires", "--connection-string", stack.azurite.connection_string, "--table", stack.table,
        "list", settings_file=empty,
    )
    hires_after = piped(
        "hires", "list", "--connection-string", stack.azurite.connection_string,
        "--table", stack.table, settings_file=empty,
    )
    assert hires_before.code == hires_after.code == 0
    assert "0 records" in hires_before.output and "0 records" in hires_after.output


def test_json_has_the_facts_the_text_shows(stack: Stack, poisoned: dict[str, str]) -> None:
    listed = stack.run("poison-queue", "list", "--json", columns=None)
    records = json.loads(listed.stdout)
    by_event = {record["eventId"]: record for record in records}
    assert by_event["hr-2026-000777"]["failureMessage"] == LONG_FAILURE
    assert by_event["hr-2026-000101"]["ledgerState"] == "no-record"  # machine values
    shown = stack.run("poison-queue", "show", "hr-2026-000777", "--json", columns=None)
    (record,) = json.loads(shown.stdout)
    assert record["failureMessage"] == LONG_FAILURE and record["event"]["eventId"]
    text = stack.run("poison-queue", "show", "hr-2026-000777", columns=80)
    assert LONG_FAILURE.split(";")[0] in text.output.replace("\n", " ")


@pytest.mark.parametrize("columns", [80, None], ids=["80", "piped"])
def test_replay_of_a_typo_changes_nothing_and_fails(
    stack: Stack, poisoned: dict[str, str], columns: int | None
) -> None:
    run = stack.run("poison-queue", "replay", "--event-id", "hr-2026-00010", columns=columns)

    no_traceback(run)
    assert run.code == 1
    assert "no poison message has eventId hr-2026-00010" in run.output
    assert stack.request.get_queue_properties().approximate_message_count == 0


def test_customer_must_be_a_guid(stack: Stack, poisoned: dict[str, str]) -> None:
    run = stack.run("poison-queue", "replay", "--customer", "contoso", columns=80)
    no_traceback(run)
    assert run.code == 2 and "not a tenant id" in run.output


def test_replay_of_what_fails_unchanged_needs_force_and_the_audit_names_ids(
    stack: Stack, poisoned: dict[str, str]
) -> None:
    refused = stack.run("poison-queue", "replay", "--category", "invalid_event", columns=120)
    assert refused.code == 2, refused.output
    assert "hr-2026-000900 (invalid_event) would fail again unchanged" in refused.output
    assert "--force" in refused.output
    assert stack.request.get_queue_properties().approximate_message_count == 0

    forced = stack.run(
        "poison-queue", "replay", "--category", "invalid_event", "--force", columns=120
    )
    assert forced.code == 0, forced.output
    (audit,) = [line for line in forced.lines if line.startswith("audit:")]
    entry = json.loads(audit.removeprefix("audit:"))
    assert entry["moved"] == [
        {"eventId": "hr-2026-000900", "messageId": poisoned["hr-2026-000900"]}
    ]


def test_answering_no_at_the_prompt_cancels(stack: Stack, poisoned: dict[str, str]) -> None:
    run = stack.run("poison-queue", "replay", columns=80, answer="n")
    assert run.code == 2
    assert "cancelled" in run.output and "confirm at a terminal" not in run.output
    assert stack.request.get_queue_properties().approximate_message_count == 0


def test_export_is_readable_by_the_owner_only(
    stack: Stack, poisoned: dict[str, str], tmp_path: Path
) -> None:
    output = tmp_path / "export.jsonl"
    run = stack.run("poison-queue", "export", "--output", str(output), columns=80)
    assert run.code == 0, run.output
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


def test_a_wrong_queue_name_is_reported_and_not_created(stack: Stack) -> None:
    run = stack.run("poison-queue", "list", "--queue", "no-such-queue", columns=80)
    assert run.code == 1 and "does not exist" in run.output
    service = QueueServiceClient.from_connection_string(stack.azurite.connection_string)
    assert "no-such-queue-poison" not in {q.name for q in service.list_queues()}


@pytest.mark.parametrize("tool", ["poison-queue", "hires", "hire-publish"])
def test_unreachable_storage_is_one_line_naming_the_setting(tool: str, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    unreachable = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=" + base64.b64encode(b"k" * 64).decode() + ";"
        f"QueueEndpoint={closed};TableEndpoint={closed};"
    )
    settings = write_settings(
        tmp_path / "local.settings.json", {"AzureWebJobsStorage": unreachable}
    )
    args = {
        "poison-queue": ["list"],
        "hires": ["list"],
        "hire-publish": ["--event", json.dumps(hire_event("hr-1"))],
    }[tool]
    run = in_terminal(tool, *args, settings_file=settings, columns=80)

    no_traceback(run)
    assert run.code == 1, run.output
    assert "AzureWebJobsStorage" in run.output and str(settings) in run.output
    assert "127.0.0.1" in run.output


# --- hire-publish and hire-preview ----------------------------------------------------------


@pytest.mark.parametrize("columns", [80, None], ids=["80", "piped"])
def test_publish_refuses_text_that_is_not_json(stack: Stack, columns: int | None) -> None:
    run = stack.run("hire-publish", "--event", "{not json", columns=columns)
    no_traceback(run)
    assert run.code == 2 and "not JSON" in run.output
    assert stack.request.get_queue_properties().approximate_message_count == 0


def test_preview_reads_what_publish_reads(stack: Stack, tmp_path: Path) -> None:
    events = [hire_event(f"hr-{n}") for n in (1, 2)]
    for event in events:
        event["user"]["usageLocation"] = "XX"  # invalid: the preview reads nothing remote
    files = {
        "lines": "\n".join(json.dumps(e) for e in events) + "\n",
        "array": json.dumps(events, indent=2),
    }
    verdicts = {}
    for name, text in files.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text, encoding="utf-8")
        run = stack.run("hire-preview", str(path), "--json", columns=None)
        assert run.code == 1, run.output  # they would not succeed
        verdicts[name] = [(v["eventId"], v["verdict"]) for v in json.loads(run.stdout)]
        published = stack.run("hire-publish", str(path), columns=None)
        assert published.code == 1 and published.output.count("is invalid") == 2
    assert verdicts["lines"] == verdicts["array"] == [("hr-1", "invalid"), ("hr-2", "invalid")]
    single = tmp_path / "one.json"
    single.write_text(json.dumps(events[0], indent=2), encoding="utf-8")
    one = stack.run("hire-preview", str(single), columns=80)
    fits(one, 80)
    assert "1 event" in one.output and "invalid" in one.output


# --- hires ------------------------------------------------------------------------------


def _ledger(stack: Stack) -> Any:
    return open_table_ledger(stack.table, connection_string=stack.azurite.connection_string)


@pytest.fixture
def records(stack: Stack) -> list[str]:
    ledger = _ledger(stack)
    now = datetime.now(UTC)
    ids = []
    for n in range(3):
        event_id = f"hr-2026-00{n}42"
        ledger.add(
            HireRecord(
                event_id=event_id,
                customer_tenant_id=CUSTOMER,
                state=HireState.REJECTED if n == 2 else HireState.CREATED,
                user_principal_name="bartholomew.featherstonehaugh-worthington"
                f"{n}@contoso-holdings-international.onmicrosoft.com",
                user_id=str(uuid.uuid4()),
                last_failure={"category": "conflict", "message": LONG_FAILURE} if n == 2 else None,
                last_outcome={"status": "rejected" if n == 2 else "created"},
                created_at=now,
                updated_at=now - timedelta(minutes=n),
            )
        )
        ids.append(event_id)
    return ids


@pytest.mark.parametrize("columns", [*WIDTHS, None], ids=["80", "120", "piped"])
def test_hires_list_fits_and_counts(
    stack: Stack, records: list[str], columns: int | None
) -> None:
    run = stack.run("hires", "list", columns=columns)
    no_traceback(run)
    assert run.code == 0, run.output
    assert "3 records" in run.output
    rows = [line for line in run.lines if line.startswith("hr-2026-")]
    assert sorted(row.split()[0] for row in rows) == sorted(records)
    if columns is None:
        assert LONG_FAILURE in run.output
    else:
        fits(run, columns)
    limited = stack.run("hires", "list", "--limit", "2", columns=columns)
    assert "3 records, 2 shown (--limit 2)" in limited.output


def test_hires_show_is_whole_and_json_has_machine_values(
    stack: Stack, records: list[str]
) -> None:
    shown = stack.run("hires", "show", records[2], columns=80)
    assert shown.code == 0
    assert "lastFailure.message: " + LONG_FAILURE in shown.output.replace("\n", "")
    as_json = json.loads(stack.run("hires", "show", records[2], "--json", columns=None).stdout)
    assert as_json["state"] == "rejected" and as_json["lastOutcome"] == "rejected"


def test_hires_shows_an_unreadable_row_and_goes_on(stack: Stack, records: list[str]) -> None:
    client = TableClient.from_connection_string(stack.azurite.connection_string, stack.table)
    # Written by something else: no EventId at all, and one with members of the wrong types.
    client.create_entity({"PartitionKey": "zz", "RowKey": "no-event-id", "State": 7})
    odd = "hr-2026-odd"
    client.create_entity(
        {
            "PartitionKey": partition_key_for(odd),
            "RowKey": row_key_for(odd),
            "EventId": odd,
            "CustomerTenantId": CUSTOMER,
            "State": "somewhere-new",
            "Generation": "three",
            "LastOutcome": json.dumps(["not", "an", "object"]),
            "ClaimExpiresAt": "tomorrow",
            "FutureMember": "kept",
        }
    )
    for columns in (80, None):
        run = stack.run("hires", "list", columns=columns)
        no_traceback(run)
        assert run.code == 0, run.output
        assert "5 records" in run.output and "unreadable" in run.output
        assert all(event_id in run.output for event_id in records)
    shown = stack.run("hires", "show", odd, "--json", columns=None)
    no_traceback(shown)
    view = json.loads(shown.stdout)
    assert "somewhere-new" in view["unreadable"] and "generation" in view["unreadable"]


def test_hires_with_a_wrong_table_says_so_and_creates_nothing(stack: Stack) -> None:
    run = stack.run("hires", "--table", "nosuchtable", "list", columns=80)
    assert run.code == 1 and "does not exist" in run.output
    service = TableServiceClient.from_connection_string(stack.azurite.connection_string)
    assert "nosuchtable" not in {t.name for t in service.list_tables()}


def test_poison_queue_shows_an_unreadable_ledger_row_and_goes_on(
    stack: Stack, poisoned: dict[str, str]
) -> None:
    client = TableClient.from_connection_string(stack.azurite.connection_string, stack.table)
    event_id = "hr-2026-000101"
    client.create_entity(
        {
            "PartitionKey": partition_key_for(event_id),
            "RowKey": row_key_for(event_id),
            "EventId": event_id,
            # No CustomerTenantId, and an outcome that is not an object.
            "LastOutcome": json.dumps("created"),
        }
    )
    text = stack.run("poison-queue", "list", columns=120)
    no_traceback(text)
    assert text.code == 0, text.output
    row = next(line for line in text.lines if line.startswith(event_id))
    assert "unreadable row" in row
    as_json = stack.run("poison-queue", "show", event_id, "--json", columns=None)
    (record,) = json.loads(as_json.stdout)
    assert record["ledgerState"] == "unreadable"
