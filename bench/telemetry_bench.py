"""Telemetry overhead: first audio and throughput with traces and metrics on (exported) and off, in one run.

"Off" is ``OTEL_SDK_DISABLED=true`` (the API's no-op providers). "On" is the
server's full telemetry with its spans exported over OTLP to a sink in this
process (a gRPC TraceService that counts and drops them) and its metrics
scraped from ``/metrics`` once a second, as a collector and Prometheus would.
The two run as separate server processes, both up at once but only one
busy at a time: first-audio calls alternate between them in pairs, and
throughput runs in alternating blocks, so the machine's drift falls on both.
This process imports no torch. Not a test: it only reports.

    python -m bench.telemetry_bench --calls 60 --rounds 6
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

from .load_bench import free_port

TEXT = "Your table for two is booked for seven tonight."


class SpanSink(trace_service_pb2_grpc.TraceServiceServicer):
    """Stands in for an OpenTelemetry collector: takes spans, counts them, keeps nothing."""

    def __init__(self) -> None:
        self.spans = 0

    def Export(self, request, context):
        self.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class Server:
    def __init__(self, telemetry_on: bool, sink_port: int) -> None:
        env = dict(os.environ)
        if telemetry_on:
            env.update(
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}",
                OTEL_EXPORTER_OTLP_INSECURE="true",
                OTEL_BSP_SCHEDULE_DELAY="1000",
            )
        else:
            env["OTEL_SDK_DISABLED"] = "true"
        self.port, self.metrics_port = free_port(), free_port()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "syrinx.server.app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--metrics-port",
                str(self.metrics_port),
                "--log-level",
                "WARNING",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + 120
        while True:  # start-up: wait for SERVING through the health protocol's Watch
            try:
                for reply in health.Watch(health_pb2.HealthCheckRequest(), timeout=deadline - time.monotonic()):
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                break
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                grpc.channel_ready_future(self.channel).result(timeout=deadline - time.monotonic())
        self.stub = pb_grpc.SynthesizerStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        self._process.terminate()
        self._process.wait(60)


def first_audio(stub) -> float:
    started = time.perf_counter()
    call = stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=TEXT, seed=1))
    next(call)
    first = time.perf_counter() - started
    for _ in call:
        pass
    return first


def throughput(stub, workers: int, seconds: float) -> float:
    """Seconds of audio per wall second, ``workers`` callers re-requesting at once."""
    end = time.monotonic() + seconds

    def worker() -> int:
        samples = 0
        while time.monotonic() < end:
            samples += sum(r.num_samples for r in stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=TEXT, seed=1)))
        return samples

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(lambda _: worker(), range(workers)))
    return total / 22050 / (time.monotonic() - started)


def scrape_every_second(port: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            reply.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=60, help="first-audio call pairs")
    parser.add_argument("--rounds", type=int, default=6, help="throughput block pairs")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput block length")
    args = parser.parse_args()

    sink = SpanSink()
    sink_server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, sink_server)
    sink_port = sink_server.add_insecure_port("127.0.0.1:0")
    sink_server.start()

    servers = {"off": Server(False, sink_port), "on": Server(True, sink_port)}
    stop = threading.Event()
    threading.Thread(target=scrape_every_second, args=(servers["on"].metrics_port, stop), daemon=True).start()
    try:
        for server in servers.values():
            for _ in range(3):
                first_audio(server.stub)  # warm
        # First audio: calls alternate between the two servers (both up, one busy at a time), in pairs.
        pairs = []
        for index in range(args.calls):
            order = ("off", "on") if index % 2 == 0 else ("on", "off")
            timed = {mode: first_audio(servers[mode].stub) for mode in order}
            pairs.append((timed["off"], timed["on"]))
        # Throughput: alternating blocks.
        blocks = {"off": [], "on": []}
        for index in range(args.rounds):
            for mode in ("off", "on") if index % 2 == 0 else ("on", "off"):
                blocks[mode].append(throughput(servers[mode].stub, args.workers, args.seconds))
    finally:
        stop.set()
        for server in servers.values():
            server.stop()
        sink_server.stop(0)
    off_first = statistics.median(p[0] for p in pairs) * 1e3
    on_first = statistics.median(p[1] for p in pairs) * 1e3
    paired = statistics.median(on - off for off, on in pairs) * 1e3
    print(
        f"first audio p50 over {args.calls} alternating pairs: off {off_first:.1f} ms, on {on_first:.1f} ms "
        f"({(on_first / off_first - 1) * 100:+.1f}%); median pair difference {paired:+.2f} ms"
    )
    ratios = [on / off for on, off in zip(blocks["on"], blocks["off"])]
    print(
        f"throughput, {args.workers} callers, {args.rounds} alternating {args.seconds:.0f} s blocks each: "
        f"off {statistics.median(blocks['off']):.2f}x, on {statistics.median(blocks['on']):.2f}x real time; "
        f"on/off per block pair {', '.join(f'{r:.3f}' for r in ratios)}, median {(statistics.median(ratios) - 1) * 100:+.1f}%"
    )
    print(f"spans received by the sink: {sink.spans}")


if __name__ == "__main__":
    main()
