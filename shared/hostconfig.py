"""The parts of host.json the function itself must agree with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
DEFAULT_MAX_DEQUEUE_COUNT = 5


@dataclass(frozen=True, kw_only=True)
class QueueHostConfig:
    max_dequeue_count: int = DEFAULT_MAX_DEQUEUE_COUNT
    message_encoding: str = "base64"

    @classmethod
    def load(cls, path: Path = HOST_JSON) -> QueueHostConfig:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        queues = document.get("extensions", {}).get("queues", {})
        return cls(
            max_dequeue_count=int(queues.get("maxDequeueCount", DEFAULT_MAX_DEQUEUE_COUNT)),
            message_encoding=str(queues.get("messageEncoding", "base64")).lower(),
        )
