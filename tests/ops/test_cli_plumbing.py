"""The shared plumbing of the operator tools: settings, fitted columns, the event reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.cli import ELLIPSIS, Column, ToolError, load_tool_settings, render_columns
from ops.event_input import EventInputError, split_events

GUID = "4b10bf41-ab11-40e3-8c53-cd67849b50de"


def columns() -> list[Column]:
    return [
        Column("Event ID", ["hr-1", "hr-2026-000777"], "id", keep=9),
        Column("Failure", ["short", "a long failure message " * 4], "text", keep=8),
        Column("Message ID", [GUID, GUID], "id", keep=5),
        Column("Customer", [GUID, GUID], "id", keep=1),
    ]


@pytest.mark.parametrize("width", [40, 80, 120])
def test_columns_fit_and_ids_stay_whole(width: int) -> None:
    rendered = render_columns(columns(), width)
    assert all(len(line) <= width for line in rendered.lines)
    assert all("hr-2026-000777" in line or "hr-1" in line for line in rendered.lines[1:])
    if "Message ID" not in rendered.hidden:  # shown: whole, never cut
        assert all(GUID in line for line in rendered.lines[1:])
    assert rendered.truncated and ELLIPSIS in "\n".join(rendered.lines)


def test_the_least_needed_columns_are_hidden_first() -> None:
    rendered = render_columns(columns(), 80)
    assert rendered.hidden == ["Customer"]
    narrow = render_columns(columns(), 50)
    assert narrow.hidden == ["Customer", "Message ID"]


def test_no_width_means_whole_values() -> None:
    rendered = render_columns(columns(), None)
    assert not rendered.hidden and not rendered.truncated
    assert ("a long failure message " * 4).strip() in "\n".join(rendered.lines)


def test_settings_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"Values": {"A": "file", "B": "file", "C": True}}))
    settings = load_tool_settings(path, {"B": "env"}, apply=False)
    assert (settings.get("A"), settings.get("B"), settings.get("C")) == ("file", "env", "true")
    assert settings.source("A") == f"A (in {path})"
    assert settings.source("B") == "B (environment variable)"
    assert settings.overridden("B") and not settings.overridden("A")


def test_a_missing_or_broken_settings_file_is_bad_usage(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="does not exist") as missing:
        load_tool_settings(tmp_path / "nope.json", {}, apply=False)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ToolError, match="cannot read") as unreadable:
        load_tool_settings(broken, {}, apply=False)
    assert missing.value.exit_code == unreadable.value.exit_code == 2


EVENTS = [{"eventId": "a"}, {"eventId": "b"}]


@pytest.mark.parametrize(
    "text",
    [
        "\n".join(json.dumps(e) for e in EVENTS),
        json.dumps(EVENTS),
        json.dumps(EVENTS, indent=2),
    ],
    ids=["json-lines", "array", "pretty-array"],
)
def test_every_shape_reads_the_same_events(text: str) -> None:
    events = split_events(text, source="f")
    assert [json.loads(e.text) for e in events] == EVENTS
    assert [e.position for e in events] == [1, 2]


def test_one_object_pretty_printed_is_one_event() -> None:
    (event,) = split_events(json.dumps(EVENTS[0], indent=2), source="f")
    assert json.loads(event.text) == EVENTS[0] and event.label == "f"


def test_a_bad_array_is_one_error_and_a_bad_line_is_its_own_event() -> None:
    with pytest.raises(EventInputError, match="not a valid JSON array"):
        split_events('[{"eventId": "a"},', source="f")
    lines = split_events('{"eventId": "a"}\n{not json\n', source="f")
    assert [e.label for e in lines] == ["f line 1", "f line 2"]
    assert split_events("  \n", source="f") == []


def test_what_would_fail_again_unchanged() -> None:
    from ops.messages import PoisonMessage
    from ops.selection import fails_unchanged
    from tests.ops.conftest import hire_event

    def copy(event: dict[str, object] | None, category: str) -> PoisonMessage:
        body = None if event is None else {**event, "lastFailure": {"category": category}}
        return PoisonMessage("m", "raw", body, None, None, 0)

    invalid = hire_event("hr-1")
    invalid["user"]["usageLocation"] = "XX"
    assert fails_unchanged(copy(invalid, "invalid_event")) is not None
    assert fails_unchanged(copy(hire_event("hr-1"), "invalid_event")) is None  # corrected
    assert fails_unchanged(copy(hire_event("hr-1"), "conflict")) is not None
    assert fails_unchanged(copy(hire_event("hr-1"), "validation")) is not None
    assert fails_unchanged(copy(hire_event("hr-1"), "permission")) is None
    assert fails_unchanged(copy(None, "")) is not None  # not an event
