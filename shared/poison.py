"""The poison envelope (CONTRACT section 3) and the queue it is written to.

The function writes its own poison copies, instead of raising until the host poisons the
message, so that each copy says why it failed (``lastFailure``) and never expires: the host's
copies keep only the body and vanish after the default seven days.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from shared.errors import ServiceUnavailableError
from shared.events import without_passwords
from shared.outcomes import Failure, utc_now_text

NEVER_EXPIRES = -1
# A queue message holds 64 KiB once base64-encoded.
MAX_POISON_BYTES = 48 * 1024


def poisoned_event(document: dict[str, Any], failure: Failure, *, attempts: int) -> bytes:
    """The original event with ``lastFailure`` set; any earlier ``lastFailure`` is replaced.

    Password members an HR system should never have sent are dropped, not kept in the queue.
    """
    envelope = without_passwords(document)
    envelope["lastFailure"] = {
        **failure.as_error(),
        "attempts": attempts,
        "at": utc_now_text(),
    }
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8")


def encode_policy(message_encoding: str) -> BinaryBase64EncodePolicy | None:
    return BinaryBase64EncodePolicy() if message_encoding == "base64" else None


class StoragePoisonQueue:
    """Writes poison copies to ``<request-queue>-poison`` with no expiry.

    With base64 encoding the client must carry ``encode_policy(...)``, like the host's copies.
    """

    def __init__(self, client: QueueClient, *, message_encoding: str = "base64") -> None:
        self._client = client
        self._base64 = message_encoding == "base64"

    def poison_event(self, document: dict[str, Any], failure: Failure, *, attempts: int) -> None:
        copy = poisoned_event(document, failure, attempts=attempts)
        if len(copy) > MAX_POISON_BYTES:
            # With lastFailure it would not fit in a queue message: keep the event itself.
            copy = json.dumps(without_passwords(document), ensure_ascii=False).encode("utf-8")
        self.send(copy)

    def poison_body(self, body: bytes, failure: Failure, *, attempts: int) -> None:
        self.send(body)

    def send(self, body: bytes) -> None:
        content: bytes | str = body if self._base64 else body.decode("utf-8", errors="replace")
        try:
            try:
                self._client.send_message(content, time_to_live=NEVER_EXPIRES)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    self._client.create_queue()
                self._client.send_message(content, time_to_live=NEVER_EXPIRES)
        except AzureError as error:
            raise ServiceUnavailableError(
                f"the poison copy could not be written to queue '{self._client.queue_name}' "
                f"({type(error).__name__}); the message will be delivered again"
            ) from None
