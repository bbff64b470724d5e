"""Generated UPNs: UPN_TEMPLATE filled from a hire event (docs/contract.md section 5).

Pure functions, no I/O. The template names event fields in braces; each value is
transliterated to ASCII (``anyascii``: Zoë Ångström → zoe.angstrom), lower-cased and reduced
to the characters Entra ID allows in the part of a UPN before the @.

Template syntax (checked once at start-up by :func:`validate_template`):

- ``{firstName}``, ``{lastName}``, ``{displayName}``, ``{immutableId}``: the event's
  ``user.<name>``;
- ``{firstName[0]}`` (any of the four with ``[0]``): its first usable character (an initial);
- any other text is literal and may hold only the characters Entra allows
  (letters, digits and ``' . - _ ! # ^ ~``); ``{{`` and ``}}`` are not supported.

Rendering rules (:func:`render_local_part`):

- symbols (emoji, currency, maths), control and format characters and whitespace inside a
  value are dropped, so "Mary Ann" gives ``maryann``; punctuation is transliterated and kept
  when Entra allows it (O'Brien, with either apostrophe, gives ``o'brien``, Jean-Luc ``jean-luc``);
- runs of periods become one, and leading and trailing periods go, so an empty first name
  with ``{firstName}.{lastName}`` gives ``doe``;
- the result is cut to 62 characters, leaving room for a counter of up to two digits within
  Entra's 64;
- at least one letter or digit must remain, otherwise :class:`UpnGenerationError`.

Candidates (:func:`candidate`): the first is the local part as rendered, then ``jane.doe2``
to ``jane.doe99`` for a UPN that someone else holds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from anyascii import anyascii

DEFAULT_TEMPLATE = "{firstName}.{lastName}"
#: placeholder name -> the event member it reads (for error messages)
PLACEHOLDERS: Mapping[str, str] = {
    "firstName": "user.firstName",
    "lastName": "user.lastName",
    "displayName": "user.displayName",
    "immutableId": "user.immutableId",
}
MAX_LOCAL_PART = 64  # Entra ID's limit for the part before the @
MAX_COUNTER = 99
# Room for the counter: a rendered local part plus "99" still fits Entra's limit.
MAX_RENDERED_LOCAL_PART = MAX_LOCAL_PART - len(str(MAX_COUNTER))

_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyz0123456789'.-_!#^~")
_ALLOWED_DESCRIPTION = "letters, digits and ' . - _ ! # ^ ~"
_TOKEN = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER = re.compile(r"([A-Za-z]+)(\[0\])?")
_PERIODS = re.compile(r"\.{2,}")
# Unicode categories dropped before transliteration: symbols (anyascii would spell an emoji
# as ":grinning:"), separators, and control, format, private-use and unassigned characters.
_DROPPED_CATEGORIES = ("S", "Z", "C")


class UpnTemplateError(ValueError):
    """``UPN_TEMPLATE`` is not a usable template; the text names the rule it breaks."""

    def __init__(self, rule: str) -> None:
        super().__init__(f"app setting UPN_TEMPLATE: {rule}")
        self.rule = rule


class UpnGenerationError(ValueError):
    """No UPN can be generated from this event's fields.

    ``field`` names the event member(s) involved and ``rule`` the rule; like
    ``shared.domain.events.InvalidEvent``, the text never repeats a value from the event.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class _Literal:
    text: str


@dataclass(frozen=True)
class _Field:
    name: str
    initial: bool


_Part = _Literal | _Field


def validate_template(template: str) -> None:
    """Raise :class:`UpnTemplateError` unless ``template`` is usable (start-up check)."""
    _parse(template)


