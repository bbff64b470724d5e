"""Echoes each message to an output queue; "many:a,b" writes one message per item and
"stop" writes nothing (so a test can chain the app into itself without looping)."""

import logging
import os
import threading
import typing

import azure.functions as func

app = func.FunctionApp()

# Read at import time: settings must already be in the environment when the app is imported.
GREETING_AT_IMPORT = os.environ.get("GREETING")

received: list[tuple[str, bytes, int]] = []
_lock = threading.Lock()


# Out[typing.List[str]], not Out[list[str]]: the worker's annotation check only knows the former.
@app.queue_trigger(
    arg_name="msg", queue_name="%ECHO_INPUT_QUEUE%", connection="AzureWebJobsStorage"
)
@app.queue_output(
    arg_name="out", queue_name="%ECHO_OUTPUT_QUEUE%", connection="AzureWebJobsStorage"
)
def echo(msg: func.QueueMessage, out: func.Out[typing.List[str]]) -> None:  # noqa: UP006
    body = msg.get_body()
    with _lock:
        received.append((msg.id or "", body, msg.dequeue_count or 0))
    text = body.decode("utf-8")
    logging.info("echo received %r", text)
    if text == "stop":
        return
    if text.startswith("many:"):
        out.set(text.removeprefix("many:").split(","))
    elif text == "greeting":
        out.set([f"{os.environ.get('GREETING')}|{GREETING_AT_IMPORT}"])
    else:
        out.set([f"echo:{text}"])


@app.route(route="health")
def health(req: func.HttpRequest) -> func.HttpResponse:
    # HTTP triggers are not emulated; the host must skip this function, not fail.
    return func.HttpResponse("ok")
