"""Engine settings: one frozen, validated object built at start-up and passed down."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidOptionError
from .priority import PRIORITIES

DTYPES = ("float32", "float16", "bfloat16")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
_MAX_GROWTH = 16.0


def cpu_has_bfloat16() -> bool:
    """Whether oneDNN can run bfloat16 convolutions natively here (else they are emulated, slowly)."""
    import torch  # the config stays importable without loading torch until it is asked this

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass(frozen=True)
class ChunkPolicy:
    """How a sentence's latent frames are cut into decode windows.

    The first window is small so the first audio comes quickly; each later one
    grows by ``growth`` up to ``max_frames`` so the fixed cost of context
    frames is spread over more audio. One frame is ``hop_length`` samples
    (256 at 22.05 kHz, about 11.6 ms).

    Each window carries about 15 ms of context work on two CPU cores whatever
    its size, so few windows per sentence is what keeps throughput up under
    load: 12, 96, then 256 frames decoded a 3.4 s sentence in 136 ms, against
    168 ms for 12, 24, 48, 96, 128 (same run; 122 ms as one window). The
    second window (about 65 ms of work) still fits well inside the 139 ms the
    first one plays for; a 12 + 192 schedule did not always, and a listener
    ran dry.
    """

    first_frames: int = 12
    max_frames: int = 256
    growth: float = 8.0

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
    # "idle": the engine's threads yield a core to the server's own threads at once (``priority``).
    priority: str = "idle"
    chunks: ChunkPolicy = ChunkPolicy()
    # Sentences longer than this many phoneme ids are split at word boundaries:
    # attention memory grows with the square of the length.
    max_sentence_phonemes: int = 800
    voices_dir: Path | None = None
    default_voice: bool = True
    # CUDA only: replay single-sentence and single-window steps as CUDA graphs (see ``cuda``).
    cuda_graphs: bool = True
    # Encode long sentences head first (see ``Engine.encode``): their first audio comes
    # sooner. None: on for the CPU; off for CUDA, where a long sentence's encode is not
    # what its first audio waits for, and where it would take the sentence out of batching.
    head_first: bool | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InvalidOptionError(f"dtype must be one of {', '.join(DTYPES)}, got '{self.dtype}'")
        if not _DEVICE.match(self.device):
            raise InvalidOptionError(f"device must be 'cpu', 'cuda' or 'cuda:N', got '{self.device}'")
        if self.head_first is None:
            object.__setattr__(self, "head_first", self.device == "cpu")
        if self.voices_dir is not None and not isinstance(self.voices_dir, Path):
            object.__setattr__(self, "voices_dir", Path(self.voices_dir))
        if self.device == "cpu" and self.dtype == "float16":
            raise InvalidOptionError("float16 is supported on CUDA only; use float32 or bfloat16 on the CPU")
        if self.device == "cpu" and self.dtype == "bfloat16" and not cpu_has_bfloat16():
            raise InvalidOptionError("this CPU has no native bfloat16 (AVX512-BF16 or AMX); use float32")
        if self.threads < 0:
            raise InvalidOptionError(f"threads must be >= 0, got {self.threads}")
        if self.priority not in PRIORITIES:
            raise InvalidOptionError(f"engine priority must be one of {', '.join(PRIORITIES)}, got {self.priority!r}")
        if self.max_sentence_phonemes < 16:
            raise InvalidOptionError(f"max_sentence_phonemes must be >= 16, got {self.max_sentence_phonemes}")
