"""Each decision is exported once: the app's own OpenTelemetry export is the one path for the
worker's log records, and the Functions host is told not to forward them a second time.

Who exports what (docs/deployment.md, "Telemetry"): the worker (shared/adapters/telemetry.py, the
Azure Monitor distro in Azure, OTLP locally) exports its spans, metrics and log records, the
decision lines among them; the host exports only its own records (start-up, invocations, the
"Moving message to queue" line of its poison copies). host.json turns the host's copy of the
worker's records off (category `Function.<name>.User` at None), so the saved queries and the
alerts count each decision once. The Functions OpenTelemetry mode (`telemetryMode`) stays
off: it is in preview and does not list storage-queue triggers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.telemetry.test_configure import ROOT, TELEMETRY_SETTINGS, _Collector

# The worker's start-up as in Azure (function_app imports and configures telemetry; building
# the service configures it again and sets up logging), then three decisions through the
# code's one decision logger, then the exporters' flush.
THREE_DECISIONS = """
import time
from types import SimpleNamespace
from opentelemetry import _logs, metrics, trace
import function_app
from shared import composition
from shared.adapters import telemetry
from shared.service.decisions import DecisionLog
from shared.hostconfig import QueueHostConfig
from shared.settings import Settings
composition.build_provisioner(Settings.from_environment(), QueueHostConfig.load())
log = DecisionLog(telemetry=telemetry.configure(), monotonic=time.monotonic)
invocation = SimpleNamespace(
    delivery_number=1, request_id=None, state=None, waited_for_other=False, calls=1
)
for number in range(3):
    log._write(
        status="created", failure=None, event_id=f"hr-{number}", correlation_id=None,
        customer="c", started=None, invocation=invocation, message_id=f"m-{number}",
    )
trace.get_tracer_provider().shutdown()
metrics.get_meter_provider().shutdown()
_logs.get_logger_provider().shutdown()
"""


def test_each_decision_reaches_the_collector_exactly_once() -> None:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_SETTINGS}
        env.update(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                "REQUEST_QUEUE_NAME": "user-create-requests",
                "RESULT_QUEUE_NAME": "user-create-results",
                "KEY_VAULT_URL": "https://127.0.0.1:9/",
                "PARTNER_TENANT_ID": "00000000-0000-0000-0000-000000000001",
            }
        )
        done = subprocess.run(
            [sys.executable, "-c", THREE_DECISIONS],
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
    records = [
        record
        for path, body in _Collector.received
        if path == "/v1/logs"
        for resource in ExportLogsServiceRequest.FromString(body).resource_logs
        for scope in resource.scope_logs
        for record in scope.log_records
    ]
    decisions = [
        r.body.string_value for r in records if r.body.string_value.startswith("decision {")
    ]
    event_ids = sorted(json.loads(line[len("decision ") :])["eventId"] for line in decisions)
    assert event_ids == ["hr-0", "hr-1", "hr-2"]


def test_the_host_does_not_forward_the_workers_records_a_second_time() -> None:
    # The functions' names, from the decorated definitions in function_app.py (reading the
    # source: app.get_functions() refuses a second call once another test has indexed the app).
    source = (ROOT / "function_app.py").read_text(encoding="utf-8")
    names = re.findall(r"^(?:@app\.\w+\([^)]*\)\s*\n)+def (\w+)\(", source, re.MULTILINE)
    assert "@app.function_name" not in source  # the name is the Python function's
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    levels = host["logging"]["logLevel"]
    assert "provision_user" in names
    for name in names:
        assert levels.get(f"Function.{name}.User") == "None", name
    # The host's own per-function records (invocations) stay on.
    assert levels["Function"] == "Information"
    # One exporter per record: not the host's OpenTelemetry mode on top of the app's own.
    assert host.get("telemetryMode") in (None, "ApplicationInsights")


def test_the_alerts_count_decision_lines_as_the_app_exports_them() -> None:
    from tests.infra import bicep

    monitoring = bicep.text("modules/monitoring.bicep")
    assert 'traces | where message startswith "decision {"' in monitoring
    # The host samples nothing away (its own records); the app's exporter keeps every record.
    app = bicep.text("modules/function-app.bicep")
    assert "samplingSettings__isEnabled: 'false'" in app
    assert "OTEL_TRACES_SAMPLER: 'microsoft.fixed_percentage'" in app
    assert "OTEL_TRACES_SAMPLER_ARG: '1.0'" in app


def test_the_pinned_distro_keeps_every_span_and_every_log_record_with_those_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the pinned azure-monitor-opentelemetry does with the template's settings: a fixed
    # 100 % sampler (its default would be 5 traces a second) and no log sampling by trace.
    from azure.monitor.opentelemetry._utils.configurations import _get_configurations

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "microsoft.fixed_percentage")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1.0")
    before = dict(os.environ)
    try:
        configurations = _get_configurations()
    finally:  # it sets defaults in os.environ (resource detectors); leave none behind
        for name in set(os.environ) - set(before):
            monkeypatch.delenv(name)
    assert configurations["sampling_ratio"] == 1.0
    assert configurations["enable_trace_based_sampling_for_logs"] is False
