"""The host's last delivery is kept spare: an instance dying during the function's last
delivery still leaves the event to the function (soak, session 7: a host killed during a fifth
delivery left the event to the host's body-only poison copy, with no outcome)."""

from __future__ import annotations

import pytest

from shared.domain.outcomes import Status
from shared.domain.retry import RetryPolicy
from shared.hostconfig import QueueHostConfig
from tests.unit.conftest import RETRY, Bench, Killed, event

UPN = "jane1@contoso.onmicrosoft.com"


@pytest.mark.parametrize(("max_dequeue_count", "last"), [(6, 5), (5, 4), (2, 1), (1, 1)])
def test_the_function_ends_events_one_delivery_before_the_host(
    max_dequeue_count: int, last: int
) -> None:
    policy = RetryPolicy.for_host(max_dequeue_count)
    assert policy.max_deliveries == last
    assert policy.is_last(last) and policy.is_last(max_dequeue_count)
    assert not policy.is_last(last - 1)


def test_the_deployed_host_json_leaves_a_spare_delivery_after_five() -> None:
    host = QueueHostConfig.load()
    assert host.max_dequeue_count == 6
    assert RetryPolicy.for_host(host.max_dequeue_count).max_deliveries == 5


@pytest.mark.parametrize("kill_at", range(1, 8))
def test_a_last_delivery_that_dies_is_ended_by_the_spare_one(bench: Bench, kill_at: int) -> None:
    # Transient failures through the first four deliveries, then the function's last
    # delivery dies at its kill_at-th port call (SIGKILL: no outcome, no poison copy).
    bench.partner_center.create_script = ["throttle"] * (3 * (RETRY.max_deliveries - 1))
    for number in range(1, RETRY.max_deliveries):
        with pytest.raises(Exception, match="delivers it again"):
            bench.deliver(event(), delivery=number)
        bench.clock.advance(60)
    bench.gate.kill = True
    paused = bench.run_paused(kill_at, event(), delivery=RETRY.max_deliveries)
    assert isinstance(paused.finish(), Killed)
    bench.gate.kill = False
    bench.clock.advance(300)  # the dead delivery's claim runs out

    spare = bench.deliver(event(), delivery=RETRY.max_deliveries + 1)

    assert spare.status in (Status.CREATED, Status.ALREADY_EXISTS)
    bench.assert_one_correct_account(UPN)
