"""Transport overhead: time to first audio through gRPC minus the engine's own, in one run.

The server runs in this process (its own event loop and threads, listening on
a loopback port) so that both paths use the very same engine, voice and torch
thread pool (the direct path also runs on the server's engine thread): no
second process's threads compete, and the only difference left is the
transport. Each pair of runs (through gRPC, then the engine
called directly with the same request) is measured back to back, and the
median of the per-pair differences is reported, which cancels the machine's
drift. Not a test: it only reports.

    python -m bench.grpc_bench --pairs 40
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

import grpc
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

from syrinx.server.app import create_server, make_ready
from syrinx.server.config import ServerConfig
from syrinx.server.engine import AudioChunk, SynthesisOptions

from .engine_bench import TEXTS, machine


def start_server():
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    running = asyncio.run_coroutine_threadsafe(create_server(ServerConfig(host="127.0.0.1", port=0)), loop).result()
    asyncio.run_coroutine_threadsafe(make_ready(running), loop).result()
    return loop, running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40)
    args = parser.parse_args()

    loop, running = start_server()
    service = running.service
    engine = service._engine  # the server's own engine: the direct path runs exactly what the server runs
    voices, default = service.voices()
    voice = next(v for v in voices if v.name == default)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = pb_grpc.SynthesizerStub(channel)

    def via_grpc(text: str) -> float:
        started = time.perf_counter()
        call = stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=text, seed=1))
        next(call)
        first = time.perf_counter() - started
        for _ in call:
            pass
        return first

    def direct(text: str) -> float:
        # On the server's engine thread, as the server runs it: OpenMP keeps one thread team per
        # calling thread, and two teams spinning on 2 cores would slow both paths.
        started = time.perf_counter()
        events = service._worker.submit(lambda: engine.stream(voice, text, SynthesisOptions(seed=1))).result()
        first_chunk = service._worker.submit(lambda: next(e for e in events if isinstance(e, AudioChunk))).result()
        first = time.perf_counter() - started
        service._worker.submit(lambda: [None for _ in events]).result()
        assert len(first_chunk.samples) > 0
        return first

    print(f"machine: {machine()}")
    print(f"{args.pairs} pairs per text; time to first audio (ms), medians")
    for text_name in ("short", "medium"):
        text = TEXTS[text_name]
        via_grpc(text), direct(text)  # warm both paths
        pairs = [(via_grpc(text), direct(text)) for _ in range(args.pairs)]
        engine_ms = statistics.median(d for _, d in pairs) * 1e3
        grpc_ms = statistics.median(g for g, _ in pairs) * 1e3
        overhead_ms = statistics.median(g - d for g, d in pairs) * 1e3
        print(f"{text_name:<8} engine {engine_ms:6.1f}   gRPC {grpc_ms:6.1f}   overhead (median of pair differences) {overhead_ms:+5.2f}")
    channel.close()
    asyncio.run_coroutine_threadsafe(running.drain(0), loop).result()


if __name__ == "__main__":
    main()
