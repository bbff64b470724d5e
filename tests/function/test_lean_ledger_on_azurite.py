"""The ledger's lean ``TableClient`` (shared/adapters/sdk_pipeline.py) on Azurite: Shared Key
authentication, conditional writes and a paged query (which reads the location mode the kept
storage policies record), over real HTTP."""

from __future__ import annotations

import uuid

import pytest

from devtools.azurite import AzuriteQueue
from shared.adapters.ledger import open_table_ledger
from shared.domain.errors import LedgerConflict
from shared.domain.model import HireRecord, HireState
from shared.domain.ports import LedgerQuery

CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"


def test_the_lean_ledger_writes_reads_and_queries_on_azurite(azurite: AzuriteQueue) -> None:
    table = "lean" + uuid.uuid4().hex[:12]
    ledger = open_table_ledger(table, connection_string=azurite.connection_string)
    event_id = f"hr-{uuid.uuid4()}"
    added = ledger.add(HireRecord(event_id=event_id, customer_tenant_id=CUSTOMER))
    assert added.etag
    read = ledger.get(event_id)
    assert read is not None and read.etag == added.etag
    updated = ledger.update(read.evolve(state=HireState.CREATING))
    with pytest.raises(LedgerConflict):
        ledger.update(read.evolve(state=HireState.CREATED))  # the stale ETag is refused
    assert [r.event_id for r in ledger.query(LedgerQuery(customer_tenant_id=CUSTOMER))] == [
        event_id
    ]
    assert ledger.get(event_id) == updated
