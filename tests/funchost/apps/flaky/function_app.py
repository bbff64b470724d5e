"""Fails on purpose, as the JSON body says: {"name": ..., "fail_times": N} raises on the
first N attempts; "oversized_output_times": N sets an output storage rejects (over 64 KiB)
on the first N attempts. The output is always set before failing, so a host that wrote
outputs of failed invocations would show it."""

import json
import threading
import time
import typing

import azure.functions as func

app = func.FunctionApp()

attempts: list[dict[str, object]] = []
_lock = threading.Lock()


# Out[typing.List[str]], not Out[list[str]]: the worker's annotation check only knows the former.
@app.queue_trigger(
    arg_name="msg", queue_name="%FLAKY_INPUT_QUEUE%", connection="AzureWebJobsStorage"
)
@app.queue_output(
    arg_name="out", queue_name="%FLAKY_OUTPUT_QUEUE%", connection="AzureWebJobsStorage"
)
def flaky(msg: func.QueueMessage, out: func.Out[typing.List[str]]) -> None:  # noqa: UP006
    attempt: dict[str, object] = {
        "id": msg.id,
        "dequeue_count": msg.dequeue_count,
        "started": time.monotonic(),
    }
    try:
        spec = json.loads(msg.get_body())
        name = spec["name"]
        out.set([f"{name}:{msg.dequeue_count}"])
        if msg.dequeue_count <= spec.get("fail_times", 0):
            raise RuntimeError(f"planned failure on attempt {msg.dequeue_count}")
        if msg.dequeue_count <= spec.get("oversized_output_times", 0):
            out.set([f"{name}:small", "x" * 70_000])
    finally:
        attempt["ended"] = time.monotonic()
        with _lock:
            attempts.append(attempt)
