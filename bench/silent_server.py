"""A stand-in Synthesizer that streams silence at Syrinx's chunk sizes, for measuring the load generator itself.

Before a sweep to 512 calls means anything, the load generator must keep up
with 512 calls: a client that falls behind reports its own lag as the server's
latency. This server does no synthesis. Each StreamSynthesize call gets a first
chunk after 2 ms and then chunks of 12, 96 and 256 frames (22.05 kHz, 256
samples per frame, as the default voice) of silence, each sent when half of
the previous one would have played: a perfect server as the client sees it.
Not part of the product, and not a test.

    python -m bench.silent_server --port 50888 &
    python -m bench.load_bench --address 127.0.0.1:50888 --target syrinx --concurrency 64,256,512
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

SAMPLE_RATE = 22050
HOP = 256
FIRST_CHUNK_S = 0.002


def chunk_frames(text: str) -> list[int]:
    """12, 96, then 256-frame chunks covering about as many frames as the voice speaks for ``text``."""
    frames = 80 + 7 * len(text)
    sizes, done, size = [], 0, 12
    while done < frames:
        sizes.append(min(size, frames - done))
        done += sizes[-1]
        size = 96 if size == 12 else 256
    return sizes


class SilentSynthesizer(pb_grpc.SynthesizerServicer):
    async def StreamSynthesize(self, request, context):
        await asyncio.sleep(FIRST_CHUNK_S)
        sizes = chunk_frames(request.text)
        for index, frames in enumerate(sizes):
            samples = frames * HOP
            message = pb.StreamSynthesizeResponse(
                audio=bytes(2 * samples),
                sequence_number=index,
                offset_samples=HOP * sum(sizes[:index]),
                num_samples=samples,
                final=index == len(sizes) - 1,
                request_id=request.request_id,
            )
            if index == 0:
                message.format.sample_rate_hz = SAMPLE_RATE
                message.format.channels = 1
            yield message
            await asyncio.sleep(samples / SAMPLE_RATE / 2)


async def serve(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_SynthesizerServicer_to_server(SilentSynthesizer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"silent server on port {port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=50888)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
