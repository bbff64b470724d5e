"""One queue trigger: polls its queue and takes each message through its life."""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from azure.core.exceptions import AzureError
from azure.functions import QueueMessage as AbstractQueueMessage
from azure.functions import queue as azf_queue
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StorageQueueMessage

from devtools.funchost.app_loader import RETURN_BINDING, QueueFunction
from devtools.funchost.leases import LeaseKeeper, MessageLease
from devtools.funchost.options import MIN_POLLING_INTERVAL, QueuesOptions
from devtools.funchost.records import InvocationRecord, Outcome
from devtools.funchost.storage import UndecodableMessageError, decode_message, encode_message
from devtools.funchost.worker import InvocationContext, InvocationScope, OutputValue, WorkerRuntime

logger = logging.getLogger("devtools.funchost")

WAIT_SLICE = 0.2


class OutputBindingError(Exception):
    """A value set on an output binding cannot be written as queue messages."""


@dataclass(frozen=True)
class OutputTarget:
    queue: QueueClient
    # Tells a listener on the same queue in this host to poll now, as the host's shared
    # queue watcher does, instead of waiting out its back-off.
    notify: Callable[[], None]


def output_payloads(value: object, *, arg_name: str) -> list[bytes]:
    """The message bodies for a value set on a queue output, accepting what the Python worker
    accepts: str, bytes, or a list of str."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, AbstractQueueMessage):
        raise OutputBindingError(
            f"output {arg_name!r}: QueueMessage objects as output are not emulated; set the body"
        )
    if isinstance(value, list | tuple):
        bodies: list[bytes] = []
        for item in value:
            if not isinstance(item, str):
                raise OutputBindingError(
                    f"output {arg_name!r}: invalid data type in output queue message list: "
                    f"{type(item).__name__}"
                )
            bodies.append(item.encode("utf-8"))
        return bodies
    raise OutputBindingError(
        f"output {arg_name!r}: cannot write a {type(value).__name__} to a queue "
        "(set a str, bytes or a list of str)"
    )


class _Backoff:
    """Randomised exponential back-off between empty polls, from 100 ms to the maximum."""

    def __init__(self, maximum: float) -> None:
        self._minimum = MIN_POLLING_INTERVAL.total_seconds()
        self._maximum = maximum
        self._current = 0.0

    def reset(self) -> None:
        self._current = 0.0

    def next_delay(self) -> float:
        self._current = min(self._maximum, max(self._minimum, self._current * 2))
        # Jitter keeps several hosts on one queue from polling in lock step.
        return min(self._maximum, self._current * random.uniform(0.8, 1.2))


class QueueListener:
    def __init__(
        self,
        *,
        function: QueueFunction,
        options: QueuesOptions,
        trigger_queue: QueueClient,
        poison_queue: QueueClient,
        poison_notify: Callable[[], None],
        outputs: Mapping[str, OutputTarget],
        runtime: WorkerRuntime,
        lease_keeper: LeaseKeeper,
        lease_seconds: int,
        app_dir: Path,
        record: Callable[[InvocationRecord], None],
        write_outputs_before_delete: bool,
    ) -> None:
        self.function = function
        self.options = options
        self.trigger_queue = trigger_queue
        self._poison_queue = poison_queue
        self._poison_notify = poison_notify
        self._outputs = outputs
        self._runtime = runtime
        self._lease_keeper = lease_keeper
        self._lease_seconds = lease_seconds
        self._app_dir = app_dir
        self._record = record
        self._write_outputs_before_delete = write_outputs_before_delete
        self._function_logger = logging.getLogger(f"devtools.funchost.Function.{function.name}")

        self._state = threading.Condition()
        self._in_flight = 0
        # Counts messages received; drain detection uses it to notice activity between looks.
        self._received = 0
        self._stopping = False
        self._wake = threading.Event()
        self._dispatch = ThreadPoolExecutor(
            max_workers=options.max_in_flight, thread_name_prefix=f"funchost-{function.name}"
        )
        self._poller = threading.Thread(
            target=self._poll_loop, name=f"funchost-poll-{function.name}", daemon=True
        )

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        self._poller.start()

    def request_stop(self) -> None:
        with self._state:
            self._stopping = True
            self._state.notify_all()
        self._wake.set()

    def notify_new_message(self) -> None:
        self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait for the poller to exit and in-flight messages to finish."""
        deadline = time.monotonic() + timeout
        # Waits are sliced so that, on the main thread, a second Ctrl-C is handled promptly.
        while self._poller.is_alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._poller.join(timeout=min(WAIT_SLICE, remaining))
        with self._state:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._state.wait(min(WAIT_SLICE, remaining))
        return True

    def close(self, *, wait: bool) -> None:
        self._dispatch.shutdown(wait=wait, cancel_futures=not wait)

    @property
    def in_flight(self) -> int:
        with self._state:
            return self._in_flight

    @property
    def received_count(self) -> int:
        with self._state:
            return self._received

    def approximate_message_count(self) -> int:
        """Messages in the trigger queue, counting those invisible for a retry or a lease."""
        return self.trigger_queue.get_queue_properties().approximate_message_count or 0

    # -- polling -------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        backoff = _Backoff(self.options.max_polling_interval.total_seconds())
        failures_in_a_row = 0
        while True:
            with self._state:
                # A new batch is fetched only once in-flight work drops to the threshold, so
                # at most batchSize + newBatchThreshold messages are held at once.
                while self._in_flight > self.options.new_batch_threshold and not self._stopping:
                    self._state.wait()
                if self._stopping:
                    return
            self._wake.clear()
            try:
                messages = list(
                    self.trigger_queue.receive_messages(
                        messages_per_page=self.options.batch_size,
                        max_messages=self.options.batch_size,
                        visibility_timeout=self._lease_seconds,
                    )
                )
                failures_in_a_row = 0
            except AzureError as error:
                failures_in_a_row += 1
                log = logger.warning if failures_in_a_row in {1, 10} else logger.debug
                log(
                    "Polling '%s' for %s failed: %s",
                    self.trigger_queue.queue_name,
                    self.function.name,
                    error,
                )
                messages = []
            except Exception:
                logger.exception("Polling '%s' failed unexpectedly", self.trigger_queue.queue_name)
                messages = []
            if messages:
                backoff.reset()
                with self._state:
                    self._in_flight += len(messages)
                    self._received += len(messages)
                for message in messages:
                    self._dispatch.submit(self._handle, message)
                continue
            self._wake.wait(backoff.next_delay())
            if self._wake.is_set():
                backoff.reset()

    # -- one message ---------------------------------------------------------------------

    def _handle(self, message: StorageQueueMessage) -> None:
        lease = MessageLease(self.trigger_queue, message, self._lease_seconds)
        self._lease_keeper.add(lease)
        try:
            self._process(message, lease)
        except Exception:
            # Storage failed while settling the message; it reappears when the lease ends.
            lease.abandon()
            logger.exception(
                "Settling message %s from '%s' failed; it will be retried when its lease ends",
                message.id,
                self.trigger_queue.queue_name,
            )
        finally:
            self._lease_keeper.remove(lease)
            with self._state:
                self._in_flight -= 1
                self._state.notify_all()

    def _process(self, message: StorageQueueMessage, lease: MessageLease) -> None:
        started_at = datetime.now(UTC)
        raw_text: str = message.content if isinstance(message.content, str) else ""
        dequeue_count = int(message.dequeue_count or 0)

        if dequeue_count > self.options.max_dequeue_count:
            # Left over from attempts that never completed (a crashed or stopped host).
            self._poison(lease, raw_text)
            self._finish(
                message,
                "poisoned",
                started_at,
                invoked=False,
                error=f"dequeue count {dequeue_count} is above maxDequeueCount",
            )
            return
        try:
            body = decode_message(raw_text, self.options.message_encoding)
        except UndecodableMessageError as error:
            logger.error(
                "Message %s in '%s' could not be decoded as %s; moving it to '%s' unchanged.",
                message.id,
                self.trigger_queue.queue_name,
                self.options.message_encoding,
                self._poison_queue.queue_name,
            )
            self._poison(lease, raw_text)
            self._finish(message, "poisoned", started_at, invoked=False, error=str(error))
            return

        invocation_id = str(uuid.uuid4())
        self._function_logger.info(
            "Executing 'Functions.%s' (Reason='New queue message detected on '%s'.', Id=%s)",
            self.function.name,
            self.trigger_queue.queue_name,
            invocation_id,
        )
        self._function_logger.info(
            "Trigger Details: MessageId: %s, DequeueCount: %s, InsertionTime: %s",
            message.id,
            dequeue_count,
            message.inserted_on.isoformat() if message.inserted_on else "",
        )
        began = time.monotonic()
        error_text: str | None = None
        pending: list[tuple[OutputTarget, str]] = []
        cpu_time: list[float | None] = [None]
        try:
            pending = self._invoke(message, body, invocation_id, cpu_time)
            if self._write_outputs_before_delete:
                # The host flushes output bindings as part of the invocation, so a failed
                # write fails the invocation and the message is retried.
                self._write_outputs(pending)
                pending = []
        except BaseException as error:  # the function's failure is data here, not a crash
            error_text = "".join(traceback.format_exception_only(error)).strip()
            self._function_logger.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
                self.function.name,
                invocation_id,
                (time.monotonic() - began) * 1000,
                exc_info=error,
            )
        duration = time.monotonic() - began

        if error_text is None:
            lease.delete()
            outcome: Outcome = "succeeded"
            if pending:
                try:
                    self._write_outputs(pending)
                except Exception as error:
                    outcome = "failed"
                    error_text = f"writing outputs after the message was deleted failed: {error!r}"
                    logger.exception("Output bindings of %s were lost", invocation_id)
            if outcome == "succeeded":
                self._function_logger.info(
                    "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
                    self.function.name,
                    invocation_id,
                    duration * 1000,
                )
            self._finish(
                message,
                outcome,
                started_at,
                invocation_id=invocation_id,
                duration=duration,
                error=error_text,
                cpu_time=cpu_time[0],
            )
            return

        if dequeue_count >= self.options.max_dequeue_count:
            logger.warning(
                "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
                self.options.max_dequeue_count,
                self._poison_queue.queue_name,
            )
            self._poison(lease, raw_text)
            outcome = "poisoned"
        else:
            lease.release(int(self.options.visibility_timeout.total_seconds()))
            outcome = "failed"
        self._finish(
            message,
            outcome,
            started_at,
            invocation_id=invocation_id,
            duration=duration,
            error=error_text,
            cpu_time=cpu_time[0],
        )

    def _invoke(
        self,
        message: StorageQueueMessage,
        body: bytes,
        invocation_id: str,
        cpu_time: list[float | None],
    ) -> list[tuple[OutputTarget, str]]:
        """Call the function; return the encoded messages its outputs hold. The CPU time of
        the function's thread goes into ``cpu_time[0]``."""
        function = self.function
        trigger_value = azf_queue.QueueMessage(  # type: ignore[no-untyped-call]
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        arguments: dict[str, object] = {function.trigger_arg: trigger_value}
        out_values: dict[str, OutputValue] = {}
        for output in function.outputs:
            if output.arg_name != RETURN_BINDING:
                out_values[output.arg_name] = OutputValue()
        arguments.update(out_values)
        if function.context_arg is not None:
            arguments[function.context_arg] = InvocationContext(
                function.name, invocation_id, str(self._app_dir)
            )
        result = self._runtime.call(
            function, arguments, InvocationScope(function.name, invocation_id), cpu_time=cpu_time
        )
        pending: list[tuple[OutputTarget, str]] = []
        for output in function.outputs:
            if output.arg_name == RETURN_BINDING:
                value = result
            else:
                value = out_values[output.arg_name].get()
            target = self._outputs[output.arg_name]
            for payload in output_payloads(value, arg_name=output.arg_name):
                try:
                    text = encode_message(payload, self.options.message_encoding)
                except UnicodeDecodeError as error:
                    raise OutputBindingError(
                        f"output {output.arg_name!r}: bytes that are not UTF-8 cannot be written "
                        "with messageEncoding none"
                    ) from error
                pending.append((target, text))
        return pending

    def _write_outputs(self, pending: list[tuple[OutputTarget, str]]) -> None:
        for target, text in pending:
            target.queue.send_message(text)
            target.notify()

    def _poison(self, lease: MessageLease, raw_text: str) -> None:
        # Only the body survives: a new message with a new id and the default time to live.
        self._poison_queue.send_message(raw_text)
        lease.delete()
        self._poison_notify()

    def _finish(
        self,
        message: StorageQueueMessage,
        outcome: Outcome,
        started_at: datetime,
        *,
        invocation_id: str = "",
        duration: float = 0.0,
        invoked: bool = True,
        error: str | None = None,
        cpu_time: float | None = None,
    ) -> None:
        self._record(
            InvocationRecord(
                function_name=self.function.name,
                message_id=message.id,
                dequeue_count=int(message.dequeue_count or 0),
                outcome=outcome,
                duration=duration,
                queue_name=self.trigger_queue.queue_name,
                invocation_id=invocation_id,
                started_at=started_at,
                invoked=invoked,
                error=error,
                cpu_time=cpu_time,
            )
        )
