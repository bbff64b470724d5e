"""Fixtures shared by the whole suite: a real Azurite and the HTTPS stand-ins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.azurite import AzuriteQueue, start_azurite_queue
from devtools.standins.fixtures import standin_stack, standins

__all__ = ["azurite", "standin_stack", "standins", "upn_lookup_settings"]


def upn_lookup_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    """``UPN_LOOKUP`` for a test marked ``@pytest.mark.upn_lookup("partner-center")``: the tests
    of the paged user-list scan (the fallback where a customer has not consented Graph) pin it;
    the rest run in the default ``auto`` against the stand-in Graph."""
    marker = request.node.get_closest_marker("upn_lookup")
    return {"UPN_LOOKUP": str(marker.args[0])} if marker else {}


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteQueue]:
    with start_azurite_queue() as running:
        yield running
