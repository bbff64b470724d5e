"""Start and stop a local Azurite: queues and tables (development only, never deployed).

Used by the test suite, the demo and anyone running the pipeline by hand. Azurite comes from
the project's pinned npm packages (``scripts/bootstrap`` installs them).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The all-in-one launcher: queues for the trigger and outputs, tables for the hire ledger
# (and blobs, which nothing uses yet but which cannot be switched off).
AZURITE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"

# The well-known development storage account (public, documented by Microsoft; not a secret).
DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def connection_string(host: str, port: int, table_port: int | None = None) -> str:
    """Connection string for the development account on Azurite's queue (and table) endpoint."""
    text = (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={DEV_ACCOUNT_NAME};AccountKey={DEV_ACCOUNT_KEY};"
        f"QueueEndpoint=http://{host}:{port}/{DEV_ACCOUNT_NAME};"
    )
    if table_port is not None:
        text += f"TableEndpoint=http://{host}:{table_port}/{DEV_ACCOUNT_NAME};"
    return text


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class AzuriteQueue:
    """A running Azurite process: ``port`` serves queues, ``table_port`` tables."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    table_port: int
    _workspace: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        return connection_string(self.host, self.port, self.table_port)

    def stop(self, *, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self._workspace is not None:
            self._workspace.cleanup()
            self._workspace = None

    def __enter__(self) -> AzuriteQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_azurite_queue(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    location: Path | None = None,
    in_memory: bool = True,
    startup_timeout: float = 30.0,
) -> AzuriteQueue:
    """Start Azurite's queue and table services and wait until both accept connections.

    ``port=None`` picks a free port, so parallel runs never collide with each other or with an
    Azurite the user already has on 10001.
    """
    if not AZURITE_BIN.exists():
        raise RuntimeError(
            f"Azurite is not installed at {AZURITE_BIN}; run scripts/bootstrap first"
        )
    chosen_port = port if port is not None else free_port(host)
    table_port = free_port(host) if port is None else port + 1
    blob_port = free_port(host) if port is None else port - 1
    workspace: tempfile.TemporaryDirectory[str] | None = None
    if location is None:
        workspace = tempfile.TemporaryDirectory(prefix="azurite-")
        location = Path(workspace.name)
    location.mkdir(parents=True, exist_ok=True)
    log_path = location / "azurite.log"
    args = [
        str(AZURITE_BIN),
        "--queueHost",
        host,
        "--queuePort",
        str(chosen_port),
        "--tableHost",
        host,
        "--tablePort",
        str(table_port),
        "--blobHost",
        host,
        "--blobPort",
        str(blob_port),
        # The Python SDK speaks a newer storage API version than Azurite accepts.
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--loose",
    ]
    # Azurite refuses --location together with --inMemoryPersistence; the folder still holds
    # the log, and Azurite's own files when data is kept on disk.
    args += ["--inMemoryPersistence"] if in_memory else ["--location", str(location)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ},
            start_new_session=True,
        )
    azurite = AzuriteQueue(host, chosen_port, process, log_path, table_port, workspace)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")[-2000:]
            azurite.stop()
            raise RuntimeError(
                f"Azurite exited during start-up (code {process.returncode}): {output}"
            )
        if all(_listening(host, each) for each in (chosen_port, table_port)):
            return azurite
        time.sleep(0.1)
    azurite.stop()
    raise RuntimeError(f"Azurite did not listen on {host}:{chosen_port} within {startup_timeout}s")


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
        return True
    return False
