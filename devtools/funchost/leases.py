"""Message leases: a received message stays invisible while its function runs."""

from __future__ import annotations

import logging
import threading
import time

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StorageQueueMessage

from devtools.funchost.storage import storage_error_code

logger = logging.getLogger("devtools.funchost")

# The host receives with a ten-minute visibility timeout and renews it while the function runs.
DEFAULT_LEASE_SECONDS = 600


def _lease_is_gone(error: HttpResponseError) -> bool:
    """The message was deleted, expired, or taken over by another receiver."""
    if isinstance(error, ResourceNotFoundError):
        return True
    return storage_error_code(error) in {
        "PopReceiptMismatch",
        "MessageNotFound",
        "QueueNotFound",
        "QueueBeingDeleted",
        "QueueDisabled",
    }


class MessageLease:
    """One received message and its current pop receipt; all calls that need the receipt go
    through here, because each renewal replaces it."""

    def __init__(
        self, queue: QueueClient, message: StorageQueueMessage, lease_seconds: int
    ) -> None:
        self.queue = queue
        self.message_id: str = message.id
        self._pop_receipt: str | None = message.pop_receipt
        self._lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._settled = False
        self.lost = False
        # Renew halfway through the lease, as the host does.
        self.next_renewal = time.monotonic() + lease_seconds / 2

    def renew(self) -> None:
        with self._lock:
            if self._settled or self.lost:
                return
            try:
                updated = self.queue.update_message(
                    self.message_id, self._pop_receipt, visibility_timeout=self._lease_seconds
                )
            except HttpResponseError as error:
                if _lease_is_gone(error):
                    self.lost = True
                    logger.warning(
                        "Lost the lease on message %s in '%s' (%s); another receiver may "
                        "process it again.",
                        self.message_id,
                        self.queue.queue_name,
                        storage_error_code(error) or error.status_code,
                    )
                    return
                raise
            self._pop_receipt = updated.pop_receipt
            self.next_renewal = time.monotonic() + self._lease_seconds / 2

    def delete(self) -> None:
        with self._lock:
            self._settled = True
            try:
                self.queue.delete_message(self.message_id, self._pop_receipt)
            except HttpResponseError as error:
                if not _lease_is_gone(error):
                    raise
                # As in the host: someone else owns (or already removed) the message now.
                logger.debug(
                    "Unable to delete message %s from '%s': %s",
                    self.message_id,
                    self.queue.queue_name,
                    storage_error_code(error) or error.status_code,
                )

    def release(self, visibility_seconds: int) -> None:
        """Make the message visible again after ``visibility_seconds`` (a failed attempt)."""
        with self._lock:
            self._settled = True
            try:
                self.queue.update_message(
                    self.message_id, self._pop_receipt, visibility_timeout=visibility_seconds
                )
            except HttpResponseError as error:
                if not _lease_is_gone(error):
                    raise

    def abandon(self) -> None:
        """Stop renewing without touching the message: it reappears when the lease ends."""
        with self._lock:
            self._settled = True


class LeaseKeeper:
    """One thread renewing every lease that is halfway to expiry."""

    def __init__(self, lease_seconds: int) -> None:
        self._leases: set[MessageLease] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        # Check often enough that a renewal is never late by more than a fraction of the lease.
        self._tick = min(1.0, lease_seconds / 8)
        self._thread = threading.Thread(target=self._run, name="funchost-lease-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, lease: MessageLease) -> None:
        with self._lock:
            self._leases.add(lease)

    def remove(self, lease: MessageLease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopped.wait(self._tick):
            now = time.monotonic()
            with self._lock:
                due = [lease for lease in self._leases if lease.next_renewal <= now]
            for lease in due:
                try:
                    lease.renew()
                except AzureError as error:
                    # Try again on the next tick; the lease still has half its time left.
                    logger.warning(
                        "Renewing the lease on message %s failed: %s", lease.message_id, error
                    )
