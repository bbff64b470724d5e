"""What every operator tool shares: settings, connection flags, failures and terminal output.

One home for how `poison-queue`, `hires`, `hire-preview` and `hire-publish` find the storage
account (flags, then the process environment, then local.settings.json: the local host's
order), how they fail (one line, never a traceback; exit 2 for bad input) and how they print
tables (sized to the terminal; unbounded when piped).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from rich.cells import cell_len

from shared.local_settings import (
    LOCAL_SETTINGS_FILE,
    LocalSettingsError,
    merge_settings,
    read_local_settings,
)
from shared.settings import STORAGE_CONNECTION_SETTING

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

QUEUE_SERVICE_URI_SETTING = f"{STORAGE_CONNECTION_SETTING}__queueServiceUri"
TABLE_SERVICE_URI_SETTING = f"{STORAGE_CONNECTION_SETTING}__tableServiceUri"
SETTINGS_FILE_VARIABLE = "HIRE_SETTINGS_FILE"

# A tool at a terminal should fail in seconds, not after the SDK's 80-second retry ladder.
CONNECTION_TIMEOUT_SECONDS = 4
READ_TIMEOUT_SECONDS = 10
RETRY_TOTAL = 1

PIPED_WIDTH: int | None = None
"""Off a terminal (a pipe, a file) tables are not truncated: every row is one whole line."""

ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class ToolError(Exception):
    """A condition the operator has to fix; the message says what. ``exit_code`` 1 or 2."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSettings:
    """App settings as the local host builds them: the file, then the process environment."""

    values: Mapping[str, str]
    file: Path | None = None
    from_environment: frozenset[str] = field(default_factory=frozenset)
    file_values: Mapping[str, str] = field(default_factory=dict)

    def overridden(self, name: str) -> bool:
        """The file sets ``name`` but the environment's different value wins."""
        in_file = self.file_values.get(name)
        return in_file is not None and name in self.from_environment and (
            self.values.get(name) != in_file
        )

    def get(self, name: str) -> str | None:
        value = self.values.get(name, "").strip()
        return value or None

    def source(self, name: str) -> str:
        """Where a setting came from, for an error message: 'X (environment)' or 'X (file)'."""
        if name in self.from_environment:
            return f"{name} (environment variable)"
        if self.file is not None:
            return f"{name} (in {self.file})"
        return name


def load_tool_settings(
    explicit: Path | None, environ: Mapping[str, str] | None = None, *, apply: bool = True
) -> ToolSettings:
    """``--settings FILE``, else $HIRE_SETTINGS_FILE, else ./local.settings.json if present.

    With ``apply`` the file's values also reach this process's environment where it has none
    (the environment wins, as in the host), so libraries that read variables themselves
    (``REQUESTS_CA_BUNDLE``, ``AZURE_CLIENT_ID``...) see them too.
    """
    env = os.environ if environ is None else environ
    path = explicit
    if path is None and env.get(SETTINGS_FILE_VARIABLE, "").strip():
        path = Path(env[SETTINGS_FILE_VARIABLE].strip())
    if path is None and Path(LOCAL_SETTINGS_FILE).is_file():
        path = Path(LOCAL_SETTINGS_FILE)
    file_values: dict[str, str] = {}
    if path is not None:
        if not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise ToolError(f"settings file {path} {problem}", EXIT_USAGE)
        try:
            file_values = read_local_settings(path)
        except LocalSettingsError as error:
            raise ToolError(str(error), EXIT_USAGE) from None
    settings = ToolSettings(
        values=merge_settings(file_values, dict(env)),
        file=path,
        from_environment=frozenset(name for name in env if env[name].strip()),
        file_values=file_values,
    )
    if apply and environ is None:
        for name, value in file_values.items():
            os.environ.setdefault(name, value)
    return settings


# --- connection flags -------------------------------------------------------------------


