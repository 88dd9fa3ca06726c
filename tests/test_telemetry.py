"""Traces and metrics of a real server, read with OpenTelemetry's in-memory exporters and Prometheus's parser."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request

import grpc
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from service_fixtures import ServerThread

from syrinx.server.config import ServerConfig
from syrinx.server.logs import JsonFormatter
from syrinx.server.telemetry import Telemetry, TelemetryConfig, serving_telemetry
from syrinx.v1 import synthesizer_pb2 as pb

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"


class EndedSpans(SpanProcessor):
    """Collects finished spans; :meth:`wait` blocks until the server has ended the expected ones."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self._changed = threading.Condition()

    def on_end(self, span: ReadableSpan) -> None:
        with self._changed:
            self.spans.append(span)
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = 30) -> list[ReadableSpan]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.spans) >= count, timeout), (
                f"only {len(self.spans)} spans ended"
            )
            return list(self.spans)


@pytest.fixture(scope="module")
def observed():
    spans, metrics = EndedSpans(), InMemoryMetricReader()
    telemetry = Telemetry.create(
        TelemetryConfig(metrics_port=None), {}, span_processors=[spans], metric_readers=[metrics]
    )
    server = ServerThread(ServerConfig(host="127.0.0.1", port=0), telemetry)
    server.make_ready()
    yield server, spans, metrics
    server.stop()


def points(reader: InMemoryMetricReader, name: str) -> list:
    data = reader.get_metrics_data()
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def requests_counted(reader, method: str, code: int) -> int:
    return sum(
        p.value
        for p in points(reader, "syrinx.requests")
        if p.attributes == {"rpc.method": method, "rpc.grpc.status_code": code}
    )


def test_a_stream_is_one_server_span_in_the_callers_trace_with_its_first_audio(observed):
    server, spans, metrics = observed
    before = len(spans.spans)
    traceparent = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
    config = pb.AudioConfig(encoding=pb.AUDIO_ENCODING_MULAW, sample_rate_hz=8000)
    request = pb.StreamSynthesizeRequest(
        text="Tracing follows the caller.", seed=1, audio_config=config, request_id="t-1"
    )
    replies = list(server.stub.StreamSynthesize(request, metadata=[("traceparent", traceparent)]))
    (span,) = spans.wait(before + 1)[before:]
    assert span.name == "syrinx.v1.Synthesizer/StreamSynthesize" and span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID  # joined to the caller's trace
    assert format(span.parent.span_id, "016x") == CALLER_SPAN_ID
    attributes = span.attributes
    assert attributes["syrinx.voice"] == "en_US-joe-medium"
    assert attributes["syrinx.text.length"] == len(request.text)
    assert attributes["syrinx.audio.encoding"] == "AUDIO_ENCODING_MULAW"
    assert attributes["syrinx.audio.sample_rate_hz"] == 8000
    assert attributes["rpc.grpc.status_code"] == 0 and span.status.status_code is not StatusCode.ERROR
    audio_seconds = sum(r.num_samples for r in replies) / 8000
    assert attributes["syrinx.audio_seconds"] == pytest.approx(audio_seconds)
    (first_audio,) = [e for e in span.events if e.name == "first_audio"]
    assert 0 < first_audio.attributes["syrinx.first_audio_ms"] < (span.end_time - span.start_time) / 1e6
    (started,) = [e for e in span.events if e.name == "engine_started"]
    assert 0 <= started.attributes["syrinx.queue_wait_ms"] < first_audio.attributes["syrinx.first_audio_ms"]
    sentences = [e.attributes for e in span.events if e.name == "sentence_encoded"]
    assert [s["syrinx.sentence"] for s in sentences] == [0] and sentences[0]["syrinx.phoneme_ids"] > 10


def test_metrics_add_up_after_known_requests(observed):
    server, spans, metrics = observed
    before_ok = requests_counted(metrics, "StreamSynthesize", 0)
    before_audio = sum(p.value for p in points(metrics, "syrinx.audio.produced"))
    before_first = sum(p.count for p in points(metrics, "syrinx.request.first_audio"))
    count = len(spans.spans)
    audio = 0.0
    for seed in range(3):
        replies = list(server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(text="Count me in.", seed=seed)))
        audio += sum(r.num_samples for r in replies) / replies[0].format.sample_rate_hz
    spans.wait(count + 3)
    assert requests_counted(metrics, "StreamSynthesize", 0) == before_ok + 3
    assert sum(p.value for p in points(metrics, "syrinx.audio.produced")) == pytest.approx(before_audio + audio)
    assert sum(p.count for p in points(metrics, "syrinx.request.first_audio")) == before_first + 3
    assert [p.value for p in points(metrics, "syrinx.streams.active")] == [0]
    assert sum(p.count for p in points(metrics, "syrinx.engine.step.duration")) > 0
    assert sum(p.count for p in points(metrics, "syrinx.voices.load.duration")) == 1


def test_a_failed_request_is_counted_under_its_code_and_its_span_is_an_error(observed):
    server, spans, metrics = observed
    before = requests_counted(metrics, "StreamSynthesize", grpc.StatusCode.NOT_FOUND.value[0])
    count = len(spans.spans)
    with pytest.raises(grpc.RpcError) as error:
        list(server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(text="Hi.", voice="xx_nobody")))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    (span,) = spans.wait(count + 1)[count:]
    assert span.status.status_code is StatusCode.ERROR and "NOT_FOUND" in span.status.description
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert span.attributes["syrinx.voice"] == "xx_nobody"
    assert requests_counted(metrics, "StreamSynthesize", grpc.StatusCode.NOT_FOUND.value[0]) == before + 1


