"""OpenTelemetry: traces, metrics and logs of the function, exported only when configured.

``configure()`` decides from the environment. With ``APPLICATIONINSIGHTS_CONNECTION_STRING``
the Azure Monitor distro exports to Application Insights; with ``OTEL_EXPORTER_OTLP_ENDPOINT``
the OTLP/HTTP exporters do. With neither, no ``opentelemetry`` or ``azure.monitor`` module is
imported (cold start pays nothing): every OpenTelemetry import in this module is inside a
function for that reason.

What is exported is an allow-list: span and metric attributes come only from ``_ATTRIBUTES``
and the call names, never from arguments, answers or exception texts, so no password, token,
secret or UPN can reach a span. Exceptions are not recorded on spans (their texts are the
adapters' business), only their type.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from shared.domain.errors import ProvisioningError
from shared.domain.events import InvalidEvent, decode_body
from shared.domain.ports import InvocationTrace

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk._logs import LogRecordProcessor
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Span, TracerProvider

APPLICATION_INSIGHTS = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
SERVICE_NAME = "hire-provisioning"
INSTRUMENTATION_SCOPE = "hire_provisioning"
INVOCATION_SPAN = "provision_user"

# The decision line's fields that may become span attributes (docs/contract.md: no UPN, no secret).
_ATTRIBUTES = {
    "eventId": "hire.event_id",
    "customer": "hire.customer_tenant_id",
    "status": "hire.status",
    "category": "hire.category",
    "delivery": "hire.delivery",
    "ledgerState": "hire.ledger_state",
}
CALL = "hire.call"
HTTP_STATUS = "http.response.status_code"
ERROR_CODE = "hire.error_code"
ERROR_TYPE = "error.type"
LEDGER_STATE = "hire.ledger_state"
SUCCESS_STATUSES = frozenset({"created", "restored", "already_exists"})
# The SDKs log requests and answers at INFO/DEBUG; only the decision line is exported at INFO.
_QUIET_LOGGERS = ("azure", "msal", "urllib3", "requests", "opentelemetry")

# W3C Trace Context, version 00 only; all-zero ids are invalid.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")

T = TypeVar("T")


def event_traceparent(body: bytes) -> str | None:
    """The event's ``traceparent`` when it is well formed; a malformed one is ignored here
    (tracing starts a new trace; whether the event is valid is for ``shared.domain.events``)."""
    if b"traceparent" not in body:  # most events: skip the second parse
        return None
    try:
        value = decode_body(body).get("traceparent")
    except InvalidEvent:
        return None
    if isinstance(value, str) and _TRACEPARENT.fullmatch(value):
        return value
    return None


@dataclass(frozen=True)
class _Trace:
    traceparent: str | None


class Untraced:
    """Telemetry not configured: nothing is exported, and the outcome still names the HR
    system's trace when the event carried one."""

    @contextmanager
    def invocation(self, body: bytes, delivery_number: int) -> Iterator[InvocationTrace]:
        yield _Trace(event_traceparent(body))

    def decided(self, fields: Mapping[str, object]) -> None:
        pass

    def retried(self, category: str) -> None:
        pass

    def claim_lost(self) -> None:
        pass

    def upn_lookup_fell_back(self, customer_tenant_id: str) -> None:
        """A customer's UPN look-ups go to Partner Center's user list (no Graph consent)."""

    def traced(self, target: T, service: str, methods: Sequence[str]) -> T:
        """``target`` with a child span per call of ``methods`` (here: ``target`` itself)."""
        return target

    def traced_call(self, function: T, service: str, name: str) -> T:
        """A callable with a child span per call (here: ``function`` itself)."""
        return function


