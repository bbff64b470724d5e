"""Log levels: one decision line per event at INFO; the SDKs only when something is wrong.

azure-core's HTTP logging policy writes a request and a response line at INFO for every call
(about six per event), and azure-identity one per token; in Application Insights that is cost
and noise. ``SDK_LOG_LEVEL`` (an app setting, e.g. ``INFO`` or ``DEBUG``) turns them back on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

SDK_LOG_LEVEL_SETTING = "SDK_LOG_LEVEL"
SDK_LOGGERS = ("azure", "msal", "urllib3", "requests")
APP_LOGGER = "hire_provisioning"


def configure_logging(environ: Mapping[str, str] | None = None) -> None:
    """Called once by the composition root; safe to call again."""
    env = os.environ if environ is None else environ
    asked = env.get(SDK_LOG_LEVEL_SETTING, "").strip().upper()
    level = logging.getLevelNamesMapping().get(asked, logging.WARNING)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(level)
    logging.getLogger(APP_LOGGER).setLevel(logging.INFO)
