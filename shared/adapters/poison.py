"""The poison envelope (docs/contract.md section 3) and the queue it is written to.

The function writes its own poison copies, instead of raising until the host poisons the
message, so that each copy says why it failed (``lastFailure``) and never expires: the host's
copies keep only the body and vanish after the default seven days.
"""

from __future__ import annotations

import base64
import contextlib
import math
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from shared.domain.errors import ServiceUnavailableError
from shared.domain.events import find_password, is_password_key, without_passwords
from shared.domain.jsontext import MAX_DEPTH, describe_path, dump_bytes, member_names, parse
from shared.domain.outcomes import Failure, utc_now_text

LAST_FAILURE = "lastFailure"
NEVER_EXPIRES = -1
# A queue message holds 64 KiB of text; base64 turns 3 bytes into 4, so a body may have 48 KiB.
MAX_POISON_BYTES = 48 * 1024
# Members of a hire event (docs/contract.md section 1) a copy keeps longest when it must shrink.
_EVENT_MEMBERS = frozenset(
    {"schemaVersion", "eventId", "customerTenantId", "user", "correlationId", "licenses",
     "traceparent", "replay"}
)
_MAX_FAILURE_TEXT = 2000
_SHRINK_STEPS = (4096, 1024, 256, 64, 16, 4, 0)
_NAMES_SHOWN = 5


def poisoned_event(
    document: dict[str, Any], failure: Failure, *, attempts: int, limit: int = MAX_POISON_BYTES
) -> bytes:
    """The original event with ``lastFailure`` set; any earlier ``lastFailure`` is replaced.

    Total: never raises, and the bytes always fit ``limit``. Password members an HR system
    should never have sent are dropped, not kept in the queue. A copy that cannot keep the
    whole event keeps what it can and says so in ``lastFailure`` (``truncated``: true).
    """
    notes: list[str] = []
    try:
        envelope = _copyable(without_passwords(document), notes)
        if not isinstance(envelope, dict):
            envelope, notes = {}, ["the event was not a JSON object"]
    except Exception as error:  # the copy must be written whatever the event holds
        envelope, notes = {}, [f"the event could not be copied ({type(error).__name__})"]
    envelope.pop(LAST_FAILURE, None)
    return _fitted(envelope, failure, attempts=attempts, notes=notes, limit=limit)