def render_local_part(template: str, fields: Mapping[str, str | None]) -> str:
    """The local part (before the @) ``template`` gives for these event fields.

    ``fields`` maps placeholder names (``firstName``...) to the event's values; a missing or
    ``None`` value counts as empty. Raises :class:`UpnTemplateError` for a bad template and
    :class:`UpnGenerationError` when no letter or digit is left.
    """
    parts = _parse(template)
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, _Literal):
            pieces.append(part.text)
            continue
        value = _ascii_local_characters(fields.get(part.name) or "")
        if part.initial:
            value = next((character for character in value if character.isalnum()), "")
        pieces.append(value)
    local = _tidy_periods("".join(pieces))[:MAX_RENDERED_LOCAL_PART]
    local = _tidy_periods(local)  # the cut may leave a period at the end
    if not any(character.isalnum() for character in local):
        used = sorted({PLACEHOLDERS[part.name] for part in parts if isinstance(part, _Field)})
        raise UpnGenerationError(
            ", ".join(used),
            "no letter or digit is left for a generated userPrincipalName after "
            f"transliteration to ASCII (UPN_TEMPLATE {template!r}); give the user a "
            "userPrincipalName instead",
        )
    return local


def candidate(local_part: str, domain: str, n: int) -> str:
    """The ``n``-th UPN to try: ``local@domain`` for n = 1, then ``local2@domain`` ...
    ``local99@domain``. ``local_part`` is what :func:`render_local_part` returned."""
    if not 1 <= n <= MAX_COUNTER:
        raise ValueError(f"the UPN counter runs from 1 to {MAX_COUNTER}, not {n}")
    if (
        not 0 < len(local_part) <= MAX_RENDERED_LOCAL_PART
        or not set(local_part) <= _ALLOWED
        or _tidy_periods(local_part) != local_part
    ):
        raise ValueError("local_part must be a local part as render_local_part returns it")
    if not domain or "@" in domain:
        raise ValueError("domain must be a domain name such as contoso.onmicrosoft.com")
    counter = "" if n == 1 else str(n)
    return f"{local_part}{counter}@{domain.lower()}"


def _parse(template: str) -> list[_Part]:
    if not isinstance(template, str) or not template.strip():
        raise UpnTemplateError(f"must not be empty (default {DEFAULT_TEMPLATE!r})")
    parts: list[_Part] = []
    position = 0
    for token in _TOKEN.finditer(template):
        parts += _literal(template[position : token.start()])
        parts.append(_field(token.group(1)))
        position = token.end()
    parts += _literal(template[position:])
    if not any(isinstance(part, _Field) for part in parts):
        raise UpnTemplateError(
            "must contain at least one placeholder such as {firstName}, or every hire would "
            "get the same UPN"
        )
    return parts


def _field(inside: str) -> _Field:
    known = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    matched = _PLACEHOLDER.fullmatch(inside)
    if matched is None:
        raise UpnTemplateError(
            f"placeholder {{{inside}}} is not of the form {{name}} or {{name[0]}} (names: {known})"
        )
    name = matched.group(1)
    if name not in PLACEHOLDERS:
        raise UpnTemplateError(f"unknown placeholder {{{name}}}; known: {known}")
    return _Field(name, initial=matched.group(2) is not None)


def _literal(text: str) -> list[_Part]:
    if not text:
        return []
    if "{" in text or "}" in text:
        raise UpnTemplateError("has an unmatched { or } (placeholders look like {firstName})")
    if not set(text.lower()) <= _ALLOWED:
        raise UpnTemplateError(
            f"literal text {text!r} may hold only the characters Entra allows before the @ "
            f"({_ALLOWED_DESCRIPTION})"
        )
    return [_Literal(text.lower())]


def _ascii_local_characters(value: str) -> str:
    kept = "".join(
        character
        for character in unicodedata.normalize("NFC", value)
        if not unicodedata.category(character).startswith(_DROPPED_CATEGORIES)
    )
    return "".join(character for character in anyascii(kept).lower() if character in _ALLOWED)


def _tidy_periods(text: str) -> str:
    return _PERIODS.sub(".", text).strip(".")
