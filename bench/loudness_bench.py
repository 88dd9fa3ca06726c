"""Output level: each voice's calibration, where piper-tts's own normalization lands, and what
the limiter does to the sound (docs/audio.md). Not a test: it prints figures.

For every corpus sentence (seeded) it synthesizes the model's raw audio once, then compares:

* the raw level, and piper-tts's (each sentence peak-normalized, its ``normalize_audio``);
* Syrinx's calibrated level (one gain per voice, then the limiter), at 0, +6 and +16 dB of
  ``volume_gain_db``: the share of samples the limiter touches, and PESQ (ITU-T P.862,
  wide band at 16 kHz) of the limited audio against the same audio scaled without a limiter,
  beside PESQ of that audio hard-clipped at the ceiling instead (what a limiter is for).

    python -m bench.loudness_bench
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import soxr

from syrinx.server.audio.loudness import CEILING_DBFS, KNEE_DBFS, Level, db_to_gain, integrated_loudness
from syrinx.server.calibration import calibration_gain_db
from syrinx.server.config import DEFAULT_LOUDNESS_LUFS
from syrinx.server.engine import Engine, EngineConfig, SynthesisOptions, default_voice_files, load_voice

from .engine_bench import machine
from .load_bench import CORPUS


def _pesq(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    from pesq import pesq  # the bench extra (`make bench-loudness` installs it)

    to_16k = [soxr.resample(x.astype(np.float32), rate, 16000) for x in (reference, degraded)]
    return float(pesq(16000, to_16k[0], to_16k[1], "wb"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=DEFAULT_LOUDNESS_LUFS)
    args = parser.parse_args()
    config = EngineConfig()
    engine, voice = Engine(config), load_voice(default_voice_files(), config)
    engine.warm_up(voice)
    rate = voice.info.sample_rate
    print(machine())
    gain = calibration_gain_db(engine, voice, args.target)
    raw = [engine.synthesize(voice, text, SynthesisOptions(seed=index)) for index, text in enumerate(CORPUS)]
    joined = np.concatenate(raw)
    piper = np.concatenate([x / np.abs(x).max() for x in raw])
    print(f"voice {voice.info.name}: calibration gain {gain:+.2f} dB to {args.target:g} LUFS")
    print(f"corpus of {len(raw)} sentences, {len(joined) / rate:.1f} s")
    print(
        f"  raw model output        {integrated_loudness(joined, rate):6.2f} LUFS, peak {20 * np.log10(np.abs(joined).max()):6.2f} dBFS"
    )
    print(
        f"  piper-tts (normalized)  {integrated_loudness(piper, rate):6.2f} LUFS, peak {20 * np.log10(np.abs(piper).max()):6.2f} dBFS"
    )
    print("volume_gain_db | LUFS   | peak dBFS | samples limited | PESQ limited, median (min) | PESQ clipped instead")
    knee = db_to_gain(KNEE_DBFS)
    for volume in (0.0, 6.0, 16.0):
        level = Level(gain + volume)
        scaled = [x * db_to_gain(gain + volume) for x in raw]
        limited = [level.apply(x) for x in raw]
        out = np.concatenate(limited)
        touched = sum(int((np.abs(x) > knee).sum()) for x in scaled) / len(joined)
        scores = [_pesq(s, lim, rate) for s, lim in zip(scaled, limited)]
        ceiling = db_to_gain(CEILING_DBFS)
        clipped = [_pesq(s, np.clip(s, -ceiling, ceiling), rate) for s in scaled]  # what no limiter would give
        print(
            f"{volume:+14.0f} | {integrated_loudness(out, rate):6.2f} | {20 * np.log10(np.abs(out).max()):9.2f} | "
            f"{100 * touched:14.3f}% | {statistics.median(scores):.3f} ({min(scores):.3f}){'':13}| "
            f"{statistics.median(clipped):.3f} ({min(clipped):.3f})"
        )


if __name__ == "__main__":
    main()