def poisoned_body(
    body: bytes, failure: Failure, *, attempts: int, limit: int = MAX_POISON_BYTES
) -> bytes:
    """The poison copy of a body that is not a usable event: the body unchanged when it fits.

    A body too large to fit once base64-encoded becomes a JSON object whose ``lastFailure``
    says so and whose ``unreadableBody`` keeps the size and as much of the start as fits.
    A body that still reads as a JSON object (its fault was a repeated member name or a lone
    surrogate) but carries a password member is copied without it, like a refused event.
    Total: never raises.
    """
    leaked = _lenient_object_with_password(body)
    if leaked is not None:
        return poisoned_event(leaked, failure, attempts=attempts, limit=limit)
    if len(body) <= limit:
        return body
    keep = max(0, (limit - 4096) * 3 // 4)
    envelope: dict[str, Any] = {
        "unreadableBody": {
            "bytes": len(body),
            "keptBytes": min(keep, len(body)),
            "base64": base64.b64encode(body[:keep]).decode("ascii"),
        }
    }
    note = (
        f"the body ({len(body)} bytes) was too large for a poison copy: unreadableBody keeps "
        f"its first {min(keep, len(body))} bytes, base64-encoded"
    )
    return _fitted(envelope, failure, attempts=attempts, notes=[note], limit=limit)


def _lenient_object_with_password(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object when some member, in any copy of a repeated member, is a
    password: the copy is then written without every password member. A repeated member
    keeps its last copy (a reader's meaning; the failure names the repeated member), and the
    body itself is not kept, since it holds the password."""
    try:
        text = body.decode("utf-8")
        document = parse(text, repeated_members=True, lone_surrogates=True)
    except Exception:
        return None
    if not isinstance(document, dict):
        return None
    if find_password(document) is not None or any(
        is_password_key(name) for name in member_names(text)
    ):
        return document
    return None


def _fitted(
    envelope: dict[str, Any], failure: Failure, *, attempts: int, notes: list[str], limit: int
) -> bytes:
    try:
        copy = _with_failure(envelope, failure, attempts, notes)
        if len(copy) <= limit:
            return copy
        kept, dropped = _without_extra_members(envelope, failure, attempts, limit)
        if dropped:
            shown = ", ".join(describe_path([name]) for name in dropped[:_NAMES_SHOWN])
            more = f" and {len(dropped) - _NAMES_SHOWN} more" if len(dropped) > _NAMES_SHOWN else ""
            notes = [*notes, f"left out the members {shown}{more}"]
        copy = _with_failure(kept, failure, attempts, notes)
        for longest in _SHRINK_STEPS:
            if len(copy) <= limit:
                return copy
            cut = f"cut strings, member names and lists to {longest} characters or items"
            copy = _with_failure(_shrunk(kept, longest), failure, attempts, [*notes, cut])
        if len(copy) <= limit:
            return copy
    except Exception:  # noqa: S110 - the minimal copy below needs nothing that can fail
        pass
    return _minimal(failure, attempts)


def _with_failure(
    envelope: dict[str, Any], failure: Failure, attempts: int, notes: list[str]
) -> bytes:
    error = failure.as_error()
    message = str(error.get("message") or "")[:_MAX_FAILURE_TEXT]
    if notes:
        said = "; ".join(dict.fromkeys(notes))  # once each, in order
        message += f". The poison copy could not keep the whole event: {said}"[:_MAX_FAILURE_TEXT]
    code = error.get("code")
    record: dict[str, Any] = {
        **error,
        "message": message,
        "code": code[:256] if isinstance(code, str) else code,
        "attempts": attempts,
        "at": utc_now_text(),
    }
    if notes:
        record["truncated"] = True
    return dump_bytes({**envelope, LAST_FAILURE: record})


def _minimal(failure: Failure, attempts: int) -> bytes:
    """The last resort: the failure's category and attempts, nothing from the event."""
    return dump_bytes(
        {
            LAST_FAILURE: {
                "category": str(failure.category.value),
                "message": "the event could not be kept in its poison copy; see the function's "
                "logs for this message",
                "httpStatus": None,
                "code": None,
                "attempts": attempts,
                "at": utc_now_text(),
                "truncated": True,
            }
        }
    )


def _without_extra_members(
    envelope: dict[str, Any], failure: Failure, attempts: int, limit: int
) -> tuple[dict[str, Any], list[str]]:
    """Leave out members the contract does not name, largest first, until the copy fits."""
    sizes = {key: _size(value) + len(key) + 4 for key, value in envelope.items()}
    extras = sorted((key for key in envelope if key not in _EVENT_MEMBERS), key=sizes.__getitem__)
    kept = dict(envelope)
    dropped: list[str] = []
    excess = len(_with_failure(kept, failure, attempts, ["left out members"])) - limit
    while extras and excess > 0:
        # Drop by estimate, then measure once: one dump per round, not one per member.
        while extras and excess > 0:
            key = extras.pop()
            del kept[key]
            dropped.append(key)
            excess -= sizes[key]
        excess = len(_with_failure(kept, failure, attempts, ["left out members"])) - limit
    return kept, dropped


def _shrunk(value: Any, longest: int) -> Any:
    if isinstance(value, str):
        return value[:longest]
    if isinstance(value, dict):
        items = list(value.items())[: max(longest, 0)]
        return {str(key)[:longest]: _shrunk(item, longest) for key, item in items}
    if isinstance(value, list):
        return [_shrunk(item, longest) for item in value[:longest]]
    return value


def _copyable(value: Any, notes: list[str], depth: int = 0) -> Any:
    """A copy JSON can write: string keys, finite numbers, bounded depth."""
    if depth >= MAX_DEPTH:  # the copy must read back: its root is one level already
        if "dropped values nested too deep" not in notes:
            notes.append("dropped values nested too deep")
        return None
    if isinstance(value, dict):
        return {str(key): _copyable(item, notes, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copyable(item, notes, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        notes.append("replaced a number JSON cannot hold")
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    notes.append(f"replaced a {type(value).__name__} value")
    return None


def _size(value: Any) -> int:
    try:
        return len(dump_bytes(value))
    except Exception:
        return 0


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
        self.send(poisoned_event(document, failure, attempts=attempts))

    def poison_body(self, body: bytes, failure: Failure, *, attempts: int) -> None:
        self.send(poisoned_body(body, failure, attempts=attempts))

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
