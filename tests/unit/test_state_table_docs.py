"""The docs' state table (docs/design.md, "The hire state machine") is the code's table."""

from __future__ import annotations

import re
from pathlib import Path

from shared.domain.model import HireState
from shared.domain.planning import STEP_OF_STATE, Step

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def _docs_table() -> dict[str, str]:
    text = DESIGN.read_text(encoding="utf-8")
    section = text.split("### The hire state machine", 1)[1].split("\n### ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        state = re.fullmatch(r"`([a-z_]+)`", cells[0])
        step = re.fullmatch(r"`([a-z_]+)`", cells[2])
        assert state and step, f"not a `state` | ... | `step` row: {line}"
        rows[state.group(1)] = step.group(1)
    return rows


def test_the_docs_state_table_is_the_codes() -> None:
    code = {state.value: step.value for state, step in STEP_OF_STATE.items()}
    assert _docs_table() == code


def test_every_state_has_a_step() -> None:
    assert set(STEP_OF_STATE) == set(HireState)
    assert set(STEP_OF_STATE.values()) <= set(Step)


def test_the_decision_changes_a_record_only_through_its_transitions() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "service"
    for name in ("provisioning.py", "workflow.py", "licensing.py"):
        text = (shared / name).read_text(encoding="utf-8")
        assert ".evolve(" not in text, name
        assert not re.search(r"replace\(\s*record\b", text), name
