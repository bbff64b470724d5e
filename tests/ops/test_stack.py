"""scripts/stack's pieces that do not need the fixed development ports."""

from __future__ import annotations

import uuid
from pathlib import Path

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from devtools.azurite import AzuriteQueue
from devtools.stack import create_storage, run_tool


def test_the_stack_makes_the_queues_and_the_ledger_table(azurite: AzuriteQueue) -> None:
    name = f"req-{uuid.uuid4().hex[:10]}"
    table = f"ledger{uuid.uuid4().hex[:10]}"
    settings = {"REQUEST_QUEUE_NAME": name, "RESULT_QUEUE_NAME": f"{name}-out",
                "HIRE_LEDGER_TABLE": table}
    made = create_storage(settings, azurite.connection_string)
    again = create_storage(settings, azurite.connection_string)  # idempotent
    assert made == again == [name, f"{name}-poison", f"{name}-out", f"table {table}"]
    queues = {q.name for q in QueueServiceClient.from_connection_string(
        azurite.connection_string).list_queues()}
    assert {name, f"{name}-poison", f"{name}-out"} <= queues
    tables = {t.name for t in TableServiceClient.from_connection_string(
        azurite.connection_string).list_tables()}
    assert table in tables


def test_run_needs_a_started_stack_and_a_known_tool(tmp_path: Path) -> None:
    assert run_tool(tmp_path / "missing.json", "hires", ["list"]) == 2
    assert run_tool(tmp_path / "missing.json", "rm", ["-rf", "/"]) == 2
