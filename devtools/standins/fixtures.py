"""pytest fixtures for the stand-ins. Use from a conftest.py:

    pytest_plugins = ["devtools.standins.fixtures"]

or import the two fixtures by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .stack import StandInStack

CA_BUNDLE_VARIABLE = "REQUESTS_CA_BUNDLE"


@pytest.fixture(scope="session")
def standin_stack() -> Iterator[StandInStack]:
    """The stand-ins, started once per session. ``REQUESTS_CA_BUNDLE`` points at their CA for
    the session: requests lets that variable override any ``Session.verify``, so this is the
    one setting that makes every client trust them (even where CI sets it globally).

    The CA alone, not the bundle with the public roots: tests talk to loopback only, and
    parsing the public roots costs ~15 ms per new connection."""
    with StandInStack.start() as stack:
        previous = os.environ.get(CA_BUNDLE_VARIABLE)
        os.environ[CA_BUNDLE_VARIABLE] = str(stack.ca_file)
        try:
            yield stack
        finally:
            if previous is None:
                os.environ.pop(CA_BUNDLE_VARIABLE, None)
            else:
                os.environ[CA_BUNDLE_VARIABLE] = previous


@pytest.fixture
def standins(standin_stack: StandInStack) -> Iterator[StandInStack]:
    """The session's stand-ins, reset to an empty state for this test."""
    standin_stack.reset()
    yield standin_stack
