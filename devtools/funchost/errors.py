"""The one exception type the local host raises for configuration and indexing problems."""

from __future__ import annotations


class FunctionHostError(Exception):
    """The app, its settings or host.json cannot be run as the Functions host would run them."""
