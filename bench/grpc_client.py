"""The gRPC side of ``bench.grpc_bench``, run as its own process, as a real client would be.

It imports neither torch nor the server, so it adds no thread pool or GIL to
the server's process. It reads one request per line on stdin (JSON: ``text``,
optional ``seed`` and ``audio_config`` with AudioConfig's fields) and answers with the time to the first audio message and to the end, in
seconds, as one JSON line on stdout.

    python -m bench.grpc_client PORT
"""

from __future__ import annotations

import json
import sys
import time

import grpc

from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc


def main() -> None:
    port = int(sys.argv[1])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.SynthesizerStub(channel)
        for line in sys.stdin:
            request = json.loads(line)
            message = pb.StreamSynthesizeRequest(
                text=request["text"],
                seed=request.get("seed", 1),
                audio_config=pb.AudioConfig(**request.get("audio_config", {})),
            )
            started = time.perf_counter()
            call = stub.StreamSynthesize(message)
            first = next(call)
            first_s = time.perf_counter() - started
            samples = first.num_samples + sum(message.num_samples for message in call)
            print(
                json.dumps({"first_s": first_s, "total_s": time.perf_counter() - started, "samples": samples}),
                flush=True,
            )


if __name__ == "__main__":
    main()
