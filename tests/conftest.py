"""Fixtures shared by the whole suite: a real Azurite and the HTTPS stand-ins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.azurite import AzuriteQueue, start_azurite_queue
from devtools.standins.fixtures import standin_stack, standins

__all__ = ["azurite", "standin_stack", "standins"]


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteQueue]:
    with start_azurite_queue() as running:
        yield running
