"""Engine settings: one frozen, validated object built at start-up and passed down."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidOptionError

DTYPES = ("float32", "float16", "bfloat16")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
_MAX_GROWTH = 16.0


@dataclass(frozen=True)
class ChunkPolicy:
    """How a sentence's latent frames are cut into decode windows.

    The first window is small so the first audio comes quickly; each later one
    grows by ``growth`` up to ``max_frames`` so the fixed cost of context
    frames is spread over more audio. One frame is ``hop_length`` samples
    (256 at 22.05 kHz, about 11.6 ms).
    """

    first_frames: int = 12
    max_frames: int = 128
    growth: float = 2.0

    def __post_init__(self) -> None:
        if self.first_frames < 1:
            raise InvalidOptionError(f"first chunk must be at least 1 frame, got {self.first_frames}")
        if self.max_frames < self.first_frames:
            raise InvalidOptionError(
                f"max chunk ({self.max_frames} frames) is smaller than the first chunk ({self.first_frames})"
            )
        if not (math.isfinite(self.growth) and 1.0 <= self.growth <= _MAX_GROWTH):
            raise InvalidOptionError(f"chunk growth must be between 1.0 and {_MAX_GROWTH:g}, got {self.growth}")

    def windows(self, num_frames: int) -> list[tuple[int, int]]:
        """Core ``[start, end)`` frame ranges covering ``num_frames`` in order."""
        windows: list[tuple[int, int]] = []
        start, size = 0, self.first_frames
        while start < num_frames:
            end = min(num_frames, start + size)
            windows.append((start, end))
            start = end
            step = 1 if self.growth > 1.0 else 0  # small sizes must still grow when growth > 1
            size = min(self.max_frames, max(size + step, int(size * self.growth)))
        return windows


@dataclass(frozen=True)
class EngineConfig:
    device: str = "cpu"
    dtype: str = "float32"
    # Intra-op threads for CPU inference; 0 keeps torch's default (one per core).
    threads: int = 0
    chunks: ChunkPolicy = ChunkPolicy()
    # Sentences longer than this many phoneme ids are split at word boundaries:
    # attention memory grows with the square of the length.
    max_sentence_phonemes: int = 800
    voices_dir: Path | None = None
    default_voice: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InvalidOptionError(f"dtype must be one of {', '.join(DTYPES)}, got '{self.dtype}'")
        if not _DEVICE.match(self.device):
            raise InvalidOptionError(f"device must be 'cpu', 'cuda' or 'cuda:N', got '{self.device}'")
        if self.voices_dir is not None and not isinstance(self.voices_dir, Path):
            object.__setattr__(self, "voices_dir", Path(self.voices_dir))
        if self.device == "cpu" and self.dtype != "float32":
            raise InvalidOptionError(f"{self.dtype} is supported on CUDA only; use float32 on the CPU")
        if self.threads < 0:
            raise InvalidOptionError(f"threads must be >= 0, got {self.threads}")
        if self.max_sentence_phonemes < 16:
            raise InvalidOptionError(f"max_sentence_phonemes must be >= 16, got {self.max_sentence_phonemes}")
