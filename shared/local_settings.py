"""local.settings.json as Core Tools reads it: one home for the local host and the tools.

The local Functions host (devtools/funchost) and the operator tools (poison-queue, hires,
hire-preview, hire-publish) read the same file the same way: its ``Values`` as strings, the
process environment winning over the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

LOCAL_SETTINGS_FILE = "local.settings.json"


class LocalSettingsError(ValueError):
    """The settings file cannot be used; the message names the file and the reason."""


def read_local_settings(path: Path) -> dict[str, str]:
    """The ``Values`` of a local.settings.json file, as strings."""
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise LocalSettingsError(f"cannot read {path}: {error}") from error
    if not isinstance(document, dict):
        raise LocalSettingsError(f"{path}: the top level must be a JSON object")
    if document.get("IsEncrypted") is True:
        raise LocalSettingsError(
            f"{path} is encrypted (IsEncrypted: true); only Core Tools can decrypt it. "
            "Run `func settings decrypt` where Core Tools is installed, or write plain values."
        )
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise LocalSettingsError(f'{path}: "Values" must be an object')
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
            raise LocalSettingsError(f"{path}: the value of {name!r} must be a string")
    return settings


def merge_settings(
    file_values: Mapping[str, str],
    environment: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Later sources win: the file, then the process environment, then explicit overrides."""
    return {**file_values, **environment, **(overrides or {})}
