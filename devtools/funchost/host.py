"""The local Functions host: settings, indexing, listeners, drain and graceful stop."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType, ModuleType, TracebackType
from typing import Literal

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient, QueueServiceClient

from devtools.funchost.app_loader import (
    HttpFunction,
    QueueFunction,
    find_function_app,
    import_script,
    index_app,
)
from devtools.funchost.errors import FunctionHostError
from devtools.funchost.http import (
    DEFAULT_ROUTE_PREFIX,
    HttpTriggerServer,
    build_routes,
)
from devtools.funchost.leases import DEFAULT_LEASE_SECONDS, LeaseKeeper
from devtools.funchost.listener import OutputTarget, QueueListener
from devtools.funchost.options import (
    QueuesOptions,
    app_setting_overrides,
    load_host_config,
    read_host_json,
)
from devtools.funchost.records import InvocationRecord
from devtools.funchost.settings import merge_settings, read_local_settings
from devtools.funchost.storage import (
    StorageConnection,
    create_queue_if_missing,
    queue_address,
    resolve_storage_connection,
)
from devtools.funchost.worker import WorkerRuntime, worker_thread_count

logger = logging.getLogger("devtools.funchost")

LOCAL_SETTINGS_FILE = "local.settings.json"
EXIT_OK = 0
EXIT_DRAIN_TIMEOUT = 1
SIGNAL_CHECK_INTERVAL = 0.2

_State = Literal["new", "loaded", "running", "stopped"]
NotifyCallback = Callable[[], None]
RestoreHandlers = Callable[[], None]


class LocalFunctionsHost:
    """Runs the queue-triggered functions of a Python v2 function app against real queues.

    ``settings`` override the process environment, which overrides ``local.settings.json``
    (``settings_file``, by default the one in ``app_dir`` if present); the merged values are
    put into ``os.environ`` before the app is imported, as the worker sees them.
    ``host_options`` are laid over host.json's ``extensions.queues`` and over the app settings
    that override it (``AzureFunctionsJobHost__extensions__queues__<key>``). ``lease_seconds``
    is the visibility lease taken on each received message and renewed at half-time while
    the function runs (the host uses ten minutes). ``records_file``, when given, gets one
    JSON line per handled message (outcome, dequeue count, duration, the function's CPU time).
    ``http_port`` serves the app's HTTP triggers on 127.0.0.1 at that port (0: any free port,
    see ``http_base_url``); None (the default) skips them.
    """

    def __init__(
        self,
        app_dir: Path | str,
        *,
        script: str = "function_app.py",
        settings: Mapping[str, str] | None = None,
        settings_file: Path | None = None,
        host_options: Mapping[str, object] | None = None,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        write_outputs_before_delete: bool = True,
        records_file: Path | None = None,
        keep_records: bool = True,
        http_port: int | None = None,
    ) -> None:
        if lease_seconds < 1:
            raise FunctionHostError(
                "lease_seconds must be at least 1 (storage counts whole seconds)"
            )
        self.app_dir = Path(app_dir).resolve()
        self.script_path = self.app_dir / script
        self._settings_overrides = dict(settings or {})
        self._settings_file = settings_file
        self._host_options = dict(host_options or {})
        self._lease_seconds = lease_seconds
        self._write_outputs_before_delete = write_outputs_before_delete

        self._state: _State = "new"
        self._lifecycle_lock = threading.RLock()
        self._settings: dict[str, str] = {}
        self._options: QueuesOptions | None = None
        self._module: ModuleType | None = None
        self._functions: tuple[QueueFunction, ...] = ()
        self._listeners: list[QueueListener] = []
        self._runtime: WorkerRuntime | None = None
        self._lease_keeper: LeaseKeeper | None = None
        self._records: list[InvocationRecord] = []
        self._records_lock = threading.Lock()
        # One JSON line per handled message, for tools that watch a host from outside.
        self._records_file = records_file
        # A host run as its own process answers to nobody in memory: its records go to the
        # file only, so its memory stays flat over any number of messages (benchmarks).
        self._keep_records = keep_records
        self._stop_requested = threading.Event()
        self._http_port = http_port
        self._http_functions: tuple[HttpFunction, ...] = ()
        self._http_server: HttpTriggerServer | None = None

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Read settings and host.json, import and index the app. Idempotent; start() calls it."""
        with self._lifecycle_lock:
            if self._state != "new":
                return
            if not self.app_dir.is_dir():
                raise FunctionHostError(f"the app folder {self.app_dir} does not exist")
            settings_file = self._settings_file
            if settings_file is None and (self.app_dir / LOCAL_SETTINGS_FILE).is_file():
                settings_file = self.app_dir / LOCAL_SETTINGS_FILE
            if settings_file is not None and not Path(settings_file).is_file():
                raise FunctionHostError(f"the settings file {settings_file} does not exist")
            file_values = read_local_settings(Path(settings_file)) if settings_file else {}
            self._settings = merge_settings(file_values, os.environ, self._settings_overrides)
            # The app reads its settings from the environment, often at import time.
            for name, value in self._settings.items():
                if os.environ.get(name) != value:
                    os.environ[name] = value

            # As in the real host: app settings override host.json, and the options given
            # in code (tests, benchmarks) override both.
            overrides = {**app_setting_overrides(self._settings), **self._host_options}
            host_config = load_host_config(self.app_dir, overrides=overrides)
            self._options = host_config.queues
            self._module = import_script(self.script_path)
            app = find_function_app(self._module)
            index = index_app(app, self._settings, allowlist=host_config.function_allowlist)
            self._functions = index.queue_functions
            self._http_functions = index.http_functions
            if self._http_port is None:
                for function in self._http_functions:
                    logger.info(
                        "Skipping function %s: HTTP triggers are served only with an HTTP port "
                        "(--http-port)",
                        function.name,
                    )
            for skipped in index.skipped:
                logger.info("Skipping function %s: %s", skipped.name, skipped.reason)
            self._state = "loaded"

    @property
    def settings(self) -> dict[str, str]:
        """The merged app settings (after load)."""
        return dict(self._settings)

    @property
    def options(self) -> QueuesOptions:
        self.load()
        assert self._options is not None
        return self._options

    @property
    def functions(self) -> tuple[QueueFunction, ...]:
        """The queue-triggered functions, queue names resolved (after load)."""
        self.load()
        return self._functions

    @property
    def module(self) -> ModuleType:
        """The imported app script (tests read state the app keeps in it)."""
        self.load()
        assert self._module is not None
        return self._module

    @property
    def invocations(self) -> list[InvocationRecord]:
        """A snapshot of every message handled so far, in completion order."""
        with self._records_lock:
            return list(self._records)

    def _record(self, record: InvocationRecord) -> None:
        with self._records_lock:
            if self._keep_records:
                self._records.append(record)
            if self._records_file is not None:
                with self._records_file.open("a", encoding="utf-8") as lines:
                    lines.write(json.dumps(record.to_json()) + "\n")

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, create missing queues and start polling; returns at once."""
        self.load()
        with self._lifecycle_lock:
            if self._state != "loaded":
                raise FunctionHostError(f"cannot start a host that is {self._state}")
            try:
                self._start_listeners()
                self._start_http()
            except AzureError as error:
                self._shutdown_runtime(wait=False)
                raise FunctionHostError(f"cannot reach queue storage: {error}") from error
            except FunctionHostError:
                for listener in self._listeners:
                    listener.request_stop()
                    listener.close(wait=False)
                self._shutdown_runtime(wait=False)
                raise
            self._state = "running"

    def _start_http(self) -> None:
        if self._http_port is None or not self._http_functions or self._runtime is None:
            return
        extensions = read_host_json(self.app_dir).get("extensions")
        http_section = extensions.get("http") if isinstance(extensions, dict) else None
        prefix = (
            http_section.get("routePrefix", DEFAULT_ROUTE_PREFIX)
            if isinstance(http_section, dict)
            else DEFAULT_ROUTE_PREFIX
        )
        routes = build_routes(self._http_functions, self._settings, str(prefix))
        self._http_server = HttpTriggerServer(
            routes, self._runtime, port=self._http_port, app_dir=str(self.app_dir)
        )
        self._http_server.start()

    @property
    def http_base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the HTTP triggers (after start, with an HTTP port)."""
        if self._http_server is None:
            raise FunctionHostError("this host serves no HTTP triggers (give http_port)")
        return self._http_server.base_url

    def _start_listeners(self) -> None:
        options = self.options
        services: dict[str, tuple[StorageConnection, QueueServiceClient]] = {}

        def queue_client(connection_name: str, queue_name: str) -> QueueClient:
            connection = resolve_storage_connection(connection_name, self._settings)
            if connection.name not in services:
                services[connection.name] = (connection, connection.create_service_client())
            return services[connection.name][1].get_queue_client(queue_name)

        listeners_by_queue: dict[str, list[QueueListener]] = {}

        def notifier(queue: QueueClient) -> NotifyCallback:
            address = queue_address(queue)

            def notify() -> None:
                for listener in listeners_by_queue.get(address, ()):
                    listener.notify_new_message()

            return notify

        self._runtime = WorkerRuntime(worker_thread_count(self._settings))
        self._lease_keeper = LeaseKeeper(self._lease_seconds)
        created: set[str] = set()

        def ensure_queue(queue: QueueClient) -> None:
            address = queue_address(queue)
            if address not in created:
                if create_queue_if_missing(queue):
                    logger.info("Created queue '%s'", queue.queue_name)
                created.add(address)

        for function in self._functions:
            trigger = queue_client(function.connection, function.queue_name)
            poison = queue_client(function.connection, function.poison_queue_name)
            outputs: dict[str, OutputTarget] = {}
            for output in function.outputs:
                target = queue_client(output.connection, output.queue_name)
                outputs[output.arg_name] = OutputTarget(target, notifier(target))
            for queue in (trigger, poison, *(target.queue for target in outputs.values())):
                ensure_queue(queue)
            listener = QueueListener(
                function=function,
                options=options,
                trigger_queue=trigger,
                poison_queue=poison,
                poison_notify=notifier(poison),
                outputs=outputs,
                runtime=self._runtime,
                lease_keeper=self._lease_keeper,
                lease_seconds=self._lease_seconds,
                app_dir=self.app_dir,
                record=self._record,
                write_outputs_before_delete=self._write_outputs_before_delete,
            )
            listeners_by_queue.setdefault(queue_address(trigger), []).append(listener)
            self._listeners.append(listener)

        self._log_banner(services)
        self._lease_keeper.start()
        for listener in self._listeners:
            listener.start()

    def _log_banner(
        self, services: Mapping[str, tuple[StorageConnection, QueueServiceClient]]
    ) -> None:
        options = self.options
        logger.info(
            "Queue options: batchSize=%d newBatchThreshold=%d (at most %d in flight per function) "
            "maxDequeueCount=%d visibilityTimeout=%s maxPollingInterval=%s messageEncoding=%s; "
            "worker threads=%d; message lease=%ds",
            options.batch_size,
            options.new_batch_threshold,
            options.max_in_flight,
            options.max_dequeue_count,
            options.visibility_timeout,
            options.max_polling_interval,
            options.message_encoding,
            self._runtime.thread_count if self._runtime else 0,
            self._lease_seconds,
        )
        for name, (connection, _) in services.items():
            logger.info("Connection %s: %s", name, connection.describe())
        if not self._functions:
            logger.warning("No queue-triggered functions to run in %s", self.script_path)
        for function in self._functions:
            outputs = ", ".join(f"{o.arg_name} -> '{o.queue_name}'" for o in function.outputs)
            logger.info(
                "Function %s: queueTrigger on '%s'%s%s",
                function.name,
                function.queue_name,
                f"; outputs {outputs}" if outputs else "",
                " (async)" if function.is_async else "",
            )

    def request_stop(self) -> None:
        """Ask run() to return; safe from signal handlers and other threads."""
        self._stop_requested.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop receiving, let in-flight invocations finish (up to ``timeout`` seconds), then
        release resources. True when everything finished in time; otherwise the unfinished
        messages reappear on their queue once their lease runs out."""
        with self._lifecycle_lock:
            if self._state != "running":
                self._state = "stopped"
                return True
            self._state = "stopped"
        self._stop_requested.set()
        if self._http_server is not None:
            # No new requests; the ones being answered finish on their own threads.
            self._http_server.stop()
        for listener in self._listeners:
            listener.request_stop()
        deadline = time.monotonic() + timeout
        finished = True
        for listener in self._listeners:
            if not listener.wait_idle(max(0.0, deadline - time.monotonic())):
                finished = False
        if not finished:
            busy = sum(listener.in_flight for listener in self._listeners)
            logger.warning(
                "%d invocation(s) still running after %.0fs; leaving them. Their messages "
                "reappear when their lease (%ds) ends.",
                busy,
                timeout,
                self._lease_seconds,
            )
        for listener in self._listeners:
            listener.close(wait=finished)
        self._shutdown_runtime(wait=finished)
        logger.info("Host stopped")
        return finished

    def _shutdown_runtime(self, *, wait: bool) -> None:
        if self._lease_keeper is not None:
            self._lease_keeper.stop()
        if self._runtime is not None:
            self._runtime.shutdown(wait=wait)

    def wait_until_drained(self, timeout: float) -> bool:
        """True once every trigger queue is empty (counting messages invisible for a retry or
        a lease) and nothing is in flight, on two consecutive looks; False on timeout."""
        return self._wait_until_drained(timeout, interrupt=None)

    def _wait_until_drained(self, timeout: float, interrupt: threading.Event | None) -> bool:
        if self._state != "running":
            raise FunctionHostError("wait_until_drained() needs a started host")
        interval = min(
            1.0,
            max(
                0.05,
                min(
                    (
                        listener.options.max_polling_interval.total_seconds()
                        for listener in self._listeners
                    ),
                    default=0.1,
                ),
            ),
        )
        deadline = time.monotonic() + timeout
        quiet_looks = 0
        while True:
            quiet_looks = quiet_looks + 1 if self._looks_drained() else 0
            if quiet_looks >= 2:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if interrupt is not None:
                # Bounded by interval (at most 1 s), so signal handlers still get to run.
                if interrupt.wait(min(interval, remaining)):
                    return False
            else:
                time.sleep(min(interval, remaining))

    def _looks_drained(self) -> bool:
        received_before = [listener.received_count for listener in self._listeners]
        if any(listener.in_flight for listener in self._listeners):
            return False
        try:
            if any(listener.approximate_message_count() for listener in self._listeners):
                return False
        except AzureError as error:
            logger.debug("Cannot read queue lengths: %s", error)
            return False
        # A message received while the counts were read would otherwise slip through unseen.
        received_after = [listener.received_count for listener in self._listeners]
        return received_before == received_after and not any(
            listener.in_flight for listener in self._listeners
        )

    def run(
        self,
        *,
        drain: bool = False,
        drain_timeout: float | None = None,
        stop_timeout: float = 30.0,
    ) -> int:
        """Start, block until Ctrl-C/SIGTERM (or, with ``drain``, until the queues are
        drained), then stop gracefully. Returns 0, or 1 when ``drain_timeout`` ran out."""
        restore = self._install_signal_handlers()
        try:
            self.start()
            exit_code = EXIT_OK
            if drain:
                limit = float("inf") if drain_timeout is None else drain_timeout
                drained = self._wait_until_drained(limit, interrupt=self._stop_requested)
                if drained:
                    logger.info("Queues drained")
                elif not self._stop_requested.is_set():
                    logger.error("Queues not drained within %ss", drain_timeout)
                    exit_code = EXIT_DRAIN_TIMEOUT
            else:
                # Short waits, not one long one: the kernel may deliver the signal to any
                # thread, and Python runs its handler only when the main thread next runs.
                while not self._stop_requested.wait(SIGNAL_CHECK_INTERVAL):
                    pass
            logger.info("Stopping: no new messages; waiting for in-flight invocations")
            self.stop(stop_timeout)
            return exit_code
        finally:
            restore()

    def _install_signal_handlers(self) -> RestoreHandlers:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        signals_seen = 0

        def handle(signum: int, frame: FrameType | None) -> None:
            nonlocal signals_seen
            signals_seen += 1
            if signals_seen > 1:
                logger.warning("Second stop signal: exiting without waiting")
                os._exit(130)
            logger.info("Received %s: shutting down gracefully", signal.Signals(signum).name)
            self._stop_requested.set()

        for sig in previous:
            signal.signal(sig, handle)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> LocalFunctionsHost:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
