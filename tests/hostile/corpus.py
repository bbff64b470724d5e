"""The project's corpus of hostile message bodies, each with the result the contract expects.

Built in code (deterministic; no random source without a fixed seed) so that large bodies do not
sit in the repository. ``python -m tests.hostile.corpus DIR`` writes every body to DIR as
``NNN-name.bin`` with an ``expected.json`` index, for trying them on another host by hand.

Expectations are on what the outside world sees: the outcome's status, eventId and the words
its error message must contain (the field and the rule), and what the poison queue gets.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
DOMAIN = "contoso.onmicrosoft.com"
# An HR-supplied "password" value: it must never reach an outcome or a poison copy.
HR_PASSWORD = "Hunter2-HR-Secret!"
QUEUE_LIMIT = 48 * 1024  # bytes of body that fit a 64 KiB queue message once base64-encoded

UNCHANGED = "unchanged"  # the body itself, byte for byte
COPY = "copy"  # the event with lastFailure, whole
TRUNCATED = "truncated"  # the event with lastFailure saying what was left out
NONE = "none"  # no poison copy (the event succeeded)


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    status: str = "rejected"
    mentions: tuple[str, ...] = ()
    event_id: str | None = None
    poison: str = COPY

    @property
    def created(self) -> bool:
        return self.status == "created"


def event(number: int) -> dict[str, Any]:
    return {
        "schemaVersion": "1.0",
        "eventId": f"hostile-{number:04d}",
        "customerTenantId": CUSTOMER,
        "user": {
            "userPrincipalName": f"hostile{number}@{DOMAIN}",
            "firstName": "Jane",
            "lastName": f"Doe{number}",
            "displayName": f"Jane Doe{number}",
            "usageLocation": "US",
            "immutableId": f"H{number:05d}",
        },
        "correlationId": f"corr-{number}",
    }


def _with(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    target = changed
    for part in parents:
        target = target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return changed


_DELETE = object()


def _dump(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _compact(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Builder:
    def __init__(self) -> None:
        self.cases: list[Case] = []
        self._number = 0

    def next_event(self) -> dict[str, Any]:
        self._number += 1
        return event(self._number)

    def add(self, case: Case) -> None:
        self.cases.append(case)

    def unreadable(self, name: str, body: bytes, *mentions: str, poison: str = UNCHANGED) -> None:
        """A body with no eventId to report."""
        self.add(Case(name, body, mentions=mentions, event_id=None, poison=poison))

    def invalid(
        self,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | bytes],
        *mentions: str,
        reports_event_id: bool = True,
        poison: str = COPY,
    ) -> None:
        base = self.next_event()
        changed = change(base)
        body = changed if isinstance(changed, bytes) else _dump(changed)
        self.add(
            Case(
                name,
                body,
                mentions=mentions,
                event_id=base["eventId"] if reports_event_id else None,
                poison=poison,
            )
        )

    def valid(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any] | bytes]) -> None:
        base = self.next_event()
        changed = change(base)
        body = changed if isinstance(changed, bytes) else _dump(changed)
        self.add(Case(name, body, status="created", event_id=base["eventId"], poison=NONE))


def _nested(depth: int, inner: str = "0") -> str:
    return "[" * depth + inner + "]" * depth


def _nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _raw_event_text(document: dict[str, Any], replacements: dict[str, str]) -> bytes:
    """The event's JSON text with markers replaced by raw JSON (repeated members, escapes)."""
    text = json.dumps(document)
    for marker, raw in replacements.items():
        text = text.replace(marker, raw)
    return text.encode("utf-8")


