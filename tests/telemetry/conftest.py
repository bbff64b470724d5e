"""The function as the host delivers it, with OpenTelemetry exporting to memory."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import composition
from shared.adapters.partner_center import Timeouts
from shared.adapters.telemetry import OpenTelemetry
from shared.hostconfig import QueueHostConfig
from shared.settings import Settings
from tests.function.conftest import (  # noqa: F401 (harness: the fixture, re-exported)
    FAST_RETRY,
    PARTNER_CENTER_VARIANTS,
    FunctionHarness,
    harness,
)

# The telemetry tests run under one Partner Center variant: the variants are the function
# tier's business, and the tracing does not depend on them.
ONE_VARIANT = pytest.mark.parametrize(
    "harness", [next(iter(PARTNER_CENTER_VARIANTS))], indirect=True
)


@dataclass
class Exported:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: InMemoryLogRecordExporter

    def finished_spans(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def log_records(self) -> list[ReadableLogRecord]:
        return list(self.logs.get_finished_logs())

    def metric_points(self) -> dict[str, list[tuple[dict[str, object], float]]]:
        """Metric name -> (attributes, value or histogram count) per data point."""
        found: dict[str, list[tuple[dict[str, object], float]]] = {}
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:  # a histogram: how many were recorded
                            value = getattr(point, "count", 0)
                        found.setdefault(metric.name, []).append(
                            (dict(point.attributes or {}), float(value or 0))
                        )
        return found


@pytest.fixture
def exported(harness: FunctionHarness) -> Iterator[Exported]:  # noqa: F811
    """Rewires the harness's service with tracing proxies and in-memory exporters."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider)
    root = logging.getLogger()
    decision_logger = logging.getLogger("hire_provisioning")
    level = decision_logger.level
    decision_logger.setLevel(logging.DEBUG)
    root.addHandler(handler)
    composition.install(
        composition.build_provisioner(
            Settings.from_environment(),
            QueueHostConfig.load(),
            retry=replace(FAST_RETRY, claim_wait=0.3, poll_interval=0.05),
            partner_center_timeouts=Timeouts(connect=2.0, read=1.0),
            telemetry=OpenTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider),
        )
    )
    try:
        yield Exported(spans, metrics, logs)
    finally:
        root.removeHandler(handler)
        decision_logger.setLevel(level)
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()
