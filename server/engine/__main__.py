"""Speak text with the engine alone (no server): ``python -m syrinx.server.engine "Hello." -o out.wav``.

Streams the text through the engine, writes a 16-bit WAV and prints the time
to first audio and the real-time factor on stderr (after one warm-up
synthesis, as a server does before it reports ready). Until the gRPC service
exists this is what ``make run`` does.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ..audio import wav_file
from .config import EngineConfig
from .engine import AudioChunk, Engine, SynthesisOptions
from .errors import SyrinxError
from .voice import VoiceCatalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syrinx.server.engine", description=__doc__)
    parser.add_argument("text")
    parser.add_argument("-o", "--output", default="out.wav")
    parser.add_argument("--voice", default=None, help="voice name (default: the bundled en_US-joe-medium)")
    parser.add_argument("--voices-dir", default=None, help="directory of extra Piper voices")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--length-scale", type=float, default=None, help="> 1 speaks slower")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    try:
        from pathlib import Path

        config = EngineConfig(
            device=args.device,
            dtype=args.dtype,
            threads=args.threads,
            voices_dir=Path(args.voices_dir) if args.voices_dir else None,
        )
        voice = VoiceCatalog.load(config).get(args.voice)
        engine = Engine(config)
        engine.warm_up(voice)
        started = time.perf_counter()
        first_audio = 0.0
        chunks = []
        for event in engine.stream(voice, args.text, SynthesisOptions(length_scale=args.length_scale, seed=args.seed)):
            if isinstance(event, AudioChunk):
                first_audio = first_audio or time.perf_counter() - started
                chunks.append(event.samples)
        elapsed = time.perf_counter() - started
    except SyrinxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    audio = np.concatenate(chunks)
    with open(args.output, "wb") as f:
        f.write(wav_file(audio, voice.info.sample_rate))
    seconds = len(audio) / voice.info.sample_rate
    print(
        f"{voice.name}: {seconds:.2f} s of audio -> {args.output}; first audio {first_audio * 1e3:.1f} ms, "
        f"real-time factor {elapsed / seconds:.3f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
