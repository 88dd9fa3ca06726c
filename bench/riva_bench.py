"""`make bench-riva`: the Riva endpoint against syrinx.v1 on the same server, in one run.

Pairs of calls in a random order per pair, each read to its end before the next starts:

  first audio   StreamSynthesize (syrinx.v1) against SynthesizeOnline (Riva, one request, half-closed)
  throughput    Synthesize (syrinx.v1) against Synthesize (Riva): audio seconds per wall second

Reports the medians and the median of the per-pair differences (first audio) and ratios
(throughput); the target is the two protocols within 1 ms at p50. The server runs as its own
process (`python -m syrinx.server.app`), the client in this one.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

import grpc

from bench.load_bench import running_server
from syrinx.riva import riva_audio_pb2, riva_tts_pb2, riva_tts_pb2_grpc
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

SHORT = "What time works best for you?"
# Two sentences and no clause mark in the first: SynthesizeOnline's segments (its eager first
# segment stops at a clause mark) are then the sentences StreamSynthesize encodes, so the two
# protocols do the same engine work and the difference is the transport's.
LONG = (
    "The earliest flight to Boston leaves at nine fifteen tomorrow morning from the second terminal. Shall I book it?"
)
RATE = 22050


async def first_audio(call) -> float:
    """Time to the call's first message; the call is then read to its end."""
    started = time.perf_counter()
    first = None
    async for _ in call:
        first = first if first is not None else time.perf_counter() - started
    assert first is not None
    return first * 1e3


async def syrinx_stream(stub: pb_grpc.SynthesizerStub, text: str) -> float:
    return await first_audio(stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=text)))


async def riva_online(stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub, text: str) -> float:
    request = riva_tts_pb2.SynthesizeSpeechRequest(
        text=text, language_code="en-US", encoding=riva_audio_pb2.LINEAR_PCM, sample_rate_hz=RATE
    )
    return await first_audio(stub.SynthesizeOnline(iter([request])))


async def syrinx_unary(stub: pb_grpc.SynthesizerStub, text: str) -> float:
    started = time.perf_counter()
    reply = await stub.Synthesize(pb.SynthesizeRequest(text=text))
    return reply.num_samples / reply.format.sample_rate_hz / (time.perf_counter() - started)


async def riva_unary(stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub, text: str) -> float:
    started = time.perf_counter()
    reply = await stub.Synthesize(
        riva_tts_pb2.SynthesizeSpeechRequest(
            text=text, language_code="en-US", encoding=riva_audio_pb2.LINEAR_PCM, sample_rate_hz=RATE
        )
    )
    return len(reply.audio) / 2 / RATE / (time.perf_counter() - started)


async def pairs(count: int, syrinx_call, riva_call, rng: random.Random) -> tuple[list[float], list[float]]:
    ours, theirs = [], []
    for _ in range(count):
        order = [("syrinx", syrinx_call), ("riva", riva_call)]
        rng.shuffle(order)
        for name, call in order:
            (ours if name == "syrinx" else theirs).append(await call())
    return ours, theirs


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(1)
    async with running_server("syrinx", args) as server, grpc.aio.insecure_channel(server.address) as channel:
        syrinx, riva = pb_grpc.SynthesizerStub(channel), riva_tts_pb2_grpc.RivaSpeechSynthesisStub(channel)
        await pairs(3, lambda: syrinx_stream(syrinx, SHORT), lambda: riva_online(riva, SHORT), rng)  # warm-up
        print(f"{args.pairs} pairs per row, medians")
        for label, text in (("short", SHORT), ("long", LONG)):
            ours, theirs = await pairs(
                args.pairs, lambda t=text: syrinx_stream(syrinx, t), lambda t=text: riva_online(riva, t), rng
            )
            difference = statistics.median(b - a for a, b in zip(ours, theirs))
            print(
                f"first audio {label:<5}  syrinx.v1 {statistics.median(ours):6.1f} ms   "
                f"Riva {statistics.median(theirs):6.1f} ms   Riva - syrinx.v1 (median of pairs) {difference:+.2f} ms"
            )
        ours, theirs = await pairs(args.pairs, lambda: syrinx_unary(syrinx, LONG), lambda: riva_unary(riva, LONG), rng)
        ratio = statistics.median(b / a for a, b in zip(ours, theirs))
        print(
            f"throughput (unary, long)  syrinx.v1 {statistics.median(ours):5.1f}x real time   "
            f"Riva {statistics.median(theirs):5.1f}x   Riva / syrinx.v1 (median of pairs) {ratio:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--syrinx-args", default="", help="extra server flags")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
