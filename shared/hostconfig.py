"""The parts of host.json the function itself must agree with."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
DEFAULT_MAX_DEQUEUE_COUNT = 5
# App settings named like this override host.json values, in Azure and under Core Tools.
_OVERRIDE = "AzureFunctionsJobHost__extensions__queues__"


@dataclass(frozen=True, kw_only=True)
class QueueHostConfig:
    max_dequeue_count: int = DEFAULT_MAX_DEQUEUE_COUNT
    message_encoding: str = "base64"

    @classmethod
    def load(
        cls, path: Path = HOST_JSON, environ: Mapping[str, str] | None = None
    ) -> QueueHostConfig:
        """host.json, with the app-setting overrides the host applies on top of it."""
        env = os.environ if environ is None else environ
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            document = {}
        queues = document.get("extensions", {}).get("queues", {})
        count = env.get(f"{_OVERRIDE}maxDequeueCount") or queues.get(
            "maxDequeueCount", DEFAULT_MAX_DEQUEUE_COUNT
        )
        encoding = env.get(f"{_OVERRIDE}messageEncoding") or queues.get("messageEncoding", "base64")
        return cls(max_dequeue_count=int(count), message_encoding=str(encoding).lower())
