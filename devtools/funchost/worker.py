"""The language-worker side: how user code is called, as the Python worker calls it."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions._abc import RetryContext, TraceContext

from devtools.funchost.app_loader import HttpFunction, QueueFunction
from devtools.funchost.errors import FunctionHostError
from devtools.funchost.settings import lookup_setting

THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"
MAX_THREAD_COUNT = 32


@dataclass(frozen=True)
class InvocationScope:
    """Which invocation the current code runs for; log handlers can read it."""

    function_name: str
    invocation_id: str


current_invocation: contextvars.ContextVar[InvocationScope | None] = contextvars.ContextVar(
    "funchost_current_invocation", default=None
)


def worker_thread_count(settings: Mapping[str, str]) -> int:
    """Size of the pool that runs sync functions: the app setting, else what the worker uses
    on Python 3.9+ (ThreadPoolExecutor's own default)."""
    value = lookup_setting(settings, THREAD_COUNT_SETTING)
    if value is None or not value.strip():
        return min(MAX_THREAD_COUNT, (os.cpu_count() or 1) + 4)
    try:
        count = int(value)
    except ValueError:
        raise FunctionHostError(
            f"{THREAD_COUNT_SETTING} must be an integer, got {value!r}"
        ) from None
    if not 1 <= count <= MAX_THREAD_COUNT:
        raise FunctionHostError(f"{THREAD_COUNT_SETTING} must be between 1 and {MAX_THREAD_COUNT}")
    return count


class OutputValue(func.Out[Any]):
    """What a function sets on an output binding parameter."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _TraceContext(TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _NoRetryContext(RetryContext):
    # Queue triggers have no retry policy: retries come from redelivery, so these stay zero.
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    def __init__(self, function_name: str, invocation_id: str, function_directory: str) -> None:
        self._function_name = function_name
        self._invocation_id = invocation_id
        self._function_directory = function_directory
        self._thread_local = threading.local()
        self._thread_local.invocation_id = invocation_id
        self._trace_context = _TraceContext()
        self._retry_context = _NoRetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:
        return self._retry_context


class WorkerRuntime:
    """Sync functions run in one shared thread pool, async ones on one event loop, as in the
    Python worker; the host waits for either from its own threads."""

    def __init__(self, thread_count: int) -> None:
        self.thread_count = thread_count
        self._pool = ThreadPoolExecutor(
            max_workers=thread_count, thread_name_prefix="funchost-worker"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="funchost-event-loop", daemon=True
                )
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def call(
        self,
        function: QueueFunction | HttpFunction,
        arguments: Mapping[str, object],
        scope: InvocationScope,
        *,
        cpu_time: list[float | None] | None = None,
    ) -> object:
        """Run the user function to completion; its exception propagates to the caller.
        ``cpu_time[0]`` receives the CPU seconds the function's thread spent on it, also when
        it raised (left alone for async functions, whose event loop is shared)."""
        token = current_invocation.set(scope)
        try:
            if function.is_async:
                coroutine: Coroutine[Any, Any, object] = function.user_function(**arguments)  # type: ignore[assignment]
                # The task inherits this thread's context, so log records carry the scope.
                return asyncio.run_coroutine_threadsafe(coroutine, self._event_loop()).result()
            context = contextvars.copy_context()
            bound = functools.partial(_timed, function.user_function, arguments, cpu_time)
            future = self._pool.submit(context.run, bound)
            return future.result()
        finally:
            current_invocation.reset(token)

    def shutdown(self, *, wait: bool) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        with self._loop_lock:
            loop, thread = self._loop, self._loop_thread
            self._loop = self._loop_thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            if wait:
                thread.join(timeout=5)
                loop.close()


def _timed(
    user_function: Callable[..., object],
    arguments: Mapping[str, object],
    cpu_time: list[float | None] | None,
) -> object:
    started = time.thread_time()
    try:
        return user_function(**arguments)
    finally:
        if cpu_time is not None:
            cpu_time[0] = time.thread_time() - started
