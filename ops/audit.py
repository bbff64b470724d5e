"""Who did what to which queue, and when: one JSON line per operator action.

Each line goes to the `ops.audit` logger (INFO), to stderr, and optionally to an append-only
file. It carries counts and filters, never message bodies (they hold personal data).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from ops.messages import JsonObject, format_timestamp

AUDIT_LOGGER = logging.getLogger("ops.audit")


def current_operator(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        # A container user without a passwd entry or a login name.
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


@dataclass(frozen=True)
class AuditTrail:
    operator: str
    stream: TextIO
    audit_file: Path | None = None

    def record(
        self,
        action: str,
        *,
        at: datetime,
        account: str,
        queue: str,
        counts: Mapping[str, int],
        dry_run: bool = False,
        details: Mapping[str, object] | None = None,
    ) -> JsonObject:
        entry: JsonObject = {
            "at": format_timestamp(at),
            "operator": self.operator,
            "action": action,
            "account": account,
            "queue": queue,
            "dryRun": dry_run,
            "counts": dict(counts),
            **(details or {}),
        }
        line = json.dumps(entry)  # ASCII: nothing raw reaches a terminal
        AUDIT_LOGGER.info("%s", line)
        print(f"audit: {line}", file=self.stream)
        if self.audit_file is not None:
            with self.audit_file.open("a", encoding="utf-8") as trail:
                trail.write(line + "\n")
                trail.flush()
                os.fsync(trail.fileno())
        return entry
