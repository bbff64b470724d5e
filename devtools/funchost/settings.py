"""App settings as Core Tools builds them: local.settings.json, then the environment."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from devtools.funchost.errors import FunctionHostError

_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")


def read_local_settings(path: Path) -> dict[str, str]:
    """The ``Values`` of a local.settings.json file, as strings."""
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise FunctionHostError(f"cannot read {path}: {error}") from error
    if not isinstance(document, dict):
        raise FunctionHostError(f"{path}: the top level must be a JSON object")
    if document.get("IsEncrypted") is True:
        raise FunctionHostError(
            f"{path} is encrypted (IsEncrypted: true); only Core Tools can decrypt it. "
            "Run `func settings decrypt` where Core Tools is installed, or write plain values."
        )
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise FunctionHostError(f'{path}: "Values" must be an object')
    settings: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            # JSON true must reach the app as the text it would get from the portal.
            settings[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            settings[name] = str(value)
        else:
            raise FunctionHostError(f"{path}: the value of {name!r} must be a string")
    return settings


def merge_settings(
    file_values: Mapping[str, str],
    environment: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Later sources win: the file, then the process environment, then explicit overrides."""
    return {**file_values, **environment, **(overrides or {})}


def lookup_setting(settings: Mapping[str, str], name: str) -> str | None:
    """A setting by name; exact spelling first, then case-insensitively as the host does."""
    if name in settings:
        return settings[name]
    folded = name.lower()
    for key, value in settings.items():
        if key.lower() == folded:
            return value
    return None


def resolve_setting_expressions(text: str, settings: Mapping[str, str], *, where: str) -> str:
    """Replace each ``%NAME%`` with the app setting NAME; a missing setting is an error, as in
    the host, rather than a queue silently named after the placeholder."""

    def substitute(match: re.Match[str]) -> str:
        value = lookup_setting(settings, match.group(1))
        if value is None:
            raise FunctionHostError(
                f"{where}: '%{match.group(1)}%' does not resolve to a value "
                f"(no app setting named {match.group(1)!r})"
            )
        return value

    return _SETTING_EXPRESSION.sub(substitute, text)
