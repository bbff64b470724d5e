"""Decoding, selection and replay planning: pure code, no queue."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops.cli import ToolError, ToolSettings, storage_target
from ops.messages import BodyKind, MessageEncoding, PoisonMessage, body_for_replay, decode_event
from ops.poison_cli import build_parser, main, mass_action_allowed
from ops.poison_queue import Queues
from ops.selection import BEYOND_LIMIT, DIVERGENT_COPY, Selection, parse_age, plan_replay
from tests.ops.conftest import CUSTOMER, OTHER_CUSTOMER, b64, hire_event, iso

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def poison(
    message_id: str,
    body: object,
    *,
    inserted: datetime = NOW,
    encoding: MessageEncoding = MessageEncoding.BASE64,
) -> PoisonMessage:
    raw = body if isinstance(body, str) else b64(body)
    return PoisonMessage(
        message_id=message_id,
        raw_body=raw,
        event=decode_event(raw, encoding),
        inserted_on=inserted,
        expires_on=None,
        dequeue_count=0,
    )


def recorded(event_id: str, *, at: datetime, category: str = "permission", **changes: object):
    return {**hire_event(event_id), **changes, "lastFailure": {"category": category, "at": iso(at)}}


def test_kinds_are_told_apart() -> None:
    failure = poison("a", recorded("hr-1", at=NOW))
    by_host = poison("b", hire_event("hr-2"))
    not_json = poison("c", base64.b64encode(b"hello").decode())
    not_base64 = poison("d", "not base64 at all!")
    json_array = poison("e", [1, 2])
    not_utf8 = poison("f", base64.b64encode(b"\xff\xfe").decode())

    assert failure.kind is BodyKind.FAILURE_RECORDED and failure.category == "permission"
    assert by_host.kind is BodyKind.HOST_POISONED
    assert by_host.failure_message == "(poisoned by host)"
    for garbage in (not_json, not_base64, json_array, not_utf8):
        assert garbage.kind is BodyKind.NOT_AN_EVENT
        assert garbage.failure_message == "(not an event)"
        assert garbage.event_id is None


def test_plain_text_encoding_reads_json_directly() -> None:
    message = poison("a", json.dumps(hire_event("hr-1")), encoding=MessageEncoding.NONE)
    assert message.event_id == "hr-1"


def test_replay_body_adds_history_and_keeps_last_failure() -> None:
    message = poison("a", recorded("hr-1", at=NOW, replay={"count": 2, "lastReplayedAt": "x"}))
    body = body_for_replay(
        message, previous_replays=message.replay_count, now=NOW, encoding=MessageEncoding.BASE64
    )
    event = json.loads(base64.b64decode(body))
    assert event["replay"] == {"count": 3, "lastReplayedAt": "2026-11-21T12:00:00Z"}
    assert event["lastFailure"]["category"] == "permission"
    assert event["user"] == hire_event("hr-1")["user"]


def test_replay_body_of_a_non_event_is_unchanged() -> None:
    message = poison("a", "not base64 at all!")
    assert body_for_replay(
        message, previous_replays=0, now=NOW, encoding=MessageEncoding.BASE64
    ) == "not base64 at all!"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("2h", timedelta(hours=2)),
     ("3d", timedelta(days=3)), ("1w", timedelta(weeks=1))],
)
def test_parse_age(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "-2h", "2y", "2.5h"])
def test_parse_age_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not an age"):
        parse_age(text)


def test_selection_filters() -> None:
    old = poison("old", recorded("hr-1", at=NOW - timedelta(days=3), category="throttled"))
    new = poison("new", recorded("hr-2", at=NOW - timedelta(hours=1)))
    host = poison("host", hire_event("hr-3", customer=OTHER_CUSTOMER), inserted=NOW)
    garbage = poison("junk", "%%%")
    everything = [old, new, host, garbage]

    def ids(selection: Selection) -> list[str]:
        return [m.message_id for m in selection.select(everything, NOW)]

    assert Selection().is_everything and ids(Selection()) == ["old", "new", "host", "junk"]
    assert ids(Selection(categories=frozenset({"throttled", "not-an-event"}))) == ["old", "junk"]
    assert ids(Selection(categories=frozenset({"host-poisoned"}))) == ["host"]
    assert ids(Selection(customers=frozenset({CUSTOMER.upper()}))) == ["old", "new"]
    assert ids(Selection(event_ids=frozenset({"hr-2"}))) == ["new"]
    assert ids(Selection(message_ids=frozenset({"junk"}))) == ["junk"]
    assert ids(Selection(older_than=timedelta(days=2))) == ["old"]
    assert ids(Selection(newer_than=timedelta(hours=2))) == ["new", "host", "junk"]
    assert not Selection(newer_than=timedelta(hours=2)).is_everything


def test_plan_replays_newest_copy_once_and_leaves_divergent_copies() -> None:
    older = poison("older", recorded("hr-1", at=NOW - timedelta(days=2)))
    newest = poison("newest", recorded("hr-1", at=NOW - timedelta(hours=1), category="throttled"))
    by_host = poison("host", hire_event("hr-1"), inserted=NOW - timedelta(days=1))
    divergent = poison("divergent", recorded("hr-1", at=NOW - timedelta(days=5), user={"x": 1}))
    other = poison("other", recorded("hr-2", at=NOW - timedelta(days=9)))

    plan = plan_replay([older, newest, by_host, divergent, other])

    assert [item.chosen.message_id for item in plan.items] == ["other", "newest"]
    assert {m.message_id for m in plan.items[1].duplicates} == {"older", "host"}
    assert [(m.message_id, reason) for m, reason in plan.left_in_place] == [
        ("divergent", DIVERGENT_COPY)
    ]


def test_plan_limit_keeps_the_oldest_events() -> None:
    first = poison("first", recorded("hr-1", at=NOW - timedelta(days=3)))
    second = poison("second", recorded("hr-2", at=NOW - timedelta(days=2)))
    second_copy = poison("second-copy", recorded("hr-2", at=NOW - timedelta(days=4)))
    plan = plan_replay([second, first, second_copy], limit=1)
    assert [item.chosen.message_id for item in plan.items] == ["first"]
    assert sorted((m.message_id, r) for m, r in plan.left_in_place) == [
        ("second", BEYOND_LIMIT), ("second-copy", BEYOND_LIMIT)
    ]


def test_plan_continues_the_highest_replay_count() -> None:
    low = poison("low", recorded("hr-1", at=NOW, replay={"count": 1}))
    high = poison("high", recorded("hr-1", at=NOW - timedelta(days=1), replay={"count": 4}))
    (item,) = plan_replay([low, high]).items
    assert item.chosen.message_id == "low" and item.previous_replays == 4


def test_mass_action_needs_yes_or_a_person() -> None:
    def refuse(question: str) -> bool:
        return False

    def agree(question: str) -> bool:
        return True

    def unreachable(question: str) -> bool:
        raise AssertionError("must not prompt")

    assert mass_action_allowed("?", assume_yes=True, interactive=False, ask=unreachable)
    assert not mass_action_allowed("?", assume_yes=False, interactive=False, ask=unreachable)
    assert mass_action_allowed("?", assume_yes=False, interactive=True, ask=agree)
    assert not mass_action_allowed("?", assume_yes=False, interactive=True, ask=refuse)


def test_storage_target_prefers_flags_then_connection_string_then_service_uri() -> None:
    def target(argv: list[str], environ: dict[str, str]) -> tuple[str | None, str | None]:
        settings = ToolSettings(values=environ)
        found = storage_target(build_parser().parse_args(["list", *argv]), settings)
        return found.connection_string, found.queue_service_uri

    uri = "https://acct.queue.core.windows.net"
    both = {"AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "AzureWebJobsStorage__queueServiceUri": uri}
    assert target([], both) == ("UseDevelopmentStorage=true", None)
    assert target([], {"AzureWebJobsStorage__queueServiceUri": uri}) == (None, uri)
    assert target(["--account-url", uri], both) == (None, uri)
    assert target(["--connection-string", "x"], {}) == ("x", None)
    # Before the subcommand as after it:
    found = storage_target(build_parser().parse_args(["--connection-string", "y", "list"]),
                           ToolSettings(values={}))
    assert found.connection_string == "y" and found.source == "--connection-string"
    with pytest.raises(ToolError, match="no storage account"):
        target([], {})


def test_development_storage_means_azurite_on_10001() -> None:
    queues = Queues.connect("user-create-requests", connection_string="UseDevelopmentStorage=true")
    assert queues.poison.url == "http://127.0.0.1:10001/devstoreaccount1/user-create-requests-poison"


def test_no_storage_account_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage__queueServiceUri", raising=False)
    monkeypatch.delenv("HIRE_SETTINGS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no local.settings.json here
    assert main(["list"]) == 2
    assert "no storage account" in capsys.readouterr().err
