"""Sleeps for the number of seconds in the body and records how many invocations ran at once."""

import threading
import time

import azure.functions as func

app = func.FunctionApp()

_lock = threading.Lock()
running = 0
max_running = 0
started: list[str] = []
finished: list[str] = []


@app.queue_trigger(
    arg_name="msg", queue_name="%SLOW_INPUT_QUEUE%", connection="AzureWebJobsStorage"
)
@app.queue_output(
    arg_name="done", queue_name="%SLOW_OUTPUT_QUEUE%", connection="AzureWebJobsStorage"
)
def slow(msg: func.QueueMessage, done: func.Out[str]) -> None:
    global running, max_running
    text = msg.get_body().decode()
    with _lock:
        running += 1
        max_running = max(max_running, running)
        started.append(text)
    try:
        time.sleep(float(text.split(":")[0]))
        done.set(f"done:{text}")
    finally:
        with _lock:
            running -= 1
            finished.append(text)
