"""Starting, stopping, draining, settings and the command line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devtools.azurite import AzuriteQueue
from tests.funchost.conftest import APPS, HostFactory, Queues, unique_queue, wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _slow_queues() -> dict[str, str]:
    return {
        "SLOW_INPUT_QUEUE": unique_queue("slow-in"),
        "SLOW_OUTPUT_QUEUE": unique_queue("slow-out"),
    }


def test_graceful_stop_finishes_in_flight_work_and_takes_no_more(
    make_host: HostFactory, queues: Queues
):
    names = _slow_queues()
    # One message at a time, so the second waits in the queue while the first runs.
    host = make_host("slow", settings=names, host_options={"batchSize": 1, "newBatchThreshold": 0})
    queues.send(names["SLOW_INPUT_QUEUE"], "1.0:first")
    host.start()
    wait_for(lambda: host.module.started == ["1.0:first"])
    queues.send(names["SLOW_INPUT_QUEUE"], "0.1:second")

    assert host.stop(timeout=10) is True

    assert host.module.finished == ["1.0:first"]
    assert [r.outcome for r in host.invocations] == ["succeeded"]
    assert queues.peek(names["SLOW_OUTPUT_QUEUE"]) == [b"done:1.0:first"]
    assert queues.peek(names["SLOW_INPUT_QUEUE"]) == [b"0.1:second"]


def test_stop_reports_invocations_that_outlast_its_timeout(make_host: HostFactory, queues: Queues):
    names = _slow_queues()
    host = make_host("slow", settings=names)
    queues.send(names["SLOW_INPUT_QUEUE"], "1.5:stubborn")
    host.start()
    wait_for(lambda: host.module.started == ["1.5:stubborn"])
    assert host.stop(timeout=0.2) is False


def test_run_with_drain_returns_once_the_queues_are_empty(make_host: HostFactory, queues: Queues):
    names = {
        "ECHO_INPUT_QUEUE": unique_queue("echo-in"),
        "ECHO_OUTPUT_QUEUE": unique_queue("echo-out"),
    }
    host = make_host("echo", settings=names)
    for index in range(5):
        queues.send(names["ECHO_INPUT_QUEUE"], f"m{index}")
    assert host.run(drain=True, drain_timeout=20) == 0
    assert len(host.invocations) == 5
    assert queues.count(names["ECHO_OUTPUT_QUEUE"]) == 5


def test_a_message_waiting_out_its_retry_delay_is_not_drained(
    make_host: HostFactory, queues: Queues
):
    names = {
        "FLAKY_INPUT_QUEUE": unique_queue("flaky-in"),
        "FLAKY_OUTPUT_QUEUE": unique_queue("flaky-out"),
    }
    options = {"visibilityTimeout": "00:00:30", "maxDequeueCount": 5}
    host = make_host("flaky", settings=names, host_options=options)
    queues.send(names["FLAKY_INPUT_QUEUE"], json.dumps({"name": "later", "fail_times": 1}))
    assert host.run(drain=True, drain_timeout=1.5) == 1
    assert [r.outcome for r in host.invocations] == ["failed"]
    assert queues.count(names["FLAKY_INPUT_QUEUE"]) == 1


@pytest.mark.parametrize(
    ("environment", "overrides", "expected"),
    [
        ({}, {}, "from-file"),
        ({"GREETING": "from-env"}, {}, "from-env"),
        ({"GREETING": "from-env"}, {"GREETING": "from-argument"}, "from-argument"),
    ],
)
def test_local_settings_then_environment_then_explicit_settings(
    make_host: HostFactory,
    queues: Queues,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    overrides: dict[str, str],
    expected: str,
):
    app_dir = tmp_path / "echo"
    shutil.copytree(APPS / "echo", app_dir)
    input_queue, output_queue = unique_queue("file-in"), unique_queue("file-out")
    local_settings = {
        "IsEncrypted": False,
        "Values": {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "GREETING": "from-file",
            "ECHO_INPUT_QUEUE": input_queue,
            "ECHO_OUTPUT_QUEUE": output_queue,
        },
    }
    (app_dir / "local.settings.json").write_text(json.dumps(local_settings))
    monkeypatch.delenv("GREETING", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    with make_host(app_dir, settings=overrides) as host:
        # Queue names came from %SETTING% expressions resolved against the file.
        assert [f.queue_name for f in host.functions] == [input_queue]
        queues.send(input_queue, "greeting")
        assert host.wait_until_drained(15)
    # The app saw the winning value both at import time and while running.
    assert queues.peek(output_queue) == [f"{expected}|{expected}".encode()]
    assert os.environ["GREETING"] == expected


def test_explicit_settings_file(make_host: HostFactory, queues: Queues, tmp_path: Path):
    settings_file = tmp_path / "elsewhere.json"
    input_queue, output_queue = unique_queue("other-in"), unique_queue("other-out")
    settings_file.write_text(
        json.dumps({"Values": {"ECHO_INPUT_QUEUE": input_queue, "ECHO_OUTPUT_QUEUE": output_queue}})
    )
    with make_host("echo", settings_file=settings_file) as host:
        queues.send(input_queue, "x")
        assert host.wait_until_drained(15)
    assert queues.peek(output_queue) == [b"echo:x"]


def _cli_environment(azurite: AzuriteQueue, queues: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "AzureWebJobsStorage": azurite.connection_string,
        **queues,
        "PYTHONPATH": str(PROJECT_ROOT),
    }


def test_cli_drain_runs_the_app_and_shows_its_logging(
    funchost_azurite: AzuriteQueue, queues: Queues
):
    names = {
        "ECHO_INPUT_QUEUE": unique_queue("cli-in"),
        "ECHO_OUTPUT_QUEUE": unique_queue("cli-out"),
    }
    queues.send(names["ECHO_INPUT_QUEUE"], "via-cli")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.funchost",
            "--app-dir",
            str(APPS / "echo"),
            "--drain",
            "--drain-timeout",
            "30",
        ],
        env=_cli_environment(funchost_azurite, names),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Executed 'Functions.echo' (Succeeded" in completed.stderr
    assert "echo received 'via-cli'" in completed.stderr, "the function's own logging is missing"
    assert queues.peek(names["ECHO_OUTPUT_QUEUE"]) == [b"echo:via-cli"]


def test_cli_sigterm_lets_the_running_invocation_finish(
    funchost_azurite: AzuriteQueue, queues: Queues
):
    names = _slow_queues()
    queues.send(names["SLOW_INPUT_QUEUE"], "1.5:signalled")
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.funchost", "--app-dir", str(APPS / "slow")],
        env=_cli_environment(funchost_azurite, names),
        cwd=PROJECT_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    started = threading.Event()

    def read_log() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "Executing 'Functions.slow'" in line:
                started.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        assert started.wait(30), "".join(lines)
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("".join(lines)) from None
        assert returncode == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=5)
    log = "".join(lines)
    assert "Executed 'Functions.slow' (Succeeded" in log, log
    assert queues.peek(names["SLOW_OUTPUT_QUEUE"]) == [b"done:1.5:signalled"]
    assert queues.count(names["SLOW_INPUT_QUEUE"]) == 0


def test_cli_reports_configuration_errors(tmp_path: Path):
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.queue_trigger(arg_name='msg', queue_name='%MISSING_QUEUE_SETTING%',"
        " connection='AzureWebJobsStorage')\n"
        "def handler(msg: func.QueueMessage) -> None: ...\n"
    )
    completed = subprocess.run(
        [sys.executable, "-m", "devtools.funchost", "--app-dir", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "%MISSING_QUEUE_SETTING%" in completed.stderr