def add_connection_options(
    parser: argparse.ArgumentParser, *, queue: bool, table: bool, suppress: bool = False
) -> None:
    """The same flags for every tool, accepted before and after the subcommand.

    Called once on the top-level parser and once (``suppress=True``) on a parent of every
    subcommand: a flag given after the subcommand must not reset one given before it.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection (before or after the subcommand)")
    group.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        default=default(None),
        help=f"app settings file (default: ${SETTINGS_FILE_VARIABLE}, else ./{LOCAL_SETTINGS_FILE}"
        " if present); environment variables win over it",
    )
    account = group.add_mutually_exclusive_group()
    account.add_argument(
        "--connection-string",
        default=default(None),
        help=f"storage connection string (default: the {STORAGE_CONNECTION_SETTING} setting; "
        "UseDevelopmentStorage=true is Azurite on 127.0.0.1)",
    )
    account.add_argument(
        "--account-url",
        default=default(None),
        help="https://<account>.queue.core.windows.net or .table.; signed in with "
        f"DefaultAzureCredential (default: {QUEUE_SERVICE_URI_SETTING} / "
        f"{TABLE_SERVICE_URI_SETTING})",
    )
    if queue:
        group.add_argument(
            "--queue",
            default=default(None),
            help="the REQUEST queue's name; its poison queue is <queue>-poison "
            "(default: the REQUEST_QUEUE_NAME setting, else user-create-requests)",
        )
    if table:
        group.add_argument(
            "--table",
            "--ledger-table",
            dest="table",
            default=default(None),
            help="the hire ledger's table (default: the HIRE_LEDGER_TABLE setting, else "
            "hireledger)",
        )


def connection_parent(*, queue: bool, table: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    add_connection_options(parent, queue=queue, table=table, suppress=True)
    return parent


def add_json_option(parser: argparse.ArgumentParser, text_name: str = "table") -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--format", choices=[text_name, "json"], default=text_name)
    output.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )


@dataclass(frozen=True)
class StorageTarget:
    """Where the storage account is, and which setting (or flag) said so."""

    connection_string: str | None
    queue_service_uri: str | None
    table_service_uri: str | None
    source: str


def storage_target(args: argparse.Namespace, settings: ToolSettings) -> StorageTarget:
    """Flags first, then AzureWebJobsStorage, then its identity-based __*ServiceUri settings."""
    connection_string = getattr(args, "connection_string", None)
    account_url = getattr(args, "account_url", None)
    if connection_string:
        return StorageTarget(connection_string, None, None, "--connection-string")
    if account_url:
        queue_url = account_url.replace(".table.", ".queue.", 1)
        table_url = account_url.replace(".queue.", ".table.", 1)
        return StorageTarget(None, queue_url, table_url, "--account-url")
    configured = settings.get(STORAGE_CONNECTION_SETTING)
    if configured:
        return StorageTarget(configured, None, None, settings.source(STORAGE_CONNECTION_SETTING))
    queue_url = settings.get(QUEUE_SERVICE_URI_SETTING)
    table_url = settings.get(TABLE_SERVICE_URI_SETTING)
    if queue_url or table_url:
        names = [n for n, v in ((QUEUE_SERVICE_URI_SETTING, queue_url),
                                (TABLE_SERVICE_URI_SETTING, table_url)) if v]
        return StorageTarget(None, queue_url, table_url, " and ".join(map(settings.source, names)))
    raise ToolError(
        "no storage account: pass --connection-string or --account-url, or set "
        f"{STORAGE_CONNECTION_SETTING} (in the environment or in {LOCAL_SETTINGS_FILE}, or "
        "name a settings file with --settings)",
        EXIT_USAGE,
    )


def client_options() -> dict[str, Any]:
    """azure-core options for a tool's storage clients: fail in seconds, retry once."""
    return {
        "connection_timeout": CONNECTION_TIMEOUT_SECONDS,
        "read_timeout": READ_TIMEOUT_SECONDS,
        "retry_total": RETRY_TOTAL,
        # The storage SDK's first back-off is 15 s (plus jitter): a person is waiting.
        "initial_backoff": 1,
        "increment_base": 1,
        "random_jitter_range": 1,
    }


def describe_storage_error(error: AzureError, *, what: str, url: str, source: str) -> str:
    """One line: what failed, where, and which setting points there."""
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return (
            f"cannot reach {what} at {url} ({_first_line(error)}); it is set by {source}: "
            "is the storage emulator or account up, and is that the right address?"
        )
    if isinstance(error, ClientAuthenticationError):
        return f"{what} at {url} refused the credentials from {source}: {_first_line(error)}"
    if isinstance(error, HttpResponseError):
        return f"{what} at {url} answered {error.status_code}: {_first_line(error)}"
    return f"{what} at {url} failed: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    # urllib3's connection errors repeat the connection's repr; keep the part that says why.
    if "Failed to establish a new connection:" in line:
        line = line.split("Failed to establish a new connection:", 1)[1].strip(" )'\"")
    quoted = _REPR_THEN_REASON.search(line)
    if quoted:
        line = quoted.group(1)
    return line[:300]


_REPR_THEN_REASON = re.compile(r"<[^>]*>,\s*'([^']*)'")