class OpenTelemetry(Untraced):
    """The ``Telemetry`` port and the adapters' tracing proxies, over OpenTelemetry.

    Providers default to the process's global ones (set by ``configure``); tests pass their
    own with in-memory exporters.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        from opentelemetry import metrics, trace

        self._trace = trace
        self._tracer = trace.get_tracer(INSTRUMENTATION_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION_SCOPE, meter_provider=meter_provider)
        self._outcomes = meter.create_counter(
            "hire.outcomes", unit="{outcome}", description="final outcomes by status and category"
        )
        self._redeliveries = meter.create_counter(
            "hire.redeliveries",
            unit="{delivery}",
            description="deliveries handed back to the host for a later try, by category",
        )
        self._retries = meter.create_counter(
            "hire.retries", unit="{retry}", description="retries within an invocation, by category"
        )
        self._claims_lost = meter.create_counter(
            "hire.claims_lost",
            unit="{claim}",
            description="deliveries that found another delivery at work on their hire",
        )
        self._upn_fallbacks = meter.create_counter(
            "upn_lookup.fallbacks",
            unit="{customer}",
            description="customers whose UPN look-ups fell back to Partner Center's user list "
            "(Microsoft Graph not consented), once per customer and process",
        )
        self._pc_duration = meter.create_histogram(
            "partner_center.duration", unit="ms", description="Partner Center call latency"
        )
        self._pc_throttled = meter.create_counter(
            "partner_center.throttled", unit="{response}", description="Partner Center 429s"
        )

    # ------------------------------------------------------------------ the Telemetry port

    @contextmanager
    def invocation(self, body: bytes, delivery_number: int) -> Iterator[InvocationTrace]:
        from opentelemetry.trace import SpanKind

        traceparent = event_traceparent(body)
        with self._tracer.start_as_current_span(
            INVOCATION_SPAN,
            context=_parent(traceparent),
            kind=SpanKind.CONSUMER,
            attributes={"hire.delivery": delivery_number},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield _Trace(_format(span) if traceparent else None)
            except BaseException as error:
                _failed(span, type(error).__name__)
                raise

    def decided(self, fields: Mapping[str, object]) -> None:
        from opentelemetry.trace import StatusCode

        span = self._trace.get_current_span()
        for name, attribute in _ATTRIBUTES.items():
            value = fields.get(name)
            if isinstance(value, str | int | bool):
                span.set_attribute(attribute, value)
        status = str(fields.get("status"))
        category = fields.get("category")
        labels = {"status": status, "category": str(category) if category else "none"}
        if status == "retrying":
            self._redeliveries.add(1, {"category": labels["category"]})
        else:
            self._outcomes.add(1, labels)
        if status not in SUCCESS_STATUSES:
            span.set_status(StatusCode.ERROR, f"{status}: {labels['category']}")

    def retried(self, category: str) -> None:
        self._retries.add(1, {"category": category})
        self._trace.get_current_span().add_event("retry", {"hire.category": category})

    def claim_lost(self) -> None:
        self._claims_lost.add(1)
        self._trace.get_current_span().add_event("claim held by another delivery")

    def upn_lookup_fell_back(self, customer_tenant_id: str) -> None:
        self._upn_fallbacks.add(1, {"hire.customer_tenant_id": customer_tenant_id})

    # ------------------------------------------------------------------ child spans

    def traced(self, target: T, service: str, methods: Sequence[str]) -> T:
        proxy = _Proxy(target)
        for name in methods:
            setattr(proxy, name, self._wrap(getattr(target, name), service, name))
        return cast(T, proxy)

    def traced_call(self, function: T, service: str, name: str) -> T:
        return cast(T, self._wrap(cast(Callable[..., Any], function), service, name))

    def _wrap(self, method: Callable[..., Any], service: str, name: str) -> Callable[..., Any]:
        from opentelemetry.trace import SpanKind

        call = f"{service}.{name}"
        partner_center = service == "partner_center"

        def traced_method(*args: Any, **kwargs: Any) -> Any:
            with self._tracer.start_as_current_span(
                f"{service} {name}",
                kind=SpanKind.CLIENT,
                attributes={CALL: call},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                started = time.perf_counter()
                labels: dict[str, str | int] = {CALL: call}
                try:
                    result = method(*args, **kwargs)
                except ProvisioningError as error:
                    failure = error.failure
                    labels["hire.category"] = failure.category.value
                    if failure.http_status is not None:
                        span.set_attribute(HTTP_STATUS, failure.http_status)
                        labels[HTTP_STATUS] = failure.http_status
                    if failure.code is not None:
                        span.set_attribute(ERROR_CODE, str(failure.code))
                    span.set_attribute("hire.category", failure.category.value)
                    _failed(span, type(error).__name__)
                    if partner_center and failure.http_status == 429:
                        self._pc_throttled.add(1, {CALL: call})
                    raise
                except BaseException as error:
                    _failed(span, type(error).__name__)
                    raise
                else:
                    state = _ledger_state(result) or _ledger_state(args[0] if args else None)
                    if state:
                        span.set_attribute(LEDGER_STATE, state)
                    return result
                finally:
                    if partner_center:
                        elapsed = (time.perf_counter() - started) * 1000
                        self._pc_duration.record(elapsed, labels)

        return traced_method


class _Proxy:
    """Forwards everything not wrapped (properties such as ``vault_url``) to the target."""

    def __init__(self, target: object) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _ledger_state(value: object) -> str | None:
    state = getattr(value, "state", None)
    text = getattr(state, "value", None)
    return text if isinstance(text, str) else None


def _parent(traceparent: str | None) -> Context | None:
    if traceparent is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def _format(span: Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _failed(span: Span, error_type: str) -> None:
    from opentelemetry.trace import StatusCode

    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(StatusCode.ERROR, error_type)


# ---------------------------------------------------------------------- configuration

_lock = threading.Lock()
_installed: OpenTelemetry | None = None


def configure(environ: Mapping[str, str] | None = None) -> Untraced:
    """The process's telemetry, set up once: exporting when a setting asks for it."""
    global _installed
    env = os.environ if environ is None else environ
    azure_monitor = _setting(env, APPLICATION_INSIGHTS)
    if _installed is None and not azure_monitor and not _setting(env, OTLP_ENDPOINT):
        return Untraced()
    with _lock:
        if _installed is None:
            if azure_monitor:
                _configure_azure_monitor()
                _installed = OpenTelemetry()
            else:
                _installed = _install_otlp(env)
    return _installed


