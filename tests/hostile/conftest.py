"""The function harness of tests/function, for the hostile-input tests."""

from tests.function.conftest import harness

__all__ = ["harness"]
