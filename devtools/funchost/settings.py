"""App settings as Core Tools builds them: local.settings.json, then the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from devtools.funchost.errors import FunctionHostError
from shared import local_settings as shared_local_settings

_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")


def read_local_settings(path: Path) -> dict[str, str]:
    """The ``Values`` of a local.settings.json file, as strings (shared with the tools)."""
    try:
        return shared_local_settings.read_local_settings(path)
    except shared_local_settings.LocalSettingsError as error:
        raise FunctionHostError(str(error)) from error


merge_settings = shared_local_settings.merge_settings


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
