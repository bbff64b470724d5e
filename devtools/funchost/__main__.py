"""``python -m devtools.funchost`` / ``local-func-host``: run a function app's queue triggers."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from devtools.funchost.errors import FunctionHostError
from devtools.funchost.host import LOCAL_SETTINGS_FILE, LocalFunctionsHost
from devtools.funchost.leases import DEFAULT_LEASE_SECONDS
from devtools.funchost.worker import current_invocation

EXIT_CONFIGURATION_ERROR = 2


class _InvocationFilter(logging.Filter):
    """Tags each record with the invocation it was logged from, so the function's own log
    lines can be told apart on the console as in `func start`."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = current_invocation.get()
        record.invocation = f" [{scope.function_name} {scope.invocation_id[:8]}]" if scope else ""
        return True


def configure_logging(*, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_InvocationFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s%(invocation)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # The app's own INFO logging shows, as it does under the real host.
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # The storage SDK logs every HTTP request at INFO.
    logging.getLogger("azure").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local-func-host",
        description="Run the queue-triggered functions of a Python v2 function app locally, "
        "treating messages as the Azure Functions host does (Azurite or real storage).",
    )
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=Path.cwd(),
        help="folder holding function_app.py and host.json (default: current)",
    )
    parser.add_argument(
        "--script",
        default="function_app.py",
        help="the app script inside --app-dir (default: function_app.py)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        help=f"settings file (default: {LOCAL_SETTINGS_FILE} in --app-dir, if any)",
    )
    parser.add_argument(
        "--drain",
        action="store_true",
        help="exit once every trigger queue is empty and nothing is in flight",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --drain: give up (exit code 1) after this many seconds",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a graceful stop waits for in-flight invocations (default 30)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=int,
        default=DEFAULT_LEASE_SECONDS,
        help="visibility lease per received message, renewed at half-time "
        f"(default {DEFAULT_LEASE_SECONDS}, as the host)",
    )
    parser.add_argument(
        "--records",
        type=Path,
        default=None,
        metavar="FILE",
        help="append one JSON line per handled message (outcome, duration, CPU time) to FILE",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve the app's HTTP triggers on 127.0.0.1:PORT (func start uses 7071; "
        "0 picks a free port); without it HTTP triggers are skipped",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    configure_logging(verbose=arguments.verbose)
    app_dir = arguments.app_dir.resolve()
    settings_file = arguments.settings.resolve() if arguments.settings else None
    log = logging.getLogger("devtools.funchost")
    try:
        host = LocalFunctionsHost(
            app_dir,
            script=arguments.script,
            settings_file=settings_file,
            lease_seconds=arguments.lease_seconds,
            records_file=arguments.records.resolve() if arguments.records else None,
            keep_records=False,
            http_port=arguments.http_port,
        )
        if app_dir.is_dir():
            # The worker runs with the app folder as its working directory.
            os.chdir(app_dir)
        return host.run(
            drain=arguments.drain,
            drain_timeout=arguments.drain_timeout,
            stop_timeout=arguments.stop_timeout,
        )
    except FunctionHostError as error:
        log.error("%s", error)
        return EXIT_CONFIGURATION_ERROR


if __name__ == "__main__":
    sys.exit(main())
