"""The request queue as the HTTP intake writes it: the ``RequestQueue`` port on Azure Storage.

Messages are written as ``hire-publish`` writes them: the event's UTF-8 JSON, base64-encoded
under the Functions default ``messageEncoding`` (plain text under ``none``), default
time-to-live. The queue function cannot tell an event posted over HTTP from a published one.
"""

from __future__ import annotations

import contextlib

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from shared.domain.errors import ServiceUnavailableError

# A queue message holds 64 KiB of text; base64 turns 3 bytes into 4.
QUEUE_MESSAGE_CHARACTERS = 64 * 1024


class StorageRequestQueue:
    """``RequestQueue`` over a ``QueueClient`` that carries
    ``shared.adapters.poison.encode_policy``."""

    def __init__(self, client: QueueClient, *, message_encoding: str = "base64") -> None:
        self._client = client
        self._base64 = message_encoding == "base64"

    @property
    def max_body_bytes(self) -> int:
        return QUEUE_MESSAGE_CHARACTERS * 3 // 4 if self._base64 else QUEUE_MESSAGE_CHARACTERS

    def send(self, body: bytes) -> None:
        # The intake only queues bodies decode_body read as UTF-8, so decoding cannot fail.
        content: bytes | str = body if self._base64 else body.decode("utf-8")
        try:
            try:
                self._client.send_message(content)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    self._client.create_queue()
                self._client.send_message(content)
        except AzureError as error:
            raise ServiceUnavailableError(
                f"queue '{self._client.queue_name}' refused the event ({type(error).__name__})"
            ) from None
