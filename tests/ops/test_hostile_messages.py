"""The operator tool against a poison queue holding the worst of the hostile corpus."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shared.adapters.poison import poisoned_body
from shared.domain.outcomes import Category, Failure
from tests.hostile.corpus import build
from tests.ops.conftest import Bench, hire_event

# Bytes a terminal acts on (ESC, CSI, BEL, OSC's terminator) or that reorder text.
TERMINAL_HAZARDS = ("\x1b", "\x9b", "\x07", "\u202e", "\u2066", "\u200b", "\r")
WORST = {
    "deep-array-24000",
    "deep-object-1000",
    "deep-unknown-member",
    "integer-4301-digits",
    "integer-5000-digits-in-member",
    "constant-nan",
    "repeated-event-id",
    "lone-surrogate-event-id",
    "lone-surrogate-in-member-name",
    "binary-40960",
    "not-utf8-cesu-8-surrogate",
    "not-utf8-utf-16-with-bom",
    "not-json-raw-escape-sequence",
    "control-escape-display-name",
    "invisible-right-to-left-override-first-name",
}

READABLE = {"control-escape-display-name", "invisible-right-to-left-override-first-name"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def worst(bench: Bench) -> dict[str, str]:
    """Message id by name: corpus bodies, an oversize envelope, raw junk and a good event."""
    bodies = {case.name: case.body for case in build() if case.name in WORST}
    assert len(bodies) == len(WORST)
    failure = Failure(category=Category.INVALID_EVENT, message="the message is not UTF-8 text")
    bodies["oversize-envelope"] = poisoned_body(b"\xff" * 70_000, failure, attempts=5)
    bodies["largest-binary"] = b"\xfe" * (48 * 1024)
    hazardous = hire_event("hr-\x1b[31mred\u202e")
    hazardous["user"]["displayName"] = "Jane\x1b]0;owned\x07\x9b2J\r Doe\u2066"
    bodies["hazardous-event"] = json.dumps(hazardous, ensure_ascii=False).encode()
    ids = {name: bench.poison.send_message(b64(body), time_to_live=-1).id
           for name, body in bodies.items()}
    # Queue text is XML on the wire: a raw ESC cannot be stored, a bidi override can.
    ids["not-base64"] = bench.poison_raw("\u202e not base64 {")
    ids["good"] = bench.poison_recorded(hire_event("hr-good"), category="throttled")
    return ids


def assert_terminal_safe(text: str) -> None:
    for hazard in TERMINAL_HAZARDS:
        assert hazard not in text, repr(hazard)


def test_list_reports_unreadable_messages_and_carries_on(
    bench: Bench, worst: dict[str, str]
) -> None:
    table = bench.cli("list")
    listed = bench.cli("list", "--format", "json")

    assert (table.code, listed.code) == (0, 0), table.err + listed.err
    assert_terminal_safe(table.out + table.err + listed.out + listed.err)
    rows = {row["messageId"]: row for row in listed.json()}
    assert set(rows) == set(worst.values())
    assert rows[worst["good"]]["kind"] == "failure-recorded"
    assert rows[worst["oversize-envelope"]]["kind"] == "failure-recorded"
    for name in WORST - READABLE:
        assert rows[worst[name]]["kind"] == "not-an-event", name


@pytest.mark.parametrize(
    "name", sorted({*WORST, "hazardous-event", "not-base64", "largest-binary"})
)
def test_show_prints_any_message_safely(bench: Bench, worst: dict[str, str], name: str) -> None:
    text = bench.cli("show", worst[name])
    as_json = bench.cli("show", worst[name], "--format", "json")

    assert (text.code, as_json.code) == (0, 0), text.err + as_json.err
    assert_terminal_safe(text.out + text.err + as_json.out + as_json.err)
    assert worst[name] in text.out


def test_export_keeps_every_message_exactly_and_replays_from_the_file(
    bench: Bench, worst: dict[str, str], tmp_path: Path
) -> None:
    before = {m.id: m.content for m in bench.poison.peek_messages(max_messages=32)}
    output = tmp_path / "poison.jsonl"

    exported = bench.cli("export", "--output", str(output))
    dry_run = bench.cli("replay", "--from-file", str(output), "--dry-run")

    assert exported.code == 0, exported.err
    assert dry_run.code == 0, dry_run.err
    assert_terminal_safe(exported.out + exported.err + dry_run.out + dry_run.err)
    text = output.read_text(encoding="utf-8")
    assert text.isascii()
    records = [json.loads(line) for line in text.splitlines()]
    assert {r["id"] for r in records} == set(worst.values())
    for record in records:
        if not record["decoded"]:
            assert record["rawBody"] == before[record["id"]]


def test_replay_moves_everything_and_sends_unreadable_bodies_unchanged(
    bench: Bench, worst: dict[str, str]
) -> None:
    before = {m.id: m.content for m in bench.poison.peek_messages(max_messages=32)}

    run = bench.cli("replay", "--yes", "--force")

    assert run.code == 0, run.err
    assert_terminal_safe(run.out + run.err)
    assert bench.poison_ids() == set()
    sent = bench.request_bodies()
    assert len(sent) == len(worst)
    for name in WORST - READABLE:
        assert before[worst[name]] in sent, name
