"""``host.json`` queue options, read with the defaults and limits of the Functions host."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from devtools.funchost.errors import FunctionHostError

MessageEncoding = Literal["base64", "none"]

DEFAULT_BATCH_SIZE = 16
MAX_BATCH_SIZE = 32
DEFAULT_MAX_DEQUEUE_COUNT = 5
DEFAULT_VISIBILITY_TIMEOUT = timedelta(0)
# Azure's default is one minute; Core Tools lowers it to two seconds when running locally.
LOCAL_DEFAULT_MAX_POLLING_INTERVAL = timedelta(seconds=2)
# The host refuses anything shorter and also uses it as the first back-off step.
MIN_POLLING_INTERVAL = timedelta(milliseconds=100)

# App settings (environment variables) named like this override host.json's extensions.queues
# keys, in Azure and under Core Tools; .NET configuration reads "__" (or ":") as a section break.
APP_SETTING_OVERRIDE_PREFIXES = (
    "AzureFunctionsJobHost__extensions__queues__",
    "AzureFunctionsJobHost:extensions:queues:",
)

# .NET TimeSpan text as host.json uses it: [d.]hh:mm[:ss[.fffffff]]
_TIMESPAN = re.compile(
    r"^(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2})"
    r"(?::(?P<seconds>\d{1,2})(?:\.(?P<fraction>\d{1,7}))?)?$"
)


@dataclass(frozen=True)
class QueuesOptions:
    """The effective ``extensions.queues`` section."""

    batch_size: int
    new_batch_threshold: int
    max_dequeue_count: int
    visibility_timeout: timedelta
    max_polling_interval: timedelta
    message_encoding: MessageEncoding

    @property
    def max_in_flight(self) -> int:
        """Most messages one listener holds at once: a batch arrives while the threshold runs."""
        return self.batch_size + self.new_batch_threshold


@dataclass(frozen=True)
class HostConfig:
    """What the local host uses from ``host.json``."""

    queues: QueuesOptions
    # host.json "functions": when present only these functions are loaded.
    function_allowlist: tuple[str, ...] | None


def parse_timespan(value: object, *, setting: str, numbers_are_milliseconds: bool) -> timedelta:
    """Read a host.json duration: a TimeSpan string, a timedelta, or (where the host allows
    it) a number of milliseconds."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise FunctionHostError(f"{setting}: expected a duration, got {value!r}")
    elif isinstance(value, int | float):
        if not numbers_are_milliseconds:
            raise FunctionHostError(
                f'{setting}: expected a duration such as "00:00:30", got the number {value!r}'
            )
        result = timedelta(milliseconds=value)
    elif isinstance(value, str):
        match = _TIMESPAN.match(value.strip())
        if match is None:
            raise FunctionHostError(
                f"{setting}: {value!r} is not a duration of the form [d.]hh:mm:ss[.fff]"
            )
        fraction = match["fraction"] or "0"
        result = timedelta(
            days=int(match["days"] or 0),
            hours=int(match["hours"]),
            minutes=int(match["minutes"]),
            seconds=int(match["seconds"] or 0),
            microseconds=round(int(fraction) * 10 ** (6 - len(fraction))),
        )
    else:
        raise FunctionHostError(f"{setting}: expected a duration, got {value!r}")
    if result < timedelta(0):
        raise FunctionHostError(f"{setting}: must not be negative, got {value!r}")
    return result


