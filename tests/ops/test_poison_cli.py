"""The poison-queue CLI against Azurite: messages of kinds (a), (b) and (c)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from devtools.azurite import PROJECT_ROOT
from ops.poison_cli import main
from tests.ops.conftest import CUSTOMER, OTHER_CUSTOMER, Bench, b64, hire_event


@pytest.fixture
def mixed(bench: Bench) -> dict[str, str]:
    """One message of each kind, plus an old throttled one for another customer."""
    return {
        "permission": bench.poison_recorded(hire_event("hr-1"), category="permission"),
        "throttled": bench.poison_recorded(
            hire_event("hr-2", customer=OTHER_CUSTOMER),
            category="throttled",
            age=timedelta(days=3),
            message="Partner Center throttled; retry later",
        ),
        "host": bench.poison_by_host(hire_event("hr-3")),
        "junk": bench.poison_raw("this is not base64 {"),
    }


def rows_by_message(run_out: str) -> dict[str, dict[str, object]]:
    return {row["messageId"]: row for row in json.loads(run_out)}


def test_list_json_describes_each_kind(bench: Bench, mixed: dict[str, str]) -> None:
    run = bench.cli("list", "--format", "json")

    assert run.code == 0
    rows = rows_by_message(run.out)
    assert set(rows) == set(mixed.values())
    permission = rows[mixed["permission"]]
    assert permission["eventId"] == "hr-1"
    assert permission["customerTenantId"] == CUSTOMER
    assert permission["userPrincipalName"] == "hr-1@contoso.onmicrosoft.com"
    assert permission["category"] == "permission"
    assert permission["failureMessage"] == "grant the GDAP role User Administrator"
    assert permission["attempts"] == 1
    assert permission["expiresOn"] is None  # the function's copies never expire
    host = rows[mixed["host"]]
    assert (host["kind"], host["category"], host["eventId"]) == ("host-poisoned",) * 2 + ("hr-3",)
    assert host["expiresOn"] is not None and host["poisonedAt"] == host["insertedOn"]
    junk = rows[mixed["junk"]]
    assert (junk["kind"], junk["eventId"]) == ("not-an-event", None)


def test_list_table_shows_placeholders_and_expiry(bench: Bench, mixed: dict[str, str]) -> None:
    run = bench.cli("list")

    assert run.code == 0
    for text in ("Event ID", "hr-1", "(poisoned by host)", "(not an event", "never", "permission"):
        assert text in run.out
    assert '"action": "list"' in run.err


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--category", "throttled"], {"throttled"}),
        (["--category", "host-poisoned", "--category", "not-an-event"], {"host", "junk"}),
        (["--customer", OTHER_CUSTOMER.upper()], {"throttled"}),
        (["--event-id", "hr-1"], {"permission"}),
        (["--older-than", "2d"], {"throttled"}),
        (["--newer-than", "1d", "--customer", CUSTOMER], {"permission", "host"}),
    ],
)
def test_list_filters(
    bench: Bench, mixed: dict[str, str], filters: list[str], expected: set[str]
) -> None:
    run = bench.cli("list", "--format", "json", *filters)
    assert set(rows_by_message(run.out)) == {mixed[name] for name in expected}


def test_list_rejects_a_bad_age(bench: Bench) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.cli("list", "--older-than", "soon")
    assert exit_info.value.code == 2


def test_list_of_more_than_a_peek_sees_all_and_leaves_them_visible(bench: Bench) -> None:
    sent = {bench.poison_recorded(hire_event(f"hr-{n}")) for n in range(40)}

    first = bench.cli("list", "--format", "json")
    second = bench.cli("list", "--format", "json")

    assert set(rows_by_message(first.out)) == sent
    # Only visible messages can be seen again: the first read released every one of them.
    assert set(rows_by_message(second.out)) == sent
    assert len(bench.poison_ids()) == 32


def test_list_of_an_absent_poison_queue_says_so_and_creates_nothing(bench: Bench) -> None:
    bench.poison.delete_queue()
    run = bench.cli("list", "--format", "json")
    assert run.code == 1 and "does not exist" in run.err and run.out == ""
    assert not any(q.name == bench.poison.queue_name for q in bench.service().list_queues())


def test_show_by_event_id_and_message_id(bench: Bench, mixed: dict[str, str]) -> None:
    by_event = bench.cli("show", "hr-1")
    by_id = bench.cli("show", mixed["junk"])

    assert by_event.code == 0
    assert f"Message ID:     {mixed['permission']}" in by_event.out
    assert "Expires:        never" in by_event.out
    assert "Dequeue count:  0" in by_event.out
    assert '"category": "permission"' in by_event.out
    assert "not an event" in by_id.out and "this is not base64 {" in by_id.out


def test_show_json_and_not_found(bench: Bench, mixed: dict[str, str]) -> None:
    (record,) = json.loads(bench.cli("show", "hr-3", "--format", "json").out)
    missing = bench.cli("show", "hr-404")

    assert record["messageId"] == mixed["host"] and record["event"]["eventId"] == "hr-3"
    assert missing.code == 1 and "hr-404" in missing.err


def test_dry_run_changes_nothing(bench: Bench, mixed: dict[str, str]) -> None:
    run = bench.cli("replay", "--dry-run")

    assert run.code == 0
    assert "would replay 4" in run.out and "nothing changed" in run.out
    assert bench.poison_ids() == set(mixed.values())
    assert bench.request_bodies() == []
    assert '"dryRun": true' in run.err


def test_replay_moves_every_kind_back(bench: Bench, mixed: dict[str, str]) -> None:
    run = bench.cli("replay", "--yes", "--force")  # --force: the not-an-event body too

    assert run.code == 0, run.err
    assert "replayed 4, duplicates removed 0, skipped 0" in run.out
    assert bench.poison_ids() == set()
    bodies = bench.request_bodies()
    assert "this is not base64 {" in bodies  # unchanged, no history to add
    events = {e["eventId"]: e for e in map(lambda b: json.loads(base64.b64decode(b)),
                                             [b for b in bodies if b != "this is not base64 {"])}
    assert set(events) == {"hr-1", "hr-2", "hr-3"}
    assert events["hr-1"]["lastFailure"]["category"] == "permission"  # kept, informational
    assert events["hr-1"]["user"] == hire_event("hr-1")["user"]
    assert all(event["replay"]["count"] == 1 for event in events.values())
    assert "lastFailure" not in events["hr-3"]
    # The replayed copies never expire, like the function's poison copies.
    expiries = [m.expires_on for m in bench.request.peek_messages(max_messages=32)]
    assert all(expiry is not None and expiry.year == 9999 for expiry in expiries)


def test_replay_with_a_filter_moves_only_the_selection(
    bench: Bench, mixed: dict[str, str]
) -> None:
    run = bench.cli("replay", "--category", "permission")

    assert run.code == 0
    assert "replayed 1" in run.out and "not selected 3" in run.out
    assert [e["eventId"] for e in bench.request_events()] == ["hr-1"]
    assert bench.poison_ids() == set(mixed.values()) - {mixed["permission"]}


def test_replay_dedupes_per_event_id(bench: Bench) -> None:
    bench.poison_recorded(hire_event("hr-1"), category="unavailable", age=timedelta(days=2))
    bench.poison_by_host(hire_event("hr-1"))
    newest = bench.poison_recorded(hire_event("hr-1"), category="throttled", age=timedelta(0))
    divergent = bench.poison_recorded(hire_event("hr-1", first_name="Janet"), age=timedelta(days=9))

    run = bench.cli("replay", "--event-id", "hr-1")

    assert run.code == 0
    assert "replayed 1, duplicates removed 2, skipped 1" in run.out
    (event,) = bench.request_events()
    assert event["lastFailure"]["category"] == "throttled"  # the most recently poisoned copy
    # A copy whose content differs is not discarded: a person decides.
    assert bench.poison_ids() == {divergent}
    assert divergent in run.err
    assert newest not in bench.poison_ids()


def test_replay_history_increments(bench: Bench) -> None:
    bench.poison_recorded(
        hire_event("hr-1"), replay={"count": 2, "lastReplayedAt": "2026-11-01T00:00:00Z"}
    )
    bench.cli("replay", "--event-id", "hr-1")

    (event,) = bench.request_events()
    assert event["replay"]["count"] == 3
    assert event["replay"]["lastReplayedAt"] != "2026-11-01T00:00:00Z"


def test_replay_limit(bench: Bench) -> None:
    for n, age in enumerate((3, 1, 2)):
        bench.poison_recorded(hire_event(f"hr-{n}"), age=timedelta(days=age))

    run = bench.cli("replay", "--category", "permission", "--limit", "2")

    assert "replayed 2" in run.out and "skipped 1" in run.out
    assert sorted(e["eventId"] for e in bench.request_events()) == ["hr-0", "hr-2"]  # oldest first
    assert len(bench.poison_ids()) == 1


def test_replay_of_everything_needs_confirmation(bench: Bench, mixed: dict[str, str]) -> None:
    # Under pytest stdin is not a terminal, as in CI: without --yes nobody can confirm.
    refused = bench.cli("replay")

    assert refused.code == 2 and "--yes" in refused.err
    assert bench.poison_ids() == set(mixed.values()) and bench.request_bodies() == []


def test_replay_refuses_a_missing_request_queue(bench: Bench, mixed: dict[str, str]) -> None:
    bench.request.delete_queue()
    run = bench.cli("replay", "--yes")
    assert run.code == 1 and "does not exist" in run.err
    assert bench.poison_ids() == set(mixed.values())


def test_plain_text_encoding(bench: Bench) -> None:
    conflict = {**hire_event("hr-1"), "lastFailure": {"category": "conflict"}}
    bench.poison.send_message(json.dumps(conflict))

    listed = bench.cli("list", "--format", "json", "--message-encoding", "none")
    bench.cli("replay", "--event-id", "hr-1", "--message-encoding", "none", "--force")

    assert json.loads(listed.out)[0]["category"] == "conflict"
    (body,) = bench.request_bodies()
    assert json.loads(body)["replay"]["count"] == 1


def test_export_round_trips_through_replay_from_file(
    bench: Bench, mixed: dict[str, str], tmp_path: Path
) -> None:
    bench.poison_recorded(hire_event("hr-1"), age=timedelta(days=1))  # a second copy of hr-1
    export_file = tmp_path / "poison.jsonl"

    exported = bench.cli("export", "--output", str(export_file))
    records = [json.loads(line) for line in export_file.read_text().splitlines()]
    replayed = bench.cli("replay", "--from-file", str(export_file), "--yes", "--force")

    assert exported.code == 0 and "exported 5" in exported.out
    assert len(bench.poison_ids()) == 5  # export does not delete
    by_id = {record["id"]: record for record in records}
    assert by_id[mixed["junk"]] | {"dequeueCount": 0} == by_id[mixed["junk"]]
    assert by_id[mixed["junk"]]["decoded"] is False
    assert by_id[mixed["junk"]]["rawBody"] == "this is not base64 {"
    assert by_id[mixed["permission"]]["decoded"] is True
    assert by_id[mixed["permission"]]["event"]["eventId"] == "hr-1"
    assert by_id[mixed["permission"]]["expiresOn"] is None
    assert replayed.code == 0, replayed.err
    assert "replayed 4, duplicate entries not sent 1" in replayed.out
    bodies = bench.request_bodies()
    assert "this is not base64 {" in bodies
    events = [json.loads(base64.b64decode(b)) for b in bodies if b != "this is not base64 {"]
    assert sorted(e["eventId"] for e in events) == ["hr-1", "hr-2", "hr-3"]
    assert all(e["replay"]["count"] == 1 for e in events)


def test_replay_from_file_dry_run_and_filters(
    bench: Bench, mixed: dict[str, str], tmp_path: Path
) -> None:
    export_file = tmp_path / "poison.jsonl"
    bench.cli("export", "--output", str(export_file))

    dry = bench.cli("replay", "--from-file", str(export_file), "--dry-run")
    filtered = bench.cli("replay", "--from-file", str(export_file), "--event-id", "hr-2")

    assert "would replay 4" in dry.out
    assert [e["eventId"] for e in bench.request_events()] == ["hr-2"]
    assert "replayed 1" in filtered.out


def test_replay_from_a_bad_file_sends_nothing(bench: Bench, tmp_path: Path) -> None:
    export_file = tmp_path / "bad.jsonl"
    export_file.write_text(json.dumps({"id": "1", "decoded": True, "event": {}}) + "\n{oops\n")

    run = bench.cli("replay", "--from-file", str(export_file), "--yes")

    assert run.code == 2 and "bad.jsonl:2: not an export record" in run.err  # bad input
    assert bench.request_bodies() == []


def test_export_never_overwrites(bench: Bench, mixed: dict[str, str], tmp_path: Path) -> None:
    export_file = tmp_path / "poison.jsonl"
    export_file.write_text("earlier export\n")
    run = bench.cli("export", "--output", str(export_file))
    assert run.code == 1 and "exists" in run.err
    assert export_file.read_text() == "earlier export\n"


def test_export_delete_after(bench: Bench, mixed: dict[str, str], tmp_path: Path) -> None:
    export_file = tmp_path / "junk.jsonl"

    refused = bench.cli("export", "--output", str(tmp_path / "all.jsonl"), "--delete-after")
    run = bench.cli(
        "export", "--output", str(export_file), "--category", "not-an-event", "--delete-after"
    )

    assert refused.code == 2 and not (tmp_path / "all.jsonl").exists()
    assert run.code == 0 and "deleted 1" in run.out
    (record,) = [json.loads(line) for line in export_file.read_text().splitlines()]
    assert record["rawBody"] == "this is not base64 {"
    assert bench.poison_ids() == set(mixed.values()) - {mixed["junk"]}


def test_audit_file_and_operator(bench: Bench, mixed: dict[str, str], tmp_path: Path) -> None:
    audit_file = tmp_path / "audit.jsonl"
    common = ["--operator", "alice", "--audit-file", str(audit_file)]

    bench.cli("list", *common)
    bench.cli("replay", "--category", "throttled", *common)

    list_entry, replay_entry = map(json.loads, audit_file.read_text().splitlines())
    assert list_entry["operator"] == "alice" and list_entry["action"] == "list"
    assert replay_entry["action"] == "replay"
    assert replay_entry["queue"] == f"{bench.queue_name}-poison"
    assert replay_entry["to"] == bench.queue_name
    assert replay_entry["counts"]["replayed"] == 1
    assert replay_entry["selection"] == {"categories": ["throttled"]}
    assert replay_entry["at"].endswith("Z")
    assert replay_entry["moved"] == [{"eventId": "hr-2", "messageId": mixed["throttled"]}]
    assert "Jane" not in audit_file.read_text()  # ids, counts and filters, never bodies


def test_defaults_come_from_the_environment(
    bench: Bench, mixed: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", bench.connection_string)
    monkeypatch.setenv("REQUEST_QUEUE_NAME", bench.queue_name)
    bench.capsys.readouterr()
    assert main(["list", "--format", "json"]) == 0
    assert len(json.loads(bench.capsys.readouterr().out)) == 4


def test_runs_as_a_module(bench: Bench, mixed: dict[str, str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "ops.poison_cli", "list", "--format", "json",
         "--connection-string", bench.connection_string, "--queue", bench.queue_name],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert len(json.loads(completed.stdout)) == 4


def test_large_replay_shows_progress_and_moves_everything(bench: Bench) -> None:
    for n in range(45):
        bench.poison.send_message(b64(hire_event(f"hr-{n}")))

    run = bench.cli("replay", "--category", "host-poisoned")

    assert "replayed 45" in run.out
    assert bench.poison_ids() == set()
    assert bench.request.get_queue_properties().approximate_message_count == 45


def test_storage_errors_are_reported_without_a_traceback(
    bench: Bench, mixed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    wrong_key = base64.b64encode(b"not the account key").decode()
    connection_string = bench.connection_string.replace(
        bench.connection_string.split("AccountKey=")[1].split(";")[0], wrong_key
    )
    capsys.readouterr()
    code = main(["list", "--connection-string", connection_string, "--queue", bench.queue_name])
    err = capsys.readouterr().err
    assert code == 1 and "poison-queue: the queue service at http://127.0.0.1" in err
    assert "Traceback" not in err

