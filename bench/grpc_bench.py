"""Transport overhead: time to first audio through gRPC minus the engine's own, in one run.

The server runs in this process (its own event loop and threads, listening on
a loopback port) so that both paths use the very same engine, voice and torch
thread pool: no second torch process's threads compete. The direct path is
timed on the server's engine thread itself, so every thread hop the server
makes counts as overhead. The gRPC client runs as its own small process
(``bench.grpc_client``, no torch), as a real client would, so its threads and
GIL do not slow the server. Each pair of runs (through gRPC, then the engine
called directly with the same request) is measured back to back, and the
median of the per-pair differences is reported, which cancels the machine's
drift. Not a test: it only reports.

    python -m bench.grpc_bench --pairs 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import threading
import time

import grpc

from syrinx.server.app import create_server, make_ready
from syrinx.server.config import ServerConfig
from syrinx.server.engine import AudioChunk, SynthesisOptions
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

from .engine_bench import TEXTS, machine


def start_server():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(create_server(ServerConfig(host="127.0.0.1", port=0)), loop).result()
    asyncio.run_coroutine_threadsafe(make_ready(running), loop).result()
    return loop, thread, running


class ProcessClient:
    """The gRPC client as its own process (``bench.grpc_client``), as in a deployment."""

    def __init__(self, port: int) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.grpc_client", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def first_audio(self, text: str, audio_config: dict | None = None) -> float:
        self._process.stdin.write(json.dumps({"text": text, "seed": 1, "audio_config": audio_config or {}}) + "\n")
        self._process.stdin.flush()
        return json.loads(self._process.stdout.readline())["first_s"]

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait()


class ThreadClient:
    """The gRPC client on this process's main thread: shares the server's GIL (``--in-process-client``)."""

    def __init__(self, port: int) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = pb_grpc.SynthesizerStub(self._channel)

    def first_audio(self, text: str, audio_config: dict | None = None) -> float:
        started = time.perf_counter()
        call = self._stub.StreamSynthesize(
            pb.StreamSynthesizeRequest(text=text, seed=1, audio_config=pb.AudioConfig(**(audio_config or {})))
        )
        next(call)
        first = time.perf_counter() - started
        for _ in call:
            pass
        return first

    def close(self) -> None:
        self._channel.close()


# Telephony and WebRTC outputs against the native-rate LINEAR16 stream (issue: within 5 ms).
ENCODINGS = {
    "LINEAR16 native": {},
    "MULAW 8 kHz, 20 ms frames": {"encoding": pb.AUDIO_ENCODING_MULAW, "sample_rate_hz": 8000, "chunk_duration_ms": 20},
    "OGG_OPUS 48 kHz": {"encoding": pb.AUDIO_ENCODING_OGG_OPUS, "sample_rate_hz": 48000},
}


def first_audio_by_encoding(client, rounds: int) -> None:
    """Each round calls once per encoding, in a shuffled order; medians and the median per-round difference."""
    text = TEXTS["medium"]
    for config in ENCODINGS.values():
        client.first_audio(text, config)  # warm
    times = {name: [] for name in ENCODINGS}
    order = list(ENCODINGS)
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        shuffle(order)  # no output always runs right after another
        for name in order:
            times[name].append(client.first_audio(text, ENCODINGS[name]))
    base = times["LINEAR16 native"]
    print(f"first audio by output encoding (medium text, {rounds} rounds), ms:")
    for name, values in times.items():
        extra = statistics.median(v - b for v, b in zip(values, base)) * 1e3
        print(f"  {name:<28} {statistics.median(values) * 1e3:6.1f}   vs LINEAR16 native {extra:+5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--in-process-client", action="store_true", help="call from this process instead of a child")
    args = parser.parse_args()

    loop, thread, running = start_server()
    service = running.service
    voices, default = service.voices()
    voice = next(v for v in voices if v.name == default)
    client = ThreadClient(running.port) if args.in_process_client else ProcessClient(running.port)

    def direct(text: str) -> float:
        # Timed on the server's engine thread itself, as the engine's own in-process time to
        # first audio: no thread hop is counted on this side, so every hop the server makes
        # shows up in the overhead. (OpenMP keeps one thread team per calling thread; running
        # here also keeps a second team from spinning against the server's on 2 cores.)
        def first_audio(engine) -> float:
            started = time.perf_counter()
            events = engine.stream(voice, text, SynthesisOptions(seed=1))
            first_chunk = next(e for e in events if isinstance(e, AudioChunk))
            first = time.perf_counter() - started
            assert len(first_chunk.samples) > 0
            for _ in events:
                pass
            return first

        return asyncio.run_coroutine_threadsafe(service.run_on_engine(first_audio), loop).result()

    print(f"machine: {machine()}")
    print(f"client: {'in this process' if args.in_process_client else 'its own process'}")
    print(f"{args.pairs} pairs per text; time to first audio (ms), medians")
    for text_name in ("short", "medium"):
        text = TEXTS[text_name]
        client.first_audio(text), direct(text)  # warm both paths
        pairs = [(client.first_audio(text), direct(text)) for _ in range(args.pairs)]
        engine_ms = statistics.median(d for _, d in pairs) * 1e3
        grpc_ms = statistics.median(g for g, _ in pairs) * 1e3
        overhead_ms = statistics.median(g - d for g, d in pairs) * 1e3
        print(
            f"{text_name:<8} engine {engine_ms:6.1f}   gRPC {grpc_ms:6.1f}   overhead (median of pair differences) {overhead_ms:+5.2f}"
        )
    first_audio_by_encoding(client, args.pairs)
    client.close()
    asyncio.run_coroutine_threadsafe(running.drain(0), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()


if __name__ == "__main__":
    main()
