"""Hire events as operators hand them over: one reader for `hire-publish` and `hire-preview`.

A file (or stdin, or `--event` text) holds a JSON object, a JSON array of objects, or JSON
Lines (one object per line). Each event keeps its own text, so it is then read by the
function's own rules (shared.domain.events.decode_body: strict JSON, size and depth limits) and a
bad
one is reported by its position, never with a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shared.domain import jsontext


class EventInputError(ValueError):
    """The input as a whole cannot be read (a JSON array that is not valid JSON)."""


@dataclass(frozen=True)
class EventText:
    position: int
    """1-based: the line (JSON Lines), or the item (a JSON array; 1 for a single object)."""
    label: str
    """Where it came from, for messages: 'events.jsonl line 3', 'events.json item 2'."""
    text: str


def split_events(text: str, *, source: str) -> list[EventText]:
    """The events in ``text``: a JSON object, a JSON array, or JSON Lines."""
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        return []
    if stripped.startswith("["):
        try:
            document = jsontext.parse(stripped)
        except jsontext.JsonRejected as error:
            raise EventInputError(f"{source}: not a valid JSON array: {error}") from None
        if not isinstance(document, list):  # pragma: no cover - '[' starts an array
            raise EventInputError(f"{source}: not a JSON array")
        return [
            EventText(number, f"{source} item {number}", json.dumps(item, ensure_ascii=False))
            for number, item in enumerate(document, start=1)
        ]
    if "\n" in stripped:
        try:
            jsontext.parse(stripped)
        except jsontext.JsonRejected:
            try:
                json.loads(stripped.splitlines()[0])
            except ValueError:
                # Not JSON Lines either: one bad document, reported once with its reason.
                return [EventText(1, source, stripped)]
        else:
            return [EventText(1, source, stripped)]
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) == 1:
        return [EventText(lines[0][0], source, lines[0][1])]
    return [EventText(number, f"{source} line {number}", line) for number, line in lines]