def tenant_id(text: str) -> str:
    """An argparse type: a customer tenant id must be a GUID (compared lower-case)."""
    if not GUID.match(text.strip()):
        raise argparse.ArgumentTypeError(f"not a tenant id (a GUID): {text!r}")
    return text.strip().lower()


def run_guarded(tool: str, body: Callable[[], int], err: TextIO | None = None) -> int:
    """Run a tool's command: ToolError and storage errors become one line, never a traceback."""
    stream = err or sys.stderr
    try:
        return body()
    except ToolError as error:
        print(f"{tool}: {error}", file=stream)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{tool}: interrupted", file=stream)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `... | head`: the reader has what it wanted.
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        return EXIT_OK


# --- terminal output --------------------------------------------------------------------


def output_width(stream: TextIO | None = None) -> int | None:
    """The terminal's width; None (no truncation) when the output is a pipe or a file."""
    target = stream or sys.stdout
    if not target.isatty():
        return PIPED_WIDTH
    return shutil.get_terminal_size((100, 24)).columns


@dataclass
class Column:
    heading: str
    values: list[str]
    kind: Literal["id", "text"] = "text"
    """An id is never shortened or broken; text is cut with '…' to fit."""
    keep: int = 0
    """When even the ids do not fit, columns with the lowest ``keep`` are hidden first."""


@dataclass(frozen=True)
class Rendered:
    lines: list[str]
    hidden: list[str]
    truncated: bool


MIN_TEXT_WIDTH = 24  # a cut value shorter than this tells nobody anything
GAP = "  "


def render_columns(columns: Sequence[Column], width: int | None) -> Rendered:
    """Plain columns, one line per row, fitted to ``width`` (None: natural widths)."""
    shown = list(columns)
    natural = {id(c): max([cell_len(c.heading), *(cell_len(v) for v in c.values)]) for c in shown}

    def needed(column: Column) -> int:
        if column.kind == "id":
            return natural[id(column)]
        return min(natural[id(column)], max(MIN_TEXT_WIDTH, cell_len(column.heading)))

    def total(cols: Sequence[Column], size: Callable[[Column], int]) -> int:
        return sum(size(c) for c in cols) + len(GAP) * max(0, len(cols) - 1)

    hidden: list[str] = []
    widths = {id(c): natural[id(c)] for c in shown}
    if width is not None and total(shown, lambda c: natural[id(c)]) > width:
        while len(shown) > 1 and total(shown, needed) > width:
            drop = min(reversed(shown), key=lambda c: c.keep)
            shown.remove(drop)
            hidden.append(drop.heading)
        widths = {id(c): needed(c) for c in shown}
        spare = width - total(shown, needed)
        for column in shown:  # left to right: the leftmost text columns matter most
            if column.kind == "text" and spare > 0:
                grow = min(spare, natural[id(column)] - widths[id(column)])
                widths[id(column)] += grow
                spare -= grow
    truncated = False
    lines: list[str] = []
    rows = len(columns[0].values) if columns else 0
    for index in range(-1, rows):
        cells = []
        for column in shown:
            value = column.heading if index < 0 else column.values[index]
            size = widths[id(column)]
            if cell_len(value) > size and column.kind == "text":
                value = _cut(value, size)
                truncated = True
            cells.append(value + " " * max(0, size - cell_len(value)))
        lines.append(GAP.join(cells).rstrip())
    return Rendered(lines, hidden, truncated)


def _cut(value: str, size: int) -> str:
    out = ""
    for char in value:
        if cell_len(out + char) > size - 1:
            break
        out += char
    return out + ELLIPSIS


def print_columns(
    columns: Sequence[Column],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    full_hint: str = "--json",
) -> None:
    stream = out or sys.stdout
    width = output_width(stream)
    rendered = render_columns(columns, width)
    for line in rendered.lines:
        print(line, file=stream)
    notes = []
    if rendered.hidden:
        notes.append(f"hidden to fit: {', '.join(rendered.hidden)}")
    if rendered.truncated:
        notes.append(f"{ELLIPSIS} marks a value cut short")
    if notes:
        note = f"({'; '.join(notes)}; all of it: {full_hint})"
        print(textwrap.fill(note, width) if width else note, file=err or stream)


def count_line(noun: str, shown: int, matched: int, *, limit: int | None) -> str:
    plural = noun if matched == 1 else noun + "s"
    if shown < matched:
        return f"{matched} {plural}, {shown} shown (--limit {limit})"
    return f"{matched} {plural}"
