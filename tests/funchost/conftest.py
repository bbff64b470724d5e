"""Fixtures for the local host's conformance tests: one Azurite for the session, hosts that
are always stopped, and helpers to put messages on queues and read them back."""

from __future__ import annotations

import base64
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, QueueServiceClient

from devtools.azurite import AzuriteQueue, start_azurite_queue
from devtools.funchost import LocalFunctionsHost

APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="session")
def funchost_azurite() -> Iterator[AzuriteQueue]:
    with start_azurite_queue() as running:
        yield running


@pytest.fixture
def queue_service(funchost_azurite: AzuriteQueue) -> QueueServiceClient:
    return QueueServiceClient.from_connection_string(funchost_azurite.connection_string)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    # The host puts app settings into os.environ, as the worker does; keep tests independent.
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def unique_queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Queues:
    """Reads and writes the test's queues the way a publisher and a consumer would."""

    def __init__(self, service: QueueServiceClient) -> None:
        self.service = service
        self._created: set[str] = set()

    def client(self, name: str) -> QueueClient:
        return self.service.get_queue_client(name)

    def send_raw(self, name: str, text: str) -> str:
        queue = self.client(name)
        if name not in self._created:
            with contextlib.suppress(ResourceExistsError):
                queue.create_queue()
            self._created.add(name)
        return queue.send_message(text).id

    def send(self, name: str, body: str | bytes) -> str:
        """Send as a base64 publisher does (what the host expects by default)."""
        data = body.encode() if isinstance(body, str) else body
        return self.send_raw(name, base64.b64encode(data).decode("ascii"))

    def peek_raw(self, name: str) -> list[str]:
        return [m.content for m in self.client(name).peek_messages(max_messages=32)]

    def peek(self, name: str) -> list[bytes]:
        return [base64.b64decode(text) for text in self.peek_raw(name)]

    def count(self, name: str) -> int:
        return self.client(name).get_queue_properties().approximate_message_count or 0


@pytest.fixture
def queues(queue_service: QueueServiceClient) -> Queues:
    return Queues(queue_service)


HostFactory = Callable[..., LocalFunctionsHost]


@pytest.fixture
def make_host(funchost_azurite: AzuriteQueue) -> Iterator[HostFactory]:
    """Build a host for one of the apps under apps/, connected to the session's Azurite;
    every host built is stopped at the end of the test."""
    hosts: list[LocalFunctionsHost] = []

    def factory(
        app: str | Path,
        *,
        settings: Mapping[str, str] | None = None,
        host_options: Mapping[str, object] | None = None,
        **kwargs: object,
    ) -> LocalFunctionsHost:
        app_dir = app if isinstance(app, Path) else APPS / app
        merged = {
            "AzureWebJobsStorage": funchost_azurite.connection_string,
            **(settings or {}),
        }
        host = LocalFunctionsHost(
            app_dir,
            settings=merged,
            host_options=host_options,
            **kwargs,  # type: ignore[arg-type]
        )
        hosts.append(host)
        return host

    yield factory
    for host in hosts:
        host.stop(timeout=10)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