def _parse_int(value: object, *, setting: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FunctionHostError(f"{setting}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise FunctionHostError(f"{setting}: expected an integer, got {value!r}") from None


def _lowercase_keys(section: Mapping[str, object]) -> dict[str, object]:
    # host.json is read through .NET configuration, where keys are case-insensitive.
    return {key.lower(): value for key, value in section.items()}


def parse_queues_options(
    section: Mapping[str, object], *, cpu_count: int | None = None
) -> QueuesOptions:
    """Apply the host's defaults and limits to an ``extensions.queues`` section."""
    raw = _lowercase_keys(section)
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)

    batch_size = DEFAULT_BATCH_SIZE
    if "batchsize" in raw:
        batch_size = _parse_int(raw["batchsize"], setting="batchSize")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise FunctionHostError(f"batchSize must be between 1 and {MAX_BATCH_SIZE}")

    # -1 is how the host itself spells "use the default".
    new_batch_threshold = -1
    if "newbatchthreshold" in raw:
        new_batch_threshold = _parse_int(raw["newbatchthreshold"], setting="newBatchThreshold")
    if new_batch_threshold == -1:
        new_batch_threshold = (batch_size // 2) * cores
    if new_batch_threshold < 0:
        raise FunctionHostError("newBatchThreshold must not be negative")

    max_dequeue_count = DEFAULT_MAX_DEQUEUE_COUNT
    if "maxdequeuecount" in raw:
        max_dequeue_count = _parse_int(raw["maxdequeuecount"], setting="maxDequeueCount")
    if max_dequeue_count < 1:
        raise FunctionHostError("maxDequeueCount must be at least 1")

    visibility_timeout = DEFAULT_VISIBILITY_TIMEOUT
    if "visibilitytimeout" in raw:
        visibility_timeout = parse_timespan(
            raw["visibilitytimeout"], setting="visibilityTimeout", numbers_are_milliseconds=False
        )

    max_polling_interval = LOCAL_DEFAULT_MAX_POLLING_INTERVAL
    if "maxpollinginterval" in raw:
        max_polling_interval = parse_timespan(
            raw["maxpollinginterval"], setting="maxPollingInterval", numbers_are_milliseconds=True
        )
    if max_polling_interval < MIN_POLLING_INTERVAL:
        raise FunctionHostError("maxPollingInterval must be at least 100 milliseconds")

    encoding_text = str(raw.get("messageencoding", "base64")).strip().lower()
    message_encoding: MessageEncoding
    if encoding_text == "base64":
        message_encoding = "base64"
    elif encoding_text == "none":
        message_encoding = "none"
    else:
        raise FunctionHostError(f"messageEncoding must be base64 or none, got {encoding_text!r}")

    return QueuesOptions(
        batch_size=batch_size,
        new_batch_threshold=new_batch_threshold,
        max_dequeue_count=max_dequeue_count,
        visibility_timeout=visibility_timeout,
        max_polling_interval=max_polling_interval,
        message_encoding=message_encoding,
    )


def read_host_json(app_dir: Path) -> dict[str, object]:
    """The parsed ``host.json`` of an app folder, or an empty document when there is none."""
    path = app_dir / "host.json"
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise FunctionHostError(f"cannot read {path}: {error}") from error
    if not isinstance(document, dict):
        raise FunctionHostError(f"{path}: the top level must be a JSON object")
    return document


def _subsection(section: Mapping[str, object], name: str) -> Mapping[str, object]:
    for key, value in section.items():
        if key.lower() == name.lower():
            if value is None:
                return {}
            if not isinstance(value, Mapping):
                raise FunctionHostError(f"host.json: {name!r} must be an object")
            return value
    return {}


def app_setting_overrides(settings: Mapping[str, str]) -> dict[str, object]:
    """The ``extensions.queues`` keys that app settings override, by key. The prefix is matched
    case-insensitively, as .NET configuration does."""
    overrides: dict[str, object] = {}
    for name, value in settings.items():
        for prefix in APP_SETTING_OVERRIDE_PREFIXES:
            if name.lower().startswith(prefix.lower()) and len(name) > len(prefix):
                overrides[name[len(prefix) :]] = value
    return overrides


def load_host_config(
    app_dir: Path,
    *,
    overrides: Mapping[str, object] | None = None,
    cpu_count: int | None = None,
) -> HostConfig:
    """Read ``host.json`` and lay ``overrides`` over its ``extensions.queues`` section."""
    document = read_host_json(app_dir)
    queues_section: dict[str, object] = dict(
        _subsection(_subsection(document, "extensions"), "queues")
    )
    # Overrides replace host.json keys whatever their spelling.
    for key, value in (overrides or {}).items():
        for existing in [k for k in queues_section if k.lower() == key.lower()]:
            del queues_section[existing]
        queues_section[key] = value

    allowlist: tuple[str, ...] | None = None
    for key, value in document.items():
        if key.lower() == "functions" and value is not None:
            if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
                raise FunctionHostError('host.json: "functions" must be a list of names')
            allowlist = tuple(value)
    return HostConfig(
        queues=parse_queues_options(queues_section, cpu_count=cpu_count),
        function_allowlist=allowlist,
    )
