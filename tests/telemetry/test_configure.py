"""What ``configure()`` sets up from the environment, each in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TELEMETRY_SETTINGS = ("APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT")

# Imports the app as the worker does, builds the service (no network needed for that) and
# reports what was imported and which telemetry is in place. os._exit skips the exporters'
# final flush, which would only find nothing listening.
PROBE = """
import json, os, sys
import function_app
from shared import composition, telemetry
from shared.hostconfig import QueueHostConfig
from shared.settings import Settings
service = composition.build_provisioner(Settings.from_environment(), QueueHostConfig.load())
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "azure.monitor")))
kind = type(telemetry.configure()).__name__
provider = ""
if loaded:
    from opentelemetry import trace
    provider = type(trace.get_tracer_provider()).__module__
print(json.dumps({"loaded": loaded, "kind": kind, "provider": provider}))
sys.stdout.flush()
os._exit(0)
"""


def probe(**settings: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_SETTINGS}
    env.update(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "REQUEST_QUEUE_NAME": "user-create-requests",
            "RESULT_QUEUE_NAME": "user-create-results",
            "KEY_VAULT_URL": "https://127.0.0.1:9/",
            "PARTNER_TENANT_ID": "00000000-0000-0000-0000-000000000001",
            # Nothing may leave the machine: Azure Monitor's own statistics are off.
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            **settings,
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_a_setting_nothing_of_opentelemetry_is_imported() -> None:
    assert probe() == {"loaded": [], "kind": "Untraced", "provider": ""}


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_setting_counts_as_unset(blank: str) -> None:
    assert probe(OTEL_EXPORTER_OTLP_ENDPOINT=blank)["kind"] == "Untraced"


def test_an_otlp_endpoint_sets_up_the_sdk_exporters() -> None:
    result = probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert result["kind"] == "OpenTelemetry"
    assert result["provider"] == "opentelemetry.sdk.trace"
    loaded = result["loaded"]
    assert isinstance(loaded, list)
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in loaded
    assert not any(m.startswith("azure.monitor") for m in loaded)


def test_an_application_insights_connection_string_sets_up_azure_monitor() -> None:
    result = probe(
        APPLICATIONINSIGHTS_CONNECTION_STRING=(
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            "IngestionEndpoint=http://127.0.0.1:9/"
        )
    )
    assert result["kind"] == "OpenTelemetry"
    assert result["provider"] == "opentelemetry.sdk.trace"
    loaded = result["loaded"]
    assert isinstance(loaded, list)
    assert "azure.monitor.opentelemetry" in loaded
    # The libraries' own instrumentations stay off: only the allow-listed spans go out.
    assert "opentelemetry.instrumentation.requests" not in loaded