def _setting(env: Mapping[str, str], name: str) -> bool:
    return bool(env.get(name, "").strip())


def install(
    *,
    span_processors: Sequence[SpanProcessor],
    metric_readers: Sequence[MetricReader] = (),
    log_processors: Sequence[LogRecordProcessor] = (),
    environ: Mapping[str, str] | None = None,
) -> OpenTelemetry:
    """Set the process's providers with these exporters (the demo's, for one)."""
    global _installed
    with _lock:
        if _installed is None:
            _installed = _install_providers(
                span_processors,
                metric_readers,
                log_processors,
                os.environ if environ is None else environ,
            )
    return _installed


def _install_otlp(env: Mapping[str, str]) -> OpenTelemetry:
    # The exporters read OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout) themselves.
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return _install_providers(
        [BatchSpanProcessor(OTLPSpanExporter())],
        [PeriodicExportingMetricReader(OTLPMetricExporter())],
        [BatchLogRecordProcessor(OTLPLogExporter())],
        env,
    )


def _install_providers(
    span_processors: Sequence[SpanProcessor],
    metric_readers: Sequence[MetricReader],
    log_processors: Sequence[LogRecordProcessor],
    env: Mapping[str, str],
) -> OpenTelemetry:
    from opentelemetry import metrics, trace
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    tracer_provider = TracerProvider(resource=resource)
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=metric_readers))
    if log_processors:
        logger_provider = LoggerProvider(resource=resource)
        for log_processor in log_processors:
            logger_provider.add_log_record_processor(log_processor)
        set_logger_provider(logger_provider)
        logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
    _quiet_sdk_loggers()
    return OpenTelemetry()


def _configure_azure_monitor() -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    # Only this module's spans: the libraries' own instrumentations would export URLs and
    # queries (a UPN filter among them) that the allow-list cannot vet. The distro reads the
    # connection string and the Azure resource (cloud role name) itself.
    configure_azure_monitor(
        instrumentation_options={
            library: {"enabled": False}
            for library in (
                "azure_sdk",
                "django",
                "fastapi",
                "flask",
                "httpx",
                "psycopg2",
                "requests",
                "urllib",
                "urllib3",
            )
        }
    )
    _quiet_sdk_loggers()


def _quiet_sdk_loggers() -> None:
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
    # The decision line is INFO: exported even where the root logger is at WARNING.
    decision_logger = logging.getLogger("hire_provisioning")
    if decision_logger.level == logging.NOTSET:
        decision_logger.setLevel(logging.INFO)