@functools.cache
def build() -> tuple[Case, ...]:
    b = _Builder()
    rng = random.Random(20261130)

    # Not a JSON object at all: poisoned unchanged, no eventId.
    for name, body in [
        ("empty", b""),
        ("whitespace", b" \r\n\t "),
        ("null", b"null"),
        ("true", b"true"),
        ("number", b"42"),
        ("string", b'"hire"'),
        ("array", b"[]"),
        ("array-of-event", b"[" + _dump(event(9000)) + b"]"),
    ]:
        b.unreadable(f"not-an-object-{name}", body, "not" if body.strip() else "JSON")
    for name, body in [
        ("invalid-start-byte", b"\xff\xfe\x00{"),
        ("latin-1", '{"eventId": "caf\xe9"}'.encode("latin-1")),
        ("utf-16-with-bom", '{"eventId":"x"}'.encode("utf-16")),
        ("truncated-sequence", b'{"eventId":"\xe2\x82"}'),
        ("overlong-slash", b'{"eventId":"\xc0\xaf"}'),
        ("cesu-8-surrogate", b'{"eventId":"\xed\xa0\x80"}'),
    ]:
        b.unreadable(f"not-utf8-{name}", body, "UTF-8")
    for size in (1, 16, 1024, 40 * 1024):
        b.unreadable(f"binary-{size}", rng.randbytes(size) + b"\xff")
    for name, body in [
        ("utf-8-bom", b"\xef\xbb\xbf" + _dump(event(9001))),
        ("nul-bytes", b"\x00" * 64),
        ("trailing-comma", b'{"eventId":"x",}'),
        ("single-quotes", b"{'eventId':'x'}"),
        ("comment", b'{"eventId":"x"/* c */}'),
        ("unterminated", b'{"eventId":"x"'),
        ("two-objects", b'{"a":1}{"b":2}'),
        ("trailing-garbage", _dump(event(9002)) + b"garbage"),
        ("raw-control-in-string", b'{"eventId":"a\x01b"}'),
        ("raw-escape-sequence", b'{"eventId":"\x1b[31mred"}'),
        ("bad-escape", b'{"eventId":"\\x41"}'),
        ("short-unicode-escape", b'{"eventId":"\\u12"}'),
        ("unquoted-key", b"{eventId:1}"),
        ("html", b"<html><body>502 Bad Gateway</body></html>"),
        ("xml-message", b"<QueueMessage><MessageText>e30=</MessageText></QueueMessage>"),
        ("base64-of-event", __import__("base64").b64encode(_dump(event(9003)))),
        ("form-encoded", b"eventId=hr-1&password=" + HR_PASSWORD.encode()),
        # Bait for readers that rescan: an unterminated string full of escaped quotes.
        ("unterminated-escaped-quotes", b'"' + b'a\\"' * 16_000),
        ("escaped-quotes-outside-strings", b'\\"' * 24_000),
    ]:
        b.unreadable(f"not-json-{name}", body, "not JSON")

    # Depth: the reader refuses more than 64 levels, without recursion errors.
    for depth in (65, 1000, 10_000, 24_000):
        b.unreadable(f"deep-array-{depth}", _nested(depth).encode(), "nested")
    b.unreadable("deep-object-1000", _nested_objects(1000).encode(), "nested")
    b.unreadable("deep-unterminated", b"[" * 40_000, "nested")
    b.unreadable("deep-in-string-is-fine-but-not-object", ('"' + "[" * 5000 + '"').encode(), "not")
    b.invalid(
        "deep-unknown-member",
        lambda e: _raw_event_text(_with(e, "extra", "@@"), {'"@@"': _nested(1000)}),
        "nested",
        reports_event_id=False,
        poison=UNCHANGED,
    )

    # Numbers JSON readers disagree on.
    b.unreadable("integer-4301-digits", ("1" * 4301).encode(), "digits")
    b.invalid(
        "integer-5000-digits-in-member",
        lambda e: _raw_event_text(_with(e, "extra", "@@"), {'"@@"': "9" * 5000}),
        "digits",
        reports_event_id=False,
        poison=UNCHANGED,
    )
    constants = [("nan", "NaN"), ("infinity", "Infinity"), ("minus-infinity", "-Infinity")]
    for name, literal in constants:
        b.invalid(
            f"constant-{name}",
            lambda e, literal=literal: _raw_event_text(_with(e, "extra", "@@"), {'"@@"': literal}),
            "not a JSON number",
            reports_event_id=False,
            poison=UNCHANGED,
        )
    for name, literal in [("huge", "1e400"), ("minus-huge", "-1e400")]:
        b.invalid(
            f"float-{name}",
            lambda e, literal=literal: _raw_event_text(_with(e, "extra", "@@"), {'"@@"': literal}),
            "out of range",
            reports_event_id=False,
            poison=UNCHANGED,
        )

    # Repeated member names: no single meaning.
    b.invalid(
        "repeated-event-id",
        lambda e: _raw_event_text(e, {'"eventId": ': '"eventId": "other", "eventId": '}),
        "eventId",
        "repeats",
        reports_event_id=False,
        poison=UNCHANGED,
    )
    b.invalid(
        "repeated-first-name",
        lambda e: _raw_event_text(e, {'"firstName": ': '"firstName": "Eve", "firstName": '}),
        "firstName",
        "repeats",
        reports_event_id=True,
        poison=UNCHANGED,
    )
    b.invalid(
        "repeated-same-value",
        lambda e: _raw_event_text(
            e, {'"usageLocation": "US"': '"usageLocation": "US", "usageLocation": "US"'}
        ),
        "usageLocation",
        reports_event_id=True,
        poison=UNCHANGED,
    )
    b.invalid(
        "repeated-unknown-member",
        lambda e: _raw_event_text(e, {'"schemaVersion"': '"x": 1, "x": 2, "schemaVersion"'}),
        "repeats",
        reports_event_id=True,
        poison=UNCHANGED,
    )
    b.invalid(
        "repeated-with-password",
        lambda e: _raw_event_text(
            e, {'"schemaVersion"': f'"a": 1, "a": 2, "password": "{HR_PASSWORD}", "schemaVersion"'}
        ),
        "repeats",
        reports_event_id=True,
    )

    # Lone surrogate escapes: no Unicode text holds them.
    for name, path in [
        ("event-id", "eventId"),
        ("display-name", "user.displayName"),
        ("first-name", "user.firstName"),
        ("correlation-id", "correlationId"),
        ("unknown-member", "extra"),
        ("customer", "customerTenantId"),
        ("upn", "user.userPrincipalName"),
    ]:
        b.invalid(
            f"lone-surrogate-{name}",
            lambda e, path=path: _raw_event_text(_with(e, path, "@@"), {'"@@"': '"a\\ud800b"'}),
            "surrogate",
            reports_event_id=path != "eventId",
            poison=UNCHANGED,
        )
    b.invalid(
        "lone-low-surrogate",
        lambda e: _raw_event_text(_with(e, "user.lastName", "@@"), {'"@@"': '"\\udc00"'}),
        "surrogate",
        reports_event_id=True,
        poison=UNCHANGED,
    )
    b.invalid(
        "reversed-surrogate-pair",
        lambda e: _raw_event_text(_with(e, "user.lastName", "@@"), {'"@@"': '"\\ude00\\ud83d"'}),
        "surrogate",
        reports_event_id=True,
        poison=UNCHANGED,
    )
    b.invalid(
        "lone-surrogate-in-member-name",
        lambda e: _raw_event_text(e, {'"schemaVersion"': '"\\ud800": 1, "schemaVersion"'}),
        "surrogate",
        reports_event_id=True,
        poison=UNCHANGED,
    )
    b.invalid(
        "lone-surrogate-with-password",
        lambda e: _raw_event_text(
            _with(e, "user.password", HR_PASSWORD), {'"Jane"': '"Ja\\ud800ne"'}
        ),
        "surrogate",
        reports_event_id=True,
    )

    # Passwords, wherever they are and however the member is spelt.
    for name, path in [
        ("user", "user.password"),
        ("top-level", "password"),
        ("capitalised", "user.Password"),
        ("passwd", "user.passwd"),
        ("pwd", "pwd"),
        ("underscored", "user.pass_word"),
        ("zero-width", "user.pass\u200bword"),
        ("fullwidth", "user.\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44"),
        ("initial-password", "initialPassword"),
        ("profile", "user.passwordProfile"),
        ("unknown-member", "extra"),
        ("last-failure", "lastFailure"),
        ("replay", "replay"),
    ]:
        def change(e: dict[str, Any], path: str = path) -> dict[str, Any]:
            if path in ("extra", "lastFailure", "replay"):
                return _with(e, path, {"nested": [{"password": HR_PASSWORD}]})
            if path.endswith("passwordProfile"):
                return _with(e, path, {"password": HR_PASSWORD, "forceChangePassword": True})
            return _with(e, path, HR_PASSWORD)

        b.invalid(f"password-{name}", change, "password")

    # Invisible and direction-changing characters in names, ids and UPNs.
    for char, label in [
        ("\u200b", "zero-width-space"),
        ("\u200d", "zero-width-joiner"),
        ("\u2060", "word-joiner"),
        ("\ufeff", "bom"),
        ("\u202e", "right-to-left-override"),
        ("\u2066", "left-to-right-isolate"),
        ("\u200f", "right-to-left-mark"),
        ("\u061c", "arabic-letter-mark"),
        ("\u00ad", "soft-hyphen"),
    ]:
        b.invalid(
            f"invisible-{label}-first-name",
            lambda e, char=char: _with(e, "user.firstName", f"Ja{char}ne"),
            "user.firstName",
            "invisible",
        )
    for path, field in [
        ("user.lastName", "user.lastName"),
        ("user.displayName", "user.displayName"),
        ("user.immutableId", "user.immutableId"),
        ("correlationId", "correlationId"),
    ]:
        b.invalid(
            f"invisible-in-{field}",
            lambda e, path=path: _with(e, path, "Doe\u202egnp.exe"),
            field,
            "invisible",
        )
    b.invalid(
        "invisible-in-event-id",
        lambda e: _with(e, "eventId", e["eventId"] + "\u200b"),
        "eventId",
        "invisible",
        reports_event_id=False,
    )
    b.invalid(
        "bom-in-event-id",
        lambda e: _with(e, "eventId", "\ufeff" + e["eventId"]),
        "eventId",
        "invisible",
        reports_event_id=False,
    )
    b.invalid(
        "invisible-in-upn-local",
        lambda e: _with(e, "user.userPrincipalName", f"ja\u200bne@{DOMAIN}"),
        "user.userPrincipalName",
        "invisible",
    )
    b.invalid(
        "invisible-in-upn-domain",
        lambda e: _with(e, "user.userPrincipalName", "jane@contoso\u2060.onmicrosoft.com"),
        "user.userPrincipalName",
        "invisible",
    )
    b.invalid(
        "bidi-override-in-upn",
        lambda e: _with(e, "user.userPrincipalName", f"\u202ejane@{DOMAIN}"),
        "user.userPrincipalName",
        "invisible",
    )
    for char, label in [("\x1b", "escape"), ("\x9b", "c1-csi"), ("\u2028", "line-separator")]:
        b.invalid(
            f"control-{label}-display-name",
            lambda e, char=char: _with(e, "user.displayName", f"Jane{char}[2J Doe"),
            "user.displayName",
        )

    # Digits other than 0-9 where a number or version is expected.
    for digits, label in [
        ("1.\u0660", "arabic-indic"),
        ("\u0661.0", "arabic-indic-major"),
        ("\uff11.0", "fullwidth"),
        ("1.\u0966", "devanagari"),
        ("1.\u06f0", "extended-arabic-indic"),
        ("1.\U0001d7ce", "mathematical-bold"),
    ]:
        b.invalid(
            f"schema-version-{label}",
            lambda e, digits=digits: _with(e, "schemaVersion", digits),
            "schemaVersion",
            "0-9",
        )
    b.invalid(
        "fullwidth-digits-in-customer",
        lambda e: _with(e, "customerTenantId", "\uff14" + CUSTOMER[1:]),
        "customerTenantId",
        "GUID",
    )
    b.invalid(
        "fullwidth-usage-location",
        lambda e: _with(e, "user.usageLocation", "\uff35\uff33"),
        "user.usageLocation",
    )
    b.invalid(
        "cyrillic-homoglyph-upn",
        lambda e: _with(e, "user.userPrincipalName", f"j\u0430ne@{DOMAIN}"),
        "user.userPrincipalName",
    )

    # Contract rules, with odd types.
    for name, path, value, mentions in [
        ("schema-version-2", "schemaVersion", "2.0", ("schemaVersion",)),
        ("schema-version-number", "schemaVersion", 1.0, ("schemaVersion", "string")),
        ("event-id-number", "eventId", 123, ("eventId", "string")),
        ("event-id-empty", "eventId", "", ("eventId",)),
        ("event-id-129", "eventId", "e" * 129, ("eventId", "128")),
        ("event-id-blank", "eventId", "   ", ("eventId", "blank")),
        ("user-string", "user", "jane", ("user", "object")),
        ("user-list", "user", [], ("user", "object")),
        ("user-null", "user", None, ("user",)),
        ("customer-braces", "customerTenantId", "{" + CUSTOMER + "}", ("customerTenantId",)),
        ("customer-path", "customerTenantId", "../../x", ("customerTenantId", "GUID")),
        ("first-name-65", "user.firstName", "J" * 65, ("user.firstName", "64")),
        ("display-name-object", "user.displayName", {"a": 1}, ("user.displayName",)),
        ("usage-location-xx", "user.usageLocation", "XX", ("user.usageLocation",)),
        ("upn-two-ats", "user.userPrincipalName", "a@b@" + DOMAIN, ("user.userPrincipalName",)),
        ("upn-no-domain", "user.userPrincipalName", "jane@", ("user.userPrincipalName",)),
    ]:
        b.invalid(
            f"contract-{name}",
            lambda e, path=path, value=value: _with(e, path, value),
            *mentions,
            reports_event_id=path != "eventId",
        )
    for path in ("schemaVersion", "eventId", "customerTenantId", "user", "user.firstName"):
        b.invalid(
            f"missing-{path}",
            lambda e, path=path: _with(e, path, _DELETE),
            path,
            "required",
            reports_event_id=path != "eventId",
        )

    # Size: refused events whose copy no longer fits, and bodies larger than a message.
    b.invalid(
        "refused-event-filling-the-message",
        lambda e: _pad_to(_with(e, "user.usageLocation", "XX"), QUEUE_LIMIT - 10),
        "user.usageLocation",
        poison=TRUNCATED,
    )
    b.invalid(
        "refused-event-many-small-members",
        lambda e: _compact(_many_members(_with(e, "user.usageLocation", "XX"), QUEUE_LIMIT - 100)),
        "user.usageLocation",
        poison=TRUNCATED,
    )
    b.invalid(
        "refused-event-huge-user-field",
        lambda e: _with(e, "user.displayName", "\u00e9" * (QUEUE_LIMIT // 2 - 200)),
        "user.displayName",
        poison=TRUNCATED,
    )
    b.invalid(
        "refused-event-escaped-text-grows",
        lambda e: _raw_event_text(
            _with(e, "user.usageLocation", "XX") | {"extra": "@@"},
            {'"@@"': '"' + "\\u00e9" * ((QUEUE_LIMIT - 400) // 6) + '"'},
        ),
        "user.usageLocation",
    )
    b.unreadable(
        "oversize-binary-60k",
        rng.randbytes(60 * 1024) + b"\xff",
        "UTF-8",
        poison=TRUNCATED,
    )
    b.unreadable(
        "oversize-not-json-70k", b"x" * (70 * 1024), "larger than", poison=TRUNCATED
    )
    b.unreadable(
        "oversize-event-70k",
        _dump(_pad_to(event(9004), 70 * 1024)),
        "larger than",
        poison=TRUNCATED,
    )

    # Odd but valid: created, no poison copy.
    b.valid("emoji-display-name", lambda e: _with(e, "user.displayName", "Jane \U0001f600 Doe"))
    b.valid("surrogate-pair-escape", lambda e: _raw_event_text(
        _with(e, "user.displayName", "@@"), {'"@@"': '"Jane \\ud83d\\ude00"'}
    ))
    b.valid("non-ascii-names", lambda e: _with(
        _with(e, "user.firstName", "Zo\u00eb"), "user.lastName", "\u00c5ngstr\u00f6m"
    ))
    b.valid("ascii-escapes", lambda e: _raw_event_text(e, {'"Jane"': '"\\u004aane"'}))
    b.valid("escaped-slash", lambda e: _raw_event_text(e, {'"corr-': '"corr\\/'}))
    b.valid("last-failure-and-replay", lambda e: e | {
        "lastFailure": {"category": "throttled", "message": "m", "attempts": 5},
        "replay": {"count": 2, "lastReplayedAt": "2026-11-21T10:00:00Z"},
    })
    b.valid("unknown-member-60-deep", lambda e: _raw_event_text(
        e | {"extra": "@@"}, {'"@@"': _nested(60)}
    ))
    b.valid("large-unknown-member", lambda e: e | {"extra": "x" * (40 * 1024)})
    b.valid("big-integer-member", lambda e: _raw_event_text(
        e | {"extra": "@@"}, {'"@@"': "9" * 4000}
    ))
    b.valid("password-in-a-value-not-a-member", lambda e: e | {"note": "password reset later"})
    b.valid("pretty-printed", lambda e: json.dumps(e, indent=4).encode())
    b.valid("lower-case-usage-location", lambda e: _with(e, "user.usageLocation", "us"))
    b.valid("schema-version-1-1", lambda e: _with(e, "schemaVersion", "1.1"))
    return tuple(b.cases)


def _pad_to(document: dict[str, Any], size: int) -> dict[str, Any]:
    padded = document | {"padding": ""}
    padded["padding"] = "p" * max(0, size - len(_dump(padded)))
    return padded


def _many_members(document: dict[str, Any], size: int) -> dict[str, Any]:
    padded = dict(document)
    length = len(_compact(padded))
    index = 0
    while length < size - 40:
        padded[f"m{index:05d}"] = index
        length += len(f'"m{index:05d}":{index},')
        index += 1
    return padded


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    index = []
    for number, case in enumerate(build(), start=1):
        name = f"{number:03d}-{case.name}.bin"
        (directory / name).write_bytes(case.body)
        index.append(
            {
                "file": name,
                "status": case.status,
                "eventId": case.event_id,
                "mentions": list(case.mentions),
                "poison": case.poison,
            }
        )
    (directory / "expected.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus"))
