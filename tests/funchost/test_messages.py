"""A message's life on the local host, checked against real queues (Azurite)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from tests.funchost.conftest import HostFactory, Queues, unique_queue


def _echo_queues() -> dict[str, str]:
    return {
        "ECHO_INPUT_QUEUE": unique_queue("echo-in"),
        "ECHO_OUTPUT_QUEUE": unique_queue("echo-out"),
    }


def _flaky_queues() -> dict[str, str]:
    return {
        "FLAKY_INPUT_QUEUE": unique_queue("flaky-in"),
        "FLAKY_OUTPUT_QUEUE": unique_queue("flaky-out"),
    }


def test_success_deletes_the_message_and_writes_each_output(make_host: HostFactory, queues: Queues):
    names = _echo_queues()
    with make_host("echo", settings=names) as host:
        first = queues.send(names["ECHO_INPUT_QUEUE"], "hello")
        queues.send(names["ECHO_INPUT_QUEUE"], "many:a,b,c")
        assert host.wait_until_drained(15)

    assert queues.count(names["ECHO_INPUT_QUEUE"]) == 0
    assert sorted(queues.peek(names["ECHO_OUTPUT_QUEUE"])) == [b"a", b"b", b"c", b"echo:hello"]
    assert queues.count(names["ECHO_INPUT_QUEUE"] + "-poison") == 0
    records = host.invocations
    assert [r.outcome for r in records] == ["succeeded", "succeeded"]
    assert {r.message_id for r in records} >= {first}
    assert all(r.dequeue_count == 1 and r.invoked and r.duration > 0 for r in records)
    # The function got the decoded body and the storage metadata.
    (received,) = [entry for entry in host.module.received if entry[0] == first]
    assert received == (first, b"hello", 1)


def test_failures_are_retried_with_increasing_dequeue_counts(
    make_host: HostFactory, queues: Queues
):
    names = _flaky_queues()
    with make_host("flaky", settings=names, host_options={"maxDequeueCount": 5}) as host:
        message_id = queues.send(
            names["FLAKY_INPUT_QUEUE"], json.dumps({"name": "m", "fail_times": 2})
        )
        assert host.wait_until_drained(15)

    records = [r for r in host.invocations if r.message_id == message_id]
    assert [(r.dequeue_count, r.outcome) for r in records] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    assert "planned failure on attempt 1" in (records[0].error or "")
    # Only the successful attempt's output exists, though every attempt set one.
    assert queues.peek(names["FLAKY_OUTPUT_QUEUE"]) == [b"m:3"]
    assert queues.count(names["FLAKY_INPUT_QUEUE"] + "-poison") == 0


def test_poison_after_max_dequeue_count_keeps_the_body_only(make_host: HostFactory, queues: Queues):
    names = _flaky_queues()
    poison = names["FLAKY_INPUT_QUEUE"] + "-poison"
    body = json.dumps({"name": "doomed", "fail_times": 99})
    with make_host("flaky", settings=names) as host:  # host.json: maxDequeueCount 3
        message_id = queues.send(names["FLAKY_INPUT_QUEUE"], body)
        assert host.wait_until_drained(15)

    records = [r for r in host.invocations if r.message_id == message_id]
    assert [(r.dequeue_count, r.outcome) for r in records] == [
        (1, "failed"),
        (2, "failed"),
        (3, "poisoned"),
    ]
    assert queues.count(names["FLAKY_INPUT_QUEUE"]) == 0
    assert queues.count(names["FLAKY_OUTPUT_QUEUE"]) == 0, "a failed invocation wrote output"
    (copy,) = queues.client(poison).receive_messages(max_messages=5)
    assert copy.content == queues_encoded(body), "the poison copy must be the original text"
    assert copy.id != message_id
    assert copy.dequeue_count == 1
    assert copy.expires_on is not None and copy.inserted_on is not None
    assert copy.expires_on - copy.inserted_on == timedelta(days=7)


def queues_encoded(body: str) -> str:
    return base64.b64encode(body.encode()).decode("ascii")


def test_rejected_output_write_fails_the_invocation(make_host: HostFactory, queues: Queues):
    # Storage refuses messages over 64 KiB. The host writes outputs as part of the invocation,
    # before deleting the trigger message, so the invocation fails and the message is retried.
    names = _flaky_queues()
    with make_host("flaky", settings=names) as host:
        message_id = queues.send(
            names["FLAKY_INPUT_QUEUE"], json.dumps({"name": "big", "oversized_output_times": 1})
        )
        assert host.wait_until_drained(15)

    records = [r for r in host.invocations if r.message_id == message_id]
    assert [(r.dequeue_count, r.outcome) for r in records] == [(1, "failed"), (2, "succeeded")]
    # The first attempt's small message was written before the big one failed: at least once.
    assert sorted(queues.peek(names["FLAKY_OUTPUT_QUEUE"])) == [b"big:2", b"big:small"]


def test_visibility_timeout_delays_the_retry(make_host: HostFactory, queues: Queues):
    names = _flaky_queues()
    options = {"visibilityTimeout": "00:00:02", "maxDequeueCount": 5}
    with make_host("flaky", settings=names, host_options=options) as host:
        queues.send(names["FLAKY_INPUT_QUEUE"], json.dumps({"name": "v", "fail_times": 1}))
        assert host.wait_until_drained(15)
        first, second = host.module.attempts

    assert (first["dequeue_count"], second["dequeue_count"]) == (1, 2)
    gap = second["started"] - first["ended"]
    # Storage keeps whole seconds; allow for Azurite's clock granularity but not an early retry.
    assert 1.0 <= gap < 4.0, gap


def test_without_visibility_timeout_the_retry_is_prompt(make_host: HostFactory, queues: Queues):
    names = _flaky_queues()
    with make_host("flaky", settings=names, host_options={"maxDequeueCount": 5}) as host:
        queues.send(names["FLAKY_INPUT_QUEUE"], json.dumps({"name": "p", "fail_times": 1}))
        assert host.wait_until_drained(15)
        first, second = host.module.attempts
    assert second["started"] - first["ended"] < 1.0


def test_base64_encoding_decodes_input_and_encodes_output(make_host: HostFactory, queues: Queues):
    names = _echo_queues()
    with make_host("echo", settings=names) as host:
        queues.send(names["ECHO_INPUT_QUEUE"], "héllo wörld")
        assert host.wait_until_drained(15)
    assert host.module.received[0][1] == "héllo wörld".encode()
    (raw,) = queues.peek_raw(names["ECHO_OUTPUT_QUEUE"])
    assert raw == queues_encoded("echo:héllo wörld")


def test_none_encoding_passes_text_through(make_host: HostFactory, queues: Queues):
    names = _echo_queues()
    with make_host("echo", settings=names, host_options={"messageEncoding": "none"}) as host:
        queues.send_raw(names["ECHO_INPUT_QUEUE"], "plain héllo")
        assert host.wait_until_drained(15)
    assert host.module.received[0][1] == "plain héllo".encode()
    assert queues.peek_raw(names["ECHO_OUTPUT_QUEUE"]) == ["echo:plain héllo"]


def test_body_that_is_not_base64_is_poisoned_at_once(make_host: HostFactory, queues: Queues):
    names = _echo_queues()
    poison = names["ECHO_INPUT_QUEUE"] + "-poison"
    with make_host("echo", settings=names) as host:
        message_id = queues.send_raw(names["ECHO_INPUT_QUEUE"], '{"not": "base64"}')
        assert host.wait_until_drained(15)

    (record,) = host.invocations
    assert (record.message_id, record.outcome, record.invoked) == (message_id, "poisoned", False)
    assert host.module.received == []
    assert queues.peek_raw(poison) == ['{"not": "base64"}']
    assert queues.count(names["ECHO_OUTPUT_QUEUE"]) == 0


def test_message_already_past_max_dequeue_count_is_poisoned_without_a_call(
    make_host: HostFactory, queues: Queues
):
    # A message whose earlier attempts never completed (a host killed mid-run) arrives with a
    # dequeue count above the limit; the host poisons it before calling the function.
    names = _flaky_queues()
    queue = queues.client(names["FLAKY_INPUT_QUEUE"])
    queue.create_queue()
    queues.send(names["FLAKY_INPUT_QUEUE"], json.dumps({"name": "stale"}))
    for _ in range(3):  # host.json maxDequeueCount is 3
        (message,) = queue.receive_messages(visibility_timeout=1)
        queue.update_message(message.id, message.pop_receipt, visibility_timeout=0)
    with make_host("flaky", settings=names) as host:
        assert host.wait_until_drained(15)
    (record,) = host.invocations
    assert (record.dequeue_count, record.outcome, record.invoked) == (4, "poisoned", False)
    assert host.module.attempts == []
    assert queues.count(names["FLAKY_INPUT_QUEUE"] + "-poison") == 1


def test_async_function_with_return_output_and_context(make_host: HostFactory, queues: Queues):
    names = {
        "ASYNC_INPUT_QUEUE": unique_queue("async-in"),
        "ASYNC_OUTPUT_QUEUE": unique_queue("async-out"),
    }
    host = make_host("asyncapp", settings=names)
    # The app names its connection "Storage": the host looks for AzureWebJobsStorage first.
    with host:
        queues.send(names["ASYNC_INPUT_QUEUE"], "quiet")
        assert host.wait_until_drained(15)
    assert queues.peek(names["ASYNC_OUTPUT_QUEUE"]) == [b"QUIET"]
    (record,) = host.invocations
    assert host.module.contexts == [("shout", record.invocation_id)]
    assert record.function_name == "shout"


def test_draining_waits_for_messages_an_invocation_writes(make_host: HostFactory, queues: Queues):
    # The app writes into its own trigger queue: the written message must be processed
    # before the host reports the queues drained.
    loop = unique_queue("loop")
    with make_host("echo", settings={"ECHO_INPUT_QUEUE": loop, "ECHO_OUTPUT_QUEUE": loop}) as host:
        queues.send(loop, "many:stop")
        assert host.wait_until_drained(15)
        bodies = [entry[1] for entry in host.module.received]
    assert bodies == [b"many:stop", b"stop"]
    assert [r.outcome for r in host.invocations] == ["succeeded", "succeeded"]


def test_records_file_has_a_line_per_message_with_the_function_cpu_time(
    make_host: HostFactory, queues: Queues, tmp_path
):
    names = _flaky_queues()
    records_file = tmp_path / "records.jsonl"
    with make_host(
        "flaky",
        settings=names,
        host_options={"maxDequeueCount": 5},
        records_file=records_file,
    ) as host:
        queues.send(names["FLAKY_INPUT_QUEUE"], json.dumps({"name": "r", "fail_times": 1}))
        assert host.wait_until_drained(20)

    lines = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert [line["outcome"] for line in lines] == ["failed", "succeeded"]
    assert [line["dequeueCount"] for line in lines] == [1, 2]
    # Measured also when the function raised; never the error text (it may quote anything).
    assert all(isinstance(line["cpuTime"], float) and line["cpuTime"] >= 0 for line in lines)
    assert all("error" not in line for line in lines)
    assert [r.cpu_time is not None for r in host.invocations] == [True, True]
