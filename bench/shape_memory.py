"""Resident memory of the CPU engine as it meets new input shapes, and the same shapes again.

The soak's memory grew with each new shape (docs/reliability.md). This runs 60 seeded
requests of 1 to 12 words on one engine, then the same 60 again ``--passes`` times, and
prints resident memory after each pass with the prepacked weights it holds. Memory that
stops growing once every shape has been seen is per-shape state, not a leak. Not a test.

``--random N`` instead runs N corpus sentences with random seeds, as the soak does, and
prints the distinct step shapes, resident memory and the time of the last two thirds;
``--unbucketed`` runs the engine with frame lengths in multiples of 8 and exact kept ranges,
as before the buckets (run both in turns: the machine is noisy).

    python -m bench.shape_memory --passes 8
    python -m bench.shape_memory --random 150 [--unbucketed]
"""

from __future__ import annotations

import argparse
import os
import random
import time

from syrinx.server.engine import Engine, EngineConfig, SynthesisOptions, default_voice_files, load_voice
from syrinx.server.engine.vits.convs import _PackedWeights, _prepacking_ops

from .load_bench import CORPUS, process_rss_mb

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


def random_seeds(count: int, unbucketed: bool) -> None:
    """``count`` corpus sentences with random seeds: distinct step shapes, memory, time."""
    import syrinx.server.engine.engine as engine_module

    if unbucketed:  # the engine before the buckets: lengths in multiples of 8, kept ranges exact
        engine_module._frame_bucket = lambda n: engine_module._round_up(n, engine_module.FRAME_BUCKET)
        engine_module._keep_bucket = lambda lo, hi, length: (lo, hi)
    config = EngineConfig()
    engine, voice = Engine(config), load_voice(default_voice_files(), config)
    shapes: set = set()
    run_step = engine._run_step

    def recording(key, items, fn, inputs):
        shapes.add(tuple(k for k in key if not hasattr(k, "parameters")))  # the model itself is not a shape
        return run_step(key, items, fn, inputs)

    engine._run_step = recording  # type: ignore[method-assign]
    engine.warm_up(voice)
    rng = random.Random(7)
    jobs = [(rng.choice(CORPUS), rng.randrange(1 << 30)) for _ in range(count)]
    timed_from = count // 3
    started = time.perf_counter()
    for index, (text, seed) in enumerate(jobs):
        if index == timed_from:
            started = time.perf_counter()
        list(engine.stream(voice, text, SynthesisOptions(seed=seed)))
    kinds = {kind: sum(1 for s in shapes if s[0] == kind) for kind in ("encode", "flow", "decode")}
    print(
        f"{'unbucketed' if unbucketed else 'bucketed'}: {count} requests, distinct shapes {kinds}, "
        f"{process_rss_mb(os.getpid()):.0f} MiB, last {count - timed_from} in {time.perf_counter() - started:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=8)
    parser.add_argument("--random", type=int, default=0, help="corpus sentences with random seeds instead")
    parser.add_argument("--unbucketed", action="store_true", help="with --random: the engine before the buckets")
    args = parser.parse_args()
    if args.random:
        random_seeds(args.random, args.unbucketed)
        return
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
