"""Strict reading and safe writing of JSON text from queue messages.

Python's ``json`` module accepts more than a hire event may hold (repeated member names,
``NaN``, lone surrogate escapes, numbers no float can carry) and fails on some inputs in ways
that are not ``JSONDecodeError`` (``RecursionError`` on deep nesting, ``ValueError`` on an
integer of more than 4,300 digits). Everything that reads a message body, in the function and
in the operator tool, goes through ``parse`` so a body is either one well-defined value or a
``JsonRejected`` naming what is wrong with it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

MAX_DEPTH = 64  # a hire event needs 3 levels; a limit keeps every recursive reader safe
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}", re.ASCII)
_KEY_SHOWN = 40


class JsonRejected(ValueError):
    """The text is not one JSON value this project accepts. ``field`` may be empty."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}" if field else rule)
        self.field = field
        self.rule = rule


class _Repeated(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


class _BadNumber(Exception):
    def __init__(self, rule: str) -> None:
        self.rule = rule


def parse(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    repeated_members: bool = False,
    lone_surrogates: bool = False,
) -> Any:
    """One JSON value, or ``JsonRejected``; never any other exception.

    Refused unless allowed: a repeated member name in one object, a lone surrogate escape
    (no Unicode text can hold it). Always refused: nesting deeper than ``max_depth``,
    ``NaN``/``Infinity``, numbers beyond a float's range or Python's integer-text limit.
    """
    try:
        depth = nesting_depth(text)
        if depth > max_depth:
            raise JsonRejected("", f"the JSON is nested {depth} levels deep (at most {max_depth})")
        value = json.loads(
            text,
            object_pairs_hook=_object if not repeated_members else dict,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except JsonRejected:
        raise
    except _Repeated as repeated:
        raise JsonRejected(
            describe_path([repeated.name]),
            "a JSON object repeats this member name (a message must have one meaning)",
        ) from None
    except _BadNumber as number:
        raise JsonRejected("", number.rule) from None
    except json.JSONDecodeError as error:
        raise JsonRejected("", f"not JSON ({error.msg} at position {error.pos})") from None
    except RecursionError:
        raise JsonRejected("", "the JSON is nested too deep to read") from None
    except Exception as error:  # the reader must be total: any other failure is a refusal
        raise JsonRejected("", f"not readable as JSON ({type(error).__name__})") from None
    if not lone_surrogates:
        where = lone_surrogate_path(value)
        if where is not None:
            raise JsonRejected(
                where,
                "holds a lone surrogate escape such as \\ud800, which is not a Unicode "
                "character (UTF-8 cannot carry it)",
            )
    return value


def member_names(text: str, *, max_depth: int = MAX_DEPTH) -> set[str]:
    """Every member name of every object in ``text``, every copy of a repeated member
    included (a plain parse keeps only the last copy): what a check for forbidden members
    must look at. Empty when the text is not JSON this module would read leniently."""
    names: set[str] = set()

    def collect(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names.update(key for key, _ in pairs)
        return dict(pairs)

    try:
        if nesting_depth(text) > max_depth:
            return set()
        json.loads(
            text,
            object_pairs_hook=collect,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except Exception:  # not JSON at all: no member to look at
        return set()
    return names


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest, found without parsing (so without recursion).

    One pass: a string token runs to its closing quote or to the end of the text, so no
    character is scanned twice (a pattern that could fail on an unterminated string would
    restart at every escaped quote, quadratic in the body's size).
    """
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        char = text[match.start()]
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def lone_surrogate_path(value: Any) -> str | None:
    """Where the first string or member name holding a lone surrogate is, if any."""
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return describe_path(path) or "(the whole value)"
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and not _encodable(key):
                    return describe_path([*path, key])
                pending.append((child, (*path, key)))
        elif isinstance(item, list):
            pending.extend((child, (*path, index)) for index, child in enumerate(item))
    return None


def dump_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON; a lone surrogate is written as its ``\\uXXXX`` escape, not dropped.

    ``backslashreplace`` writes exactly the JSON escape, and a surrogate can only stand inside
    a string, so the text reads back to the same value. Raises ``ValueError`` for NaN/Infinity
    and ``TypeError`` for values JSON cannot hold.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8", errors="backslashreplace")


def describe_path(parts: Iterable[str | int]) -> str:
    """A member path safe to log and print: ``user.firstName``, ``tags[2]``, ``["we\\u200bird"]``.

    Member names come from the message: an unusual one is shown as an escaped, shortened JSON
    string (ASCII only), so no control, escape or direction-changing character gets through.
    """
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            shown = json.dumps(part[:_KEY_SHOWN], ensure_ascii=True)
            text += f"[{shown[:-1]}…\"]" if len(part) > _KEY_SHOWN else f"[{shown}]"
    return text


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Repeated(key)
            seen.add(key)
    return document


def _constant(name: str) -> Any:
    raise _BadNumber(f"the JSON holds {name}, which is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"the JSON holds a number out of range ({len(text)} characters)")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _BadNumber(f"the JSON holds an integer of {len(text)} digits") from None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
