"""Traces and metrics: OpenTelemetry, built once at start-up and passed down.

Spans go to an OTLP exporter when the standard ``OTEL_*`` environment asks
for one (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
or ``OTEL_TRACES_EXPORTER=otlp``); otherwise they are made (so logs can carry
trace ids) and dropped. Metrics go to a Prometheus registry served at
``/metrics`` on their own port. Nothing here is global: tests build a
:class:`Telemetry` with in-memory exporters, and several servers in one
process each have their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.propagators.textmap import DefaultGetter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .engine.errors import InvalidOptionError, StartupError

SCOPE = "syrinx.server"
request_log = logging.getLogger("syrinx.requests")  # one summary line per finished RPC
# Histogram buckets in seconds for latencies a voice bot cares about (first audio: tens of ms).
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 120.0, 300.0)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class TelemetryConfig:
    metrics_port: int | None = 9464  # Prometheus /metrics; 0 picks a free port, None serves none
    service_name: str = "syrinx"
    log_text: bool = False  # put the request text in the summary log line (operators opt in)

    def __post_init__(self) -> None:
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise InvalidOptionError(f"metrics port must be 0-65535, got {self.metrics_port}")


class Metrics:
    """The instruments; see docs/observability.md for each one's meaning."""

    def __init__(self, meter: Meter) -> None:
        self.first_audio = meter.create_histogram(
            "syrinx.request.first_audio",
            unit="s",
            description="time from a stream's request to its first audio sent",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "syrinx.request.duration",
            unit="s",
            description="time from request to the last response",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.audio = meter.create_counter(
            "syrinx.audio.produced", unit="s", description="seconds of audio sent to clients"
        )
        self.real_time_factor = meter.create_histogram(
            "syrinx.request.real_time_factor",
            unit="1",
            description="request duration divided by its audio's duration",
            explicit_bucket_boundaries_advisory=RTF_BUCKETS,
        )
        self.requests = meter.create_counter(
            "syrinx.requests", unit="{request}", description="finished RPCs, by method and gRPC status code"
        )
        self.engine_step = meter.create_histogram(
            "syrinx.engine.step.duration",
            unit="s",
            description="time of one scheduler step on the engine",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.batch_size = meter.create_histogram(
            "syrinx.engine.batch.size",
            unit="{item}",
            description="sentences encoded plus windows decoded per step",
            explicit_bucket_boundaries_advisory=BATCH_BUCKETS,
        )
        self.startup = meter.create_histogram(
            "syrinx.voices.load.duration",
            unit="s",
            description="loading and warming up every voice, at start-up",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._meter = meter

    def observe_streams(self, active: Callable[[], int], waiting: Callable[[], int]) -> None:
        """Gauges read at collection time: streams being synthesized, and those still without audio."""

        def gauge(read: Callable[[], int]) -> Callable[[CallbackOptions], Iterable[Observation]]:
            return lambda options: [Observation(read())]

        self._meter.create_observable_gauge(
            "syrinx.streams.active", [gauge(active)], unit="{stream}", description="streams admitted and not finished"
        )
        self._meter.create_observable_gauge(
            "syrinx.streams.waiting",
            [gauge(waiting)],
            unit="{stream}",
            description="admitted streams without first audio yet",
        )


@dataclass
class RpcCall:
    """One RPC's span and figures, filled in by the handler, closed by the transport."""

    span: trace.Span
    metrics: Metrics
    method: str
    log_text: bool = False
    started: float = field(default_factory=time.perf_counter)
    audio_seconds: float = 0.0
    first_audio_seconds: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    text: str | None = None

    def describe(self, attributes: Mapping[str, Any], text: str | None = None) -> None:
        """Span attributes (and log fields); ``text`` goes to the log only if the operator opted in."""
        self.span.set_attributes(dict(attributes))
        self.attributes.update(attributes)
        if text is not None and self.log_text:
            self.text = text

    def audio_sent(self, seconds: float) -> None:
        if self.first_audio_seconds is None:
            self.first_audio_seconds = time.perf_counter() - self.started
            self.span.add_event("first_audio", {"syrinx.first_audio_ms": self.first_audio_seconds * 1e3})
            self.metrics.first_audio.record(self.first_audio_seconds, {"rpc.method": self.method})
        self.audio_seconds += seconds

    def engine_started(self, queue_wait_seconds: float) -> None:
        self.span.add_event("engine_started", {"syrinx.queue_wait_ms": queue_wait_seconds * 1e3})

    def sentence_encoded(self, index: int, phoneme_ids: int, audio_seconds: float) -> None:
        self.span.add_event(
            "sentence_encoded",
            {
                "syrinx.sentence": index,
                "syrinx.phoneme_ids": phoneme_ids,
                "syrinx.sentence_audio_seconds": audio_seconds,
            },
        )

    def finish(self, status_code: int, status_name: str, message: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        self.span.set_attribute("rpc.grpc.status_code", status_code)
        if status_code != 0:
            self.span.set_status(Status(StatusCode.ERROR, f"{status_name}: {message}" if message else status_name))
        self.metrics.requests.add(1, {"rpc.method": self.method, "rpc.grpc.status_code": status_code})
        if self.audio_seconds > 0:
            self.span.set_attribute("syrinx.audio_seconds", self.audio_seconds)
            self.metrics.audio.add(self.audio_seconds)
            self.metrics.duration.record(elapsed)
            self.metrics.real_time_factor.record(elapsed / self.audio_seconds)
        self._log(status_name, elapsed)

    def _log(self, status_name: str, elapsed: float) -> None:
        fields = {
            "method": self.method,
            "request_id": self.attributes.get("syrinx.request_id", ""),
            "trace_id": format(self.span.get_span_context().trace_id, "032x"),
            "voice": self.attributes.get("syrinx.voice", ""),
            "characters": self.attributes.get("syrinx.text.length", 0),
            "encoding": self.attributes.get("syrinx.audio.encoding", ""),
            "audio_seconds": round(self.audio_seconds, 3),
            "first_audio_ms": None if self.first_audio_seconds is None else round(self.first_audio_seconds * 1e3, 1),
            "duration_ms": round(elapsed * 1e3, 1),
            "status": status_name,
        }
        if self.text is not None:
            fields["text"] = self.text
        request_log.info("%s %s %s", self.method, status_name, fields["request_id"], extra={"fields": fields})


class Telemetry:
    def __init__(
        self, tracer_provider: trace.TracerProvider, meter_provider: metrics_api.MeterProvider, log_text: bool = False
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._tracer = tracer_provider.get_tracer(SCOPE)
        self.metrics = Metrics(meter_provider.get_meter(SCOPE))
        self._propagator = TraceContextTextMapPropagator()
        self._log_text = log_text

    @classmethod
    def disabled(cls) -> Telemetry:
        """The API's no-op providers: nothing is recorded (``OTEL_SDK_DISABLED=true``)."""
        from opentelemetry.metrics import NoOpMeterProvider

        return cls(trace.NoOpTracerProvider(), NoOpMeterProvider())

    @classmethod
    def create(
        cls,
        config: TelemetryConfig,
        environ: Mapping[str, str],
        span_processors: Iterable[SpanProcessor] = (),
        metric_readers: Iterable[MetricReader] = (),
    ) -> Telemetry:
        """Providers for this server; an OTLP span exporter if ``environ`` configures one."""
        resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", config.service_name)})
        tracer_provider = TracerProvider(resource=resource)
        for processor in span_processors:
            tracer_provider.add_span_processor(processor)
        if _otlp_traces_wanted(environ):
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads OTEL_EXPORTER_OTLP_*
        meter_provider = MeterProvider(resource=resource, metric_readers=list(metric_readers))
        return cls(tracer_provider, meter_provider, config.log_text)

    def start_rpc(self, method: str, metadata: Iterable[tuple[str, Any]]) -> RpcCall:
        """A server span for ``method``, child of the caller's ``traceparent`` if the metadata has one."""
        carrier = {key: value for key, value in metadata if isinstance(value, str)}
        parent = self._propagator.extract(carrier, getter=DefaultGetter())
        span = self._tracer.start_span(
            f"syrinx.v1.Synthesizer/{method}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": "syrinx.v1.Synthesizer", "rpc.method": method},
        )
        return RpcCall(span, self.metrics, method, self._log_text)

    def engine_step(self, items: int, seconds: float) -> None:
        self.metrics.batch_size.record(items)
        self.metrics.engine_step.record(seconds)

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            if hasattr(provider, "shutdown"):  # the no-op providers have nothing to flush
                provider.shutdown()


def _otlp_traces_wanted(environ: Mapping[str, str]) -> bool:
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return "otlp" in exporter.split(",")
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


@dataclass
class MetricsEndpoint:
    """The Prometheus scrape endpoint (``/metrics``; any path answers) on its own port."""

    port: int
    _server: Any
    _thread: Any

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serving_telemetry(
    config: TelemetryConfig, host: str, environ: Mapping[str, str]
) -> tuple[Telemetry, MetricsEndpoint | None]:
    """The server's telemetry, with its metrics served for Prometheus unless ``metrics_port`` is None.

    ``OTEL_SDK_DISABLED=true`` (the standard switch) turns traces and metrics off altogether.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Telemetry.disabled(), None
    if config.metrics_port is None:
        return Telemetry.create(config, environ), None
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    telemetry = Telemetry.create(config, environ, metric_readers=[PrometheusMetricReader(registry=registry)])
    try:
        server, thread = start_http_server(config.metrics_port, addr=host.strip("[]") or "::", registry=registry)
    except OSError as error:
        telemetry.shutdown()
        raise StartupError(
            f"cannot serve metrics on port {config.metrics_port} ({error.strerror or error}); "
            "choose another with --metrics-port / SYRINX_METRICS_PORT, or -1 for none"
        ) from None
    return telemetry, MetricsEndpoint(server.server_port, server, thread)
