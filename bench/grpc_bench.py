"""Transport overhead: time to first audio through gRPC minus the engine's own, in one run.

Starts ``syrinx-server`` on a free loopback port as a separate process, and the
same engine in this process; both are timed on the same texts in alternating
short blocks (one discarded run each, see engine_bench for why), and the
medians are compared. Not a test: it only reports.

    python -m bench.grpc_bench --rounds 5 --block 4
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

from syrinx.server.engine import AudioChunk, Engine, EngineConfig, SynthesisOptions, default_voice_files, load_voice

from .engine_bench import TEXTS, machine


def start_server() -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "syrinx-server"), "--host", "127.0.0.1", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in server.stderr:
        match = re.search(r"serving on port (\d+)", line)
        if match:
            # Keep reading its log so a full pipe never blocks the server.
            threading.Thread(target=lambda: server.stderr.read(), daemon=True).start()
            return server, int(match.group(1))
    raise RuntimeError("server exited before serving")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=4)
    args = parser.parse_args()

    server, port = start_server()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.SynthesizerStub(channel)
        config = EngineConfig()
        engine = Engine(config)
        voice = load_voice(default_voice_files(), config)
        engine.warm_up(voice)

        def via_grpc(text: str) -> float:
            started = time.perf_counter()
            call = stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=text, seed=1))
            next(call)
            first = time.perf_counter() - started
            for _ in call:
                pass
            return first

        def in_process(text: str) -> float:
            started = time.perf_counter()
            events = engine.stream(voice, text, SynthesisOptions(seed=1))
            first = next(time.perf_counter() - started for e in events if isinstance(e, AudioChunk))
            for _ in events:
                pass
            return first

        contenders = {"engine in-process": in_process, "through gRPC": via_grpc}
        runs = {(c, t): [] for c in contenders for t in ("short", "medium")}
        for _ in range(args.rounds):
            for text_name in ("short", "medium"):
                for name, run in contenders.items():
                    run(TEXTS[text_name])
                    runs[(name, text_name)].extend(run(TEXTS[text_name]) for _ in range(args.block))

        print(f"machine: {machine()}")
        print(f"median of {args.rounds * args.block} runs, time to first audio (ms)")
        for text_name in ("short", "medium"):
            engine_ms = statistics.median(runs[("engine in-process", text_name)]) * 1e3
            grpc_ms = statistics.median(runs[("through gRPC", text_name)]) * 1e3
            print(f"{text_name:<8} engine {engine_ms:6.1f}   gRPC {grpc_ms:6.1f}   overhead {grpc_ms - engine_ms:+5.1f}")
        channel.close()
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
