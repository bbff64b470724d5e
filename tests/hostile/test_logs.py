"""One decision line per event at INFO; the SDKs stay quiet unless asked."""

from __future__ import annotations

import logging

import pytest

from shared.logs import SDK_LOGGERS, configure_logging
from tests.function.conftest import FunctionHarness, hire_event


def test_a_created_event_logs_one_info_line_the_decision(
    harness: FunctionHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness.invoke(hire_event(1))  # warms the caches: credentials, token
    caplog.clear()

    outcome = harness.invoke(hire_event(2))

    assert outcome["status"] == "created"
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.name for r in info] == ["hire_provisioning"], [r.getMessage() for r in info]
    assert info[0].getMessage().startswith("decision ")


def test_sdk_log_level_setting_turns_the_sdks_back_on() -> None:
    try:
        configure_logging({"SDK_LOG_LEVEL": "info"})
        assert all(logging.getLogger(name).level == logging.INFO for name in SDK_LOGGERS)
        configure_logging({"SDK_LOG_LEVEL": "nonsense"})
        assert all(logging.getLogger(name).level == logging.WARNING for name in SDK_LOGGERS)
    finally:
        configure_logging({})
