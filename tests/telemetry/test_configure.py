"""What ``configure()`` sets up from the environment, each in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = Path(__file__).resolve().parents[2]
TELEMETRY_SETTINGS = ("APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT")

# Imports the app as the worker does, builds the service (no network needed for that) and
# reports what was imported and which telemetry is in place. os._exit skips the exporters'
# final flush, which would only find nothing listening.
PROBE = """
import json, os, sys
import function_app
from shared import composition
from shared.adapters import telemetry
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


EXPORTING = """
import logging
from opentelemetry import _logs, metrics, trace
from shared.adapters import telemetry
configured = telemetry.configure()
body = b'{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}'
with configured.invocation(body, 1) as invocation:
    configured.decided({"eventId": "hr-1", "status": "created", "category": None})
    logging.getLogger("hire_provisioning").info("decision %s", '{"eventId": "hr-1"}')
print(invocation.traceparent)
trace.get_tracer_provider().shutdown()
metrics.get_meter_provider().shutdown()
_logs.get_logger_provider().shutdown()
"""


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_otlp_exports_the_invocation_span_metrics_and_the_decision_log_record() -> None:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_SETTINGS}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
        done = subprocess.run(
            [sys.executable, "-c", EXPORTING],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    traceparent = done.stdout.strip().splitlines()[-1]
    assert traceparent.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    bodies = {path: body for path, body in _Collector.received}
    assert set(bodies) == {"/v1/traces", "/v1/metrics", "/v1/logs"}

    traces = ExportTraceServiceRequest.FromString(bodies["/v1/traces"])
    (span,) = [s for r in traces.resource_spans for sc in r.scope_spans for s in sc.spans]
    assert span.name == "provision_user"
    assert span.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent_span_id.hex() == "00f067aa0ba902b7"
    assert traceparent.split("-")[2] == span.span_id.hex()
    resource = {a.key: a.value.string_value for a in traces.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "hire-provisioning"

    exported_metrics = ExportMetricsServiceRequest.FromString(bodies["/v1/metrics"])
    names = {
        m.name
        for r in exported_metrics.resource_metrics
        for sc in r.scope_metrics
        for m in sc.metrics
    }
    assert "hire.outcomes" in names

    logs = ExportLogsServiceRequest.FromString(bodies["/v1/logs"])
    records = [rec for r in logs.resource_logs for sc in r.scope_logs for rec in sc.log_records]
    decision = [rec for rec in records if rec.body.string_value.startswith("decision")]
    assert len(decision) == 1 and decision[0].trace_id.hex() == span.trace_id.hex()
