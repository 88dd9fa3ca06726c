"""Engine benchmark: first-audio time and real-time factor, Syrinx vs piper-tts (onnxruntime).

Runs both on the same machine, texts and settings in one process and prints
medians. Contenders take turns in short blocks (one discarded run, then
``--block`` timed runs), over ``--rounds`` rounds: interleaving run by run
would be unfair, because onnxruntime's worker threads keep spinning for a
while after each run (its default) and slow whatever runs next (our
first-audio figures doubled when interleaved), while one long block per
contender would let a noisy minute of a shared machine land on one contender
only. Not a test: it asserts nothing and only reports.

    python -m bench.engine_bench --rounds 5 --block 3 [--device cuda] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass

import torch

from syrinx.server.engine import (
    AudioChunk,
    ChunkPolicy,
    Engine,
    EngineConfig,
    SynthesisOptions,
    default_voice_files,
    load_voice,
)

TEXTS = {
    "short": "Hello there.",  # 0.8 s of audio
    # 1.7 s: the length the medium first-audio target was set for (piper-tts took 64 ms
    # for a 1.6 s sentence there); of eight 1.3-1.9 s voice-bot lines, the one with the
    # most ids near 1.6 s. The 2.4 s "medium" below is the one runs A-H measured.
    "medium-1.7s": "What time works best for you?",
    "medium": "Your table for two is booked for seven tonight.",  # 2.4 s
    "long": (  # 12.3 s, one sentence of 557 ids
        "If you would like to change your reservation, move it to another day, add more guests "
        "or ask about our seasonal tasting menu and the wine pairing, just tell me what you need "
        "whenever it suits you and I will gladly take care of all of it for you right away."
    ),
}


@dataclass
class Run:
    first_audio_s: float
    total_s: float
    audio_s: float


def _timed_stream(make_chunks, sample_rate: int) -> Run:
    """Call ``make_chunks`` and consume the audio arrays it yields, timing the first and the end."""
    started = time.perf_counter()
    samples = 0
    first = None
    for audio in make_chunks():
        if first is None:
            first = time.perf_counter() - started
        samples += len(audio)
    return Run(first, time.perf_counter() - started, samples / sample_rate)


def _piper_run(piper_voice, syn_config, text: str) -> Run:
    def chunks():
        return (chunk.audio_float_array for chunk in piper_voice.synthesize(text, syn_config=syn_config))

    return _timed_stream(chunks, piper_voice.config.sample_rate)


def _stream_run(engine: Engine, voice, text: str, options: SynthesisOptions) -> Run:
    def chunks():
        return (e.samples for e in engine.stream(voice, text, options) if isinstance(e, AudioChunk))

    return _timed_stream(chunks, voice.info.sample_rate)


def _whole_run(engine: Engine, voice, text: str, options: SynthesisOptions) -> Run:
    started = time.perf_counter()
    audio = engine.synthesize(voice, text, options)
    elapsed = time.perf_counter() - started
    return Run(elapsed, elapsed, len(audio) / voice.info.sample_rate)


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=3, help="timed runs per contender and text in each round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--first-chunk-frames", type=int, default=ChunkPolicy().first_frames)
    parser.add_argument("--no-piper", action="store_true", help="skip the onnxruntime baseline")
    parser.add_argument("--json", help="also write the medians here")
    args = parser.parse_args()

    config = EngineConfig(
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
        chunks=ChunkPolicy(first_frames=args.first_chunk_frames),
    )
    engine = Engine(config)
    voice = load_voice(default_voice_files(), config)
    options = SynthesisOptions(seed=1)

    contenders = {
        "syrinx stream": lambda text: _stream_run(engine, voice, text, options),
        "syrinx whole": lambda text: _whole_run(engine, voice, text, options),
    }
    if not args.no_piper:
        from piper import PiperVoice
        from piper.config import SynthesisConfig

        piper_voice = PiperVoice.load(voice.info.model_path, use_cuda=args.device.startswith("cuda"))
        # Same noise settings as ours; peak normalisation off, as a stream cannot do it.
        syn = SynthesisConfig(normalize_audio=False)
        contenders["piper-tts (onnxruntime)"] = lambda text: _piper_run(piper_voice, syn, text)

    runs: dict[tuple[str, str], list[Run]] = {(c, t): [] for c in contenders for t in TEXTS}
    for _ in range(args.rounds):
        for text_name, text in TEXTS.items():
            for name, run in contenders.items():
                run(text)  # discarded: first calls pick kernels, and the previous contender may still spin
                runs[(name, text_name)].extend(run(text) for _ in range(args.block))

    print(f"machine: {machine()}")
    print(
        f"voice: {voice.name}, {args.device} {args.dtype}, first chunk {config.chunks.first_frames} frames, median of {args.rounds * args.block} runs"
    )
    header = f"{'engine':<26}{'text':<12}{'audio s':>8}{'first audio ms':>16}{'total ms':>10}{'RTF':>8}"
    print(header)
    print("-" * len(header))
    summary = []
    for (name, text_name), items in runs.items():
        first = statistics.median(r.first_audio_s for r in items) * 1e3
        total = statistics.median(r.total_s for r in items) * 1e3
        audio = items[0].audio_s
        rtf = statistics.median(r.total_s / r.audio_s for r in items)
        summary.append(
            {
                "engine": name,
                "text": text_name,
                "audio_s": audio,
                "first_audio_ms": first,
                "total_ms": total,
                "rtf": rtf,
            }
        )
        print(f"{name:<26}{text_name:<12}{audio:>8.2f}{first:>16.1f}{total:>10.1f}{rtf:>8.3f}")
    if not args.no_piper:
        print()
        for text_name in TEXTS:
            ours = next(s for s in summary if s["engine"] == "syrinx whole" and s["text"] == text_name)
            base = next(s for s in summary if s["engine"].startswith("piper") and s["text"] == text_name)
            print(f"whole-sentence RTF ratio syrinx/onnxruntime, {text_name}: {ours['rtf'] / base['rtf']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "args": vars(args), "results": summary}, f, indent=2)


if __name__ == "__main__":
    main()
