"""How many messages the local host runs at once, and who gets each message."""

from __future__ import annotations

from collections import Counter

from tests.funchost.conftest import HostFactory, Queues, unique_queue, wait_for


def _slow_queues() -> dict[str, str]:
    return {
        "SLOW_INPUT_QUEUE": unique_queue("slow-in"),
        "SLOW_OUTPUT_QUEUE": unique_queue("slow-out"),
    }


def test_in_flight_never_exceeds_batch_size_plus_new_batch_threshold(
    make_host: HostFactory, queues: Queues
):
    names = _slow_queues()
    settings = {**names, "PYTHON_THREADPOOL_THREAD_COUNT": "16"}
    host = make_host(
        "slow", settings=settings, host_options={"batchSize": 2, "newBatchThreshold": 1}
    )
    # Uneven durations: a batch that all ends together would never show the overlap.
    for index in range(10):
        queues.send(names["SLOW_INPUT_QUEUE"], f"{0.2 + 0.15 * (index % 3):.2f}:{index}")
    with host:
        assert host.wait_until_drained(20)
    assert host.module.max_running == 3
    assert len(host.module.finished) == 10


def test_sync_functions_are_limited_by_the_worker_thread_pool(
    make_host: HostFactory, queues: Queues
):
    names = _slow_queues()
    settings = {**names, "PYTHON_THREADPOOL_THREAD_COUNT": "2"}
    host = make_host("slow", settings=settings, host_options={"batchSize": 4})
    for index in range(6):
        queues.send(names["SLOW_INPUT_QUEUE"], f"0.3:{index}")
    with host:
        assert host.wait_until_drained(20)
    assert host.module.max_running == 2
    assert len(host.module.finished) == 6


def test_two_hosts_on_one_queue_process_each_message_once(make_host: HostFactory, queues: Queues):
    names = _slow_queues()
    options = {"batchSize": 4, "newBatchThreshold": 2}
    first = make_host("slow", settings=names, host_options=options)
    second = make_host("slow", settings=names, host_options=options)
    bodies = [f"0.02:{index}" for index in range(40)]
    for body in bodies:
        queues.send(names["SLOW_INPUT_QUEUE"], body)
    with first, second:
        assert first.wait_until_drained(30)
        assert second.wait_until_drained(30)

    handled = Counter(first.module.finished + second.module.finished)
    assert sorted(handled) == sorted(bodies)
    assert set(handled.values()) == {1}, "a message ran twice without any failure"
    records = first.invocations + second.invocations
    assert len(records) == 40 and {r.outcome for r in records} == {"succeeded"}
    assert {r.dequeue_count for r in records} == {1}
    assert sorted(queues.peek(names["SLOW_OUTPUT_QUEUE"]))[:1] == [b"done:0.02:0"]
    assert queues.count(names["SLOW_OUTPUT_QUEUE"]) == 40


def test_the_lease_is_renewed_while_a_function_outlasts_it(make_host: HostFactory, queues: Queues):
    names = _slow_queues()
    # A one-second lease on a 2.5 s invocation: without renewal the message would be visible
    # again, and received again by this same host, while the first invocation still runs.
    host = make_host("slow", settings=names, lease_seconds=1)
    queues.send(names["SLOW_INPUT_QUEUE"], "2.5:long")
    with host:
        wait_for(lambda: host.module.started == ["2.5:long"])
        assert host.wait_until_drained(20)
    assert host.module.started == ["2.5:long"]
    ((outcome, dequeue_count),) = [(r.outcome, r.dequeue_count) for r in host.invocations]
    assert (outcome, dequeue_count) == ("succeeded", 1)
    assert queues.peek(names["SLOW_OUTPUT_QUEUE"]) == [b"done:2.5:long"]