DOCUMENTED = [
    "syrinx_request_first_audio_seconds",
    "syrinx_request_duration_seconds",
    "syrinx_request_real_time_factor",
    "syrinx_audio_produced_seconds",
    "syrinx_requests",
    "syrinx_streams_active",
    "syrinx_streams_waiting",
    "syrinx_engine_step_duration_seconds",
    "syrinx_engine_batch_size",
    "syrinx_voices_load_duration_seconds",
]


def test_the_metrics_endpoint_serves_the_documented_names_to_prometheus():
    telemetry, endpoint = serving_telemetry(TelemetryConfig(metrics_port=0), "127.0.0.1", {})
    server = ServerThread(ServerConfig(host="127.0.0.1", port=0), telemetry)
    try:
        server.make_ready()
        list(server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(text="Scrape me.", seed=1)))
        with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
    finally:
        server.stop()
        endpoint.close()
        telemetry.shutdown()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    missing = [name for name in DOCUMENTED if name not in families]
    assert not missing, f"missing from /metrics: {missing}"
    assert families["syrinx_request_first_audio_seconds"].type == "histogram"
    assert families["syrinx_requests"].type == "counter"


def summary_lines(caplog, request_id: str) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == "syrinx.requests" and r.fields["request_id"] == request_id]


def test_one_summary_log_line_per_request_without_the_text(observed, caplog):
    server, spans, _ = observed
    caplog.set_level(logging.INFO, logger="syrinx.requests")
    count = len(spans.spans)
    replies = list(
        server.stub.StreamSynthesize(
            pb.StreamSynthesizeRequest(text="Log this call, not its words.", request_id="log-1", seed=2)
        )
    )
    (span,) = spans.wait(count + 1)[count:]
    (fields,) = summary_lines(caplog, "log-1")
    assert fields["trace_id"] == format(span.context.trace_id, "032x")
    assert (fields["method"], fields["voice"], fields["status"]) == ("StreamSynthesize", "en_US-joe-medium", "OK")
    assert fields["characters"] == len("Log this call, not its words.")
    assert fields["audio_seconds"] == pytest.approx(sum(r.num_samples for r in replies) / 22050, abs=1e-3)
    assert fields["first_audio_ms"] > 0 and "text" not in fields
    line = json.loads(JsonFormatter().format(next(r for r in caplog.records if r.name == "syrinx.requests")))
    assert line["request_id"] == "log-1" and line["level"] == "INFO" and line["trace_id"] == fields["trace_id"]


def test_the_huge_strings_of_a_rejected_request_are_logged_in_part(observed, caplog):
    """The summary line describes a request before it is checked: a 100,000-character voice name
    and request id become 80 characters and a length, not a 200 KB log line."""
    server, spans, _ = observed
    caplog.set_level(logging.INFO, logger="syrinx.requests")
    request = pb.StreamSynthesizeRequest(text="Hello.", voice="v" * 100_000, request_id="r" * 100_000)
    count = len(spans.spans)
    with pytest.raises(grpc.RpcError):
        list(server.stub.StreamSynthesize(request))
    spans.wait(count + 1)
    (fields,) = [
        r.fields for r in caplog.records if r.name == "syrinx.requests" and r.fields["request_id"].startswith("r")
    ]
    assert fields["voice"] == "v" * 80 + "... (100000 characters)"
    assert fields["request_id"] == "r" * 80 + "... (100000 characters)"
    assert fields["status"] == "INVALID_ARGUMENT"  # the request id is over its limit


def test_the_text_is_logged_only_when_the_operator_opts_in(caplog):
    telemetry = Telemetry.create(TelemetryConfig(metrics_port=None, log_text=True), {})
    server = ServerThread(ServerConfig(host="127.0.0.1", port=0), telemetry)
    caplog.set_level(logging.INFO, logger="syrinx.requests")
    try:
        server.make_ready()
        server.stub.Synthesize(pb.SynthesizeRequest(text="Opted in.", request_id="log-2", seed=1))
    finally:
        server.stop()  # drains: the call's summary line is written before this returns
    (fields,) = summary_lines(caplog, "log-2")
    assert fields["text"] == "Opted in." and fields["method"] == "Synthesize"


def test_the_grafana_dashboard_reads_only_metrics_the_server_exports():
    import re
    from pathlib import Path

    dashboard = json.loads(
        (Path(__file__).parent.parent / "k8s" / "monitoring" / "grafana" / "syrinx-dashboard.json").read_text()
    )
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", name) for e in exprs for name in re.findall(r"\bsyrinx_[a-z_]+", e)}
    exported = set(DOCUMENTED) | {name + "_total" for name in DOCUMENTED}
    assert used and used <= exported, f"not exported: {used - exported}"
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("first audio", "streams", "real-time factor", "status code", "batch"):
        assert topic in titles


def test_the_standard_environment_switches_export_on_and_everything_off():
    from syrinx.server.telemetry import _otlp_traces_wanted

    assert not _otlp_traces_wanted({})
    assert _otlp_traces_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert not _otlp_traces_wanted(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert _otlp_traces_wanted({"OTEL_TRACES_EXPORTER": "console,otlp"})
    telemetry, endpoint = serving_telemetry(TelemetryConfig(metrics_port=0), "127.0.0.1", {"OTEL_SDK_DISABLED": "true"})
    assert endpoint is None  # nothing to scrape
    call = telemetry.start_rpc("StreamSynthesize", [("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01")])
    assert not call.span.is_recording()
