"""Resident memory of the CPU engine as it meets new input shapes, and the same shapes again.

The soak's memory grew with each new shape (docs/reliability.md). This runs 60 seeded
requests of 1 to 12 words on one engine, then the same 60 again ``--passes`` times, and
prints resident memory after each pass with the prepacked weights it holds. Memory that
stops growing once every shape has been seen is per-shape state, not a leak. Not a test.

    python -m bench.shape_memory --passes 8
"""

from __future__ import annotations

import argparse
import os
import time

from syrinx.server.engine import Engine, EngineConfig, SynthesisOptions, default_voice_files, load_voice
from syrinx.server.engine.vits.convs import _PackedWeights, _prepacking_ops

from .load_bench import process_rss_mb

WORDS = "one two three four five six seven eight nine ten eleven twelve".split()


def packs(voice) -> tuple[int, int, float]:
    """Shapes looked up, distinct packed weights, and their MB, over every layer of ``voice``."""
    ops = _prepacking_ops()
    caches = {
        id(value): value
        for attribute in vars(voice).values()
        if hasattr(attribute, "modules")
        for module in attribute.modules()
        for value in vars(module).values()
        if isinstance(value, _PackedWeights)
    }.values()
    distinct = [p for c in caches for p in c._distinct]
    size = sum(ops.nbytes(p) for p in distinct) / 1e6 if ops is not None else 0.0
    return sum(len(c._by_input) for c in caches), len(distinct), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=8)
    args = parser.parse_args()
    config = EngineConfig()
    engine, voice = Engine(config), load_voice(default_voice_files(), config)
    engine.warm_up(voice)
    print(f"after warm-up: {process_rss_mb(os.getpid()):.0f} MiB")
    for number in range(args.passes + 1):
        started = time.perf_counter()
        for n in range(1, 61):
            text = " ".join(WORDS[: n % 12 + 1]) + "."
            list(engine.stream(voice, text, SynthesisOptions(seed=n)))
        shapes, distinct, size = packs(voice)
        print(
            f"{'first pass' if number == 0 else f'again ({number})':>12}: {process_rss_mb(os.getpid()):.0f} MiB, "
            f"{time.perf_counter() - started:.1f} s; {shapes} shapes share {distinct} packed weights ({size:.0f} MB)"
        )


if __name__ == "__main__":
    main()
