"""Send first, delete second: what a failure in between, or a lost lease, leaves behind.

Semantics (also in docs/operations.md, the runbook): a replay whose delete fails (or whose process
dies after the send) leaves the event in both queues. That is a duplicate, which the function
absorbs because it processes an eventId once; nothing is lost. The next replay finds the poison
copy still there and sends it once more, with the same replay count (the poison copy itself
never changed), then deletes it; a copy that is no longer in the poison queue is never sent
again.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.queue import QueueClient

from devtools.azurite import AzuriteQueue
from ops.messages import MessageEncoding, PoisonMessage
from ops.poison_queue import (
    Lease,
    LeaseFactory,
    Queues,
    ReplayReport,
    execute_replay,
    replay_poison_queue,
    sender,
)
from ops.selection import Selection, plan_replay
from shared.domain.events import decode_body, parse_event
from tests.ops.conftest import Bench, hire_event


class SimulatedCrash(Exception):
    pass


class CrashingDeleteLease(Lease):
    def delete(self, message: PoisonMessage) -> None:
        raise SimulatedCrash("the process died between send and delete")


class FailingDeleteLease(Lease):
    def delete(self, message: PoisonMessage) -> None:
        raise HttpResponseError("delete refused by the service")


def replay(bench: Bench, lease_factory: LeaseFactory = Lease) -> ReplayReport:
    return replay_poison_queue(
        Queues(request=bench.request, poison=bench.poison),
        Selection(event_ids=frozenset({"hr-1"})),
        encoding=MessageEncoding.BASE64,
        now=datetime.now(UTC),
        lease_factory=lease_factory,
    )


def test_crash_between_send_and_delete_loses_nothing(bench: Bench) -> None:
    poisoned = bench.poison_recorded(hire_event("hr-1"))

    with pytest.raises(SimulatedCrash):
        replay(bench, CrashingDeleteLease)

    assert [e["eventId"] for e in bench.request_events()] == ["hr-1"]
    assert bench.poison_ids() == {poisoned}  # still there, and visible again at once

    report = replay(bench)

    assert [m.message_id for m in report.replayed] == [poisoned]
    assert bench.poison_ids() == set()
    events = bench.request_events()
    assert [e["eventId"] for e in events] == ["hr-1", "hr-1"]
    assert [e["replay"]["count"] for e in events] == [1, 1]

    assert replay(bench).replayed == []  # gone from poison: never sent again
    assert len(bench.request_events()) == 2


def test_failed_delete_is_reported_and_keeps_the_duplicates(bench: Bench) -> None:
    first = bench.poison_recorded(hire_event("hr-1"))
    second = bench.poison_by_host(hire_event("hr-1"))

    report = replay(bench, FailingDeleteLease)

    assert not report.succeeded
    assert len(report.replayed) == 1 and report.sent_not_deleted == report.replayed
    assert report.duplicates_dropped == []
    assert bench.poison_ids() == {first, second}
    assert len(bench.request_events()) == 1


def test_failed_send_deletes_nothing(bench: Bench, azurite: AzuriteQueue) -> None:
    poisoned = bench.poison_recorded(hire_event("hr-1"))
    unreachable = QueueClient.from_connection_string(azurite.connection_string, "no-such-queue")

    with Lease(bench.poison, MessageEncoding.BASE64) as lease:
        outcome = execute_replay(
            plan_replay(lease.receive_all()),
            send=sender(unreachable),
            source=lease,
            now=datetime.now(UTC),
            encoding=MessageEncoding.BASE64,
        )

    assert [m.message_id for m, _ in outcome.not_sent] == [poisoned]
    assert "send failed" in outcome.not_sent[0][1]
    assert bench.poison_ids() == {poisoned}


def test_lease_renews_before_sending_when_half_gone(bench: Bench) -> None:
    bench.poison_recorded(hire_event("hr-1"))
    clock = [0.0]
    with Lease(bench.poison, MessageEncoding.BASE64, 60, clock=lambda: clock[0]) as lease:
        (message,) = lease.receive_all()
        clock[0] = 40.0  # 20 s left of 60: renew
        assert lease.confirm_held(message)
        lease.delete(message)  # works only with the renewed pop receipt
    assert bench.poison_ids() == set()


def test_a_lost_lease_skips_the_message_without_sending(bench: Bench) -> None:
    poisoned = bench.poison_recorded(hire_event("hr-1"))
    clock = [0.0]

    def lease_then_lose(queue: QueueClient, encoding: MessageEncoding, seconds: int) -> Lease:
        class LosingLease(Lease):
            def receive_all(self) -> list[PoisonMessage]:
                received = super().receive_all()
                # Another reader takes the message after our (one-second) lease ran out.
                time.sleep(1.1)
                taken = list(queue.receive_messages(visibility_timeout=30, max_messages=1))
                assert [m.id for m in taken] == [poisoned]
                clock[0] = 1000.0
                return received

        return LosingLease(queue, encoding, 1, clock=lambda: clock[0])

    report = replay(bench, lease_then_lose)

    assert report.replayed == [] and len(report.left_in_place) == 1
    assert "lease was lost" in report.left_in_place[0][1]
    assert bench.request_bodies() == []


def test_release_on_exit_makes_messages_visible_at_once(bench: Bench) -> None:
    bench.poison_recorded(hire_event("hr-1"))
    with Lease(bench.poison, MessageEncoding.BASE64, 300) as lease:
        assert len(lease.receive_all()) == 1
        assert bench.poison_ids() == set()
    assert len(bench.poison_ids()) == 1


def test_replayed_body_is_a_valid_event(bench: Bench) -> None:
    bench.poison_recorded(hire_event("hr-1"))
    replay(bench)
    (body,) = bench.request_bodies()
    # The function's own validation: lastFailure and replay are extra members it ignores.
    event = parse_event(decode_body(base64.b64decode(body)))
    assert event.event_id == "hr-1"
