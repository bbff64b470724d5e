"""Plain regression tests for what the state-machine test found (FINDINGS-15.md).

F1-F6 have theirs on the fix branch (i15); F7 was found against that branch.
"""

from __future__ import annotations

import pytest

from shared.errors import RedeliveryRequested, ServiceUnavailableError
from shared.outcomes import Status
from tests.unit.conftest import Bench, event


@pytest.mark.xfail(
    strict=False, reason="FINDINGS-15 F7, open on branch i15; remove once the fix is merged"
)
def test_a_failed_first_read_does_not_adopt_an_older_refusal(bench: Bench) -> None:
    """F7: the last delivery's first ledger read fails once (503) and is retried; the 403 a
    dead delivery wrote before this one started is not this delivery's outcome."""
    body = event(1, immutable_id=None)
    bench.partner_center.gdap_lapsed = True  # 403 on every call
    assert bench.deliver(body, delivery=1, message_id="m1").status is Status.REJECTED
    bench.poison.fail.append(ServiceUnavailableError("queue unavailable"))
    with pytest.raises(RedeliveryRequested):  # refused again, the poison copy failed: claim left
        bench.deliver(body, delivery=1, message_id="m2")
    bench.partner_center.gdap_lapsed = False  # the operator restores the role
    bench.ledger.fail_next["get"].append(ServiceUnavailableError("table", http_status=503))
    # The last delivery: insert conflicts, the read fails once, then it waits out m2's claim.
    outcome = bench.deliver(body, delivery=5, message_id="m2")
    assert outcome.status is Status.CREATED, outcome
