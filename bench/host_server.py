"""The real server with an engine that does no arithmetic: what the layers above the model can carry.

A GPU runs a batched step in milliseconds, so at hundreds of streams the
question becomes whether the host keeps up: gRPC, the transport's PCM framing,
the scheduler's decisions, the loop's hand-offs, phonemization (espeak-ng, on
the engine thread) and the engine's Python around each call. This server runs
all of that for real, with the default voice's phonemizer and the scheduler
limits a GPU gets (``GPU_SCHEDULER_LIMITS``), but its engine returns
silence at once: every sentence lasts ``FRAMES_PER_ID`` frames per phoneme id
(the default voice's own average) and every decode window is zeros. Not part of
the product, and not a test: point ``bench.load_bench --address`` at it.

    python -m bench.host_server --port 50889 &
    python -m bench.load_bench --address 127.0.0.1:50889 --target syrinx --concurrency 64,256,512
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence

import numpy as np
import torch

from syrinx.server.app import serve
from syrinx.server.config import GPU_SCHEDULER_LIMITS, ServerConfig, load_config
from syrinx.server.engine import DecodeWindow, EncodedSentence, Engine, SentenceRequest, Voice
from syrinx.server.logs import configure_logging

# Latent frames per phoneme id at the default speaking rate: the default voice
# spoke the benchmark's texts at 1.9-2.0 (medium: 210 frames for 105 ids).
FRAMES_PER_ID = 2.0
# The server's own GPU limits, as the flags that set them.
GPU_LIMITS = [
    arg for name, value in GPU_SCHEDULER_LIMITS.items() for arg in (f"--{name.replace('_', '-')}", str(value))
]


class SilentEngine(Engine):
    """The engine's interface with no model work: sentences of silence, their lengths from the ids."""

    def encode(self, requests: Sequence[SentenceRequest]) -> list[EncodedSentence]:
        encoded = []
        for request in requests:
            ids = len(request.sentence.phoneme_ids)
            per_id = max(1, round(FRAMES_PER_ID * request.length_scale))
            durations = np.full(ids, per_id, dtype=np.int64)
            z_p = torch.zeros(1, ids * per_id)  # only its length is read (num_frames)
            encoded.append(EncodedSentence(request.voice, request.sentence, z_p, durations, request.speaker_id))
        return encoded

    def decode(self, windows: Sequence[DecodeWindow]) -> list[np.ndarray]:
        return [np.zeros((w.end - w.start) * w.sentence.voice.hop_length, dtype=np.float32) for w in windows]

    def warm_up(self, voice: Voice) -> None:
        pass


def server_config(port: int, server_args: Sequence[str]) -> ServerConfig:
    """``syrinx serve`` flags over a GPU's scheduler limits (flags given win), no metrics endpoint."""
    return load_config([*GPU_LIMITS, "--port", str(port), "--metrics-port", "-1", *server_args], os.environ)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=50889)
    args, server_args = parser.parse_known_args(argv)
    config = server_config(args.port, server_args)
    configure_logging(config.log_level, config.log_format)
    return asyncio.run(serve(config, os.environ, engine=SilentEngine(config.engine)))


if __name__ == "__main__":
    raise SystemExit(main())
