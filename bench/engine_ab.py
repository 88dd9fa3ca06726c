"""Engine A/B: this checkout's engine against another commit's, alternating in one process.

This VM's speed drifts by 20-50% over minutes, more than most engine changes
are worth, so two benchmark runs taken one after the other compare the
machine's phases as much as the code. Here both engines are loaded in one
process (the other commit's ``server/`` is extracted with ``git archive`` and
imported under another name), and each round runs every text on both, in
alternating order, back to back. The report gives each side's median and the
median of the per-round ratios (new / base), which cancels the drift, and
whether the two engines' audio has the same bits. Only the
engine is compared (streamed first audio and total time, as in
``bench.engine_bench``); both sides share torch and its threads. Not a test:
it only reports.

    python -m bench.engine_ab --base HEAD~1 --rounds 12
"""

from __future__ import annotations

import argparse
import importlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

import syrinx.server.engine as this_engine

from .engine_bench import TEXTS

REPO_ROOT = Path(__file__).resolve().parents[1]
BASE_PACKAGE = "syrinx_ab_base"


def import_base_engine(rev: str, workdir: Path):
    """The engine package of commit ``rev``, imported as ``syrinx_ab_base.server.engine``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "server"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    package = workdir / BASE_PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(package, filter="data")
    sys.path.insert(0, str(workdir))
    return importlib.import_module(f"{BASE_PACKAGE}.server.engine")


class Side:
    """One engine with its own voice, as a server would load it."""

    def __init__(self, module, threads: int) -> None:
        self.module = module
        config = module.EngineConfig(threads=threads)
        self.engine = module.Engine(config)
        self.voice = module.load_voice(module.default_voice_files(), config)
        self.engine.warm_up(self.voice)

    def stream(self, text: str) -> tuple[float, float]:
        """Milliseconds to the first audio chunk and to the end of the stream."""
        started = time.perf_counter()
        first = None
        for event in self.engine.stream(self.voice, text, self.module.SynthesisOptions(seed=1)):
            if first is None and isinstance(event, self.module.AudioChunk):
                first = time.perf_counter() - started
        return first * 1e3, (time.perf_counter() - started) * 1e3

    def audio(self, text: str) -> np.ndarray:
        """The streamed audio, to say whether a change kept the same bits."""
        events = self.engine.stream(self.voice, text, self.module.SynthesisOptions(seed=1))
        return np.concatenate([e.samples for e in events if isinstance(e, self.module.AudioChunk)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="commit to compare this checkout's engine against")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: the engine's default)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        base_module = import_base_engine(args.base, Path(workdir))
        sides = {"base": Side(base_module, args.threads), "new": Side(this_engine, args.threads)}
        times: dict[tuple[str, str, str], list[float]] = {}
        for round_ in range(args.rounds):
            for name, text in TEXTS.items():
                for side in ("base", "new") if round_ % 2 == 0 else ("new", "base"):
                    first, total = sides[side].stream(text)
                    times.setdefault((side, name, "first audio"), []).append(first)
                    times.setdefault((side, name, "total"), []).append(total)
        differences = {
            name: _difference(sides["base"].audio(text), sides["new"].audio(text)) for name, text in TEXTS.items()
        }

    print(f"base {args.base} vs this checkout, {args.rounds} rounds, streamed (ms, medians)")
    print(f"{'text':12s} {'metric':12s} {'base':>8s} {'new':>8s} {'new/base':>9s}")
    for name in TEXTS:
        for metric in ("first audio", "total"):
            base, new = times[("base", name, metric)], times[("new", name, metric)]
            ratio = statistics.median(n / b for b, n in zip(base, new))
            print(f"{name:12s} {metric:12s} {statistics.median(base):8.1f} {statistics.median(new):8.1f} {ratio:9.3f}")
    print("audio, new against base: " + ", ".join(f"{name} {differences[name]}" for name in TEXTS))


def _difference(base: np.ndarray, new: np.ndarray) -> str:
    if base.shape != new.shape:
        return f"{new.size} samples against {base.size}"
    if np.array_equal(base, new):
        return "identical"
    return f"max abs difference {np.abs(base - new).max():.1e}"


if __name__ == "__main__":
    main()
