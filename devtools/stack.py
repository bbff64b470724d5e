"""The local stack by hand: Azurite (queues AND tables), the stand-ins, the local host.

``scripts/stack`` runs this. It starts Azurite on the development ports (blobs 10000, queues
10001, tables 10002: what ``UseDevelopmentStorage=true`` means), the HTTPS stand-ins seeded
with the demo partner and customers, writes their settings into ``local.settings.json``
(which the operator tools read as the host does), creates the request, result and poison
queues and the hire ledger's table, and runs the local Functions host until Ctrl-C; then it
stops everything it started.

``scripts/stack run TOOL ARGS...`` runs one tool against that stack with the stand-ins' CA
bundle (a machine-wide ``REQUESTS_CA_BUNDLE`` would otherwise win over the file's, as it does
for the host, and the stand-ins' certificates would not be trusted).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from devtools.azurite import PROJECT_ROOT, start_azurite_queue
from devtools.standins.__main__ import local_settings_document, write_private_json
from devtools.standins.demo import seed_demo
from devtools.standins.stack import StandInStack
from shared.local_settings import LOCAL_SETTINGS_FILE, read_local_settings
from shared.settings import DEFAULT_LEDGER_TABLE, DEFAULT_REQUEST_QUEUE, DEFAULT_RESULT_QUEUE

QUEUE_PORT = 10001  # tables on 10002, blobs on 10000
CA_BUNDLE = "REQUESTS_CA_BUNDLE"
TOOLS = ("hire-publish", "hire-preview", "hires", "poison-queue")


def create_storage(settings: dict[str, str], connection_string: str) -> list[str]:
    """The queues and the ledger table, so every tool works before the first hire."""
    request = settings.get("REQUEST_QUEUE_NAME") or DEFAULT_REQUEST_QUEUE
    result = settings.get("RESULT_QUEUE_NAME") or DEFAULT_RESULT_QUEUE
    queues = [request, f"{request}-poison", result]
    queue_service = QueueServiceClient.from_connection_string(connection_string)
    for name in queues:
        with contextlib.suppress(ResourceExistsError):
            queue_service.create_queue(name)
    table = settings.get("HIRE_LEDGER_TABLE") or DEFAULT_LEDGER_TABLE
    tables = TableServiceClient.from_connection_string(connection_string)
    with contextlib.suppress(ResourceExistsError):
        tables.create_table(table)
    return [*queues, f"table {table}"]


def run_stack(settings_path: Path) -> int:
    stop = threading.Event()

    def request_stop(_signal: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)  # also when started in the background
    with contextlib.ExitStack() as cleanup:
        try:
            azurite = cleanup.enter_context(start_azurite_queue(port=QUEUE_PORT))
        except RuntimeError as error:
            print(f"stack: Azurite did not start: {error}", file=sys.stderr)
            print("stack: is another Azurite already on ports 10000-10002?", file=sys.stderr)
            return 1
        print(f"stack: Azurite: queues 127.0.0.1:{azurite.port}, tables :{azurite.table_port}")
        standins = cleanup.enter_context(StandInStack.start())
        partner = seed_demo(standins)
        write_private_json(settings_path, local_settings_document(settings_path, standins, partner))
        print(f"stack: stand-ins up (Partner Center {standins.partner_center.base_url}); "
              f"settings written to {settings_path}")
        settings = read_local_settings(settings_path)
        made = create_storage(settings, azurite.connection_string)
        print(f"stack: ready: {', '.join(made)}")
        environment = {**os.environ, CA_BUNDLE: settings[CA_BUNDLE]}
        host = subprocess.Popen(
            [
                sys.executable, "-m", "devtools.funchost",
                "--app-dir", str(PROJECT_ROOT), "--settings", str(settings_path),
            ],
            env=environment,
            cwd=settings_path.parent,
        )
        cleanup.callback(_stop_process, host)
        print("stack: the local Functions host is running; Ctrl-C stops everything.")
        print("stack: in another terminal: .venv/bin/hire-publish, .venv/bin/poison-queue list, "
              ".venv/bin/hires list; ./scripts/stack run hire-preview FILE")
        while not stop.wait(0.5):
            if host.poll() is not None:
                print(f"stack: the host exited ({host.returncode})", file=sys.stderr)
                return 1
    print("stack: stopped")
    return 0


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_tool(settings_path: Path, tool: str, arguments: Sequence[str]) -> int:
    if tool not in TOOLS:
        print(f"stack: run one of {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    if not settings_path.is_file():
        print(f"stack: {settings_path} does not exist: start the stack first", file=sys.stderr)
        return 2
    settings = read_local_settings(settings_path)
    environment = dict(os.environ)
    if settings.get(CA_BUNDLE):
        environment[CA_BUNDLE] = settings[CA_BUNDLE]
    executable = Path(sys.executable).with_name(tool)
    command = [str(executable), "--settings", str(settings_path), *arguments]
    return subprocess.call(command, env=environment)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stack", description="Run the local stack by hand (docs/operations.md)."
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=PROJECT_ROOT / LOCAL_SETTINGS_FILE,
        help="the settings file to write and read (default: %(default)s)",
    )
    parser.add_argument("command", nargs="?", choices=("up", "run"), default="up")
    parser.add_argument("tool", nargs="?", help="with run: " + ", ".join(TOOLS))
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "run":
        if not args.tool:
            parser.error("run needs a tool")
        return run_tool(args.settings, args.tool, args.arguments)
    return run_stack(args.settings)


if __name__ == "__main__":
    raise SystemExit(main())
