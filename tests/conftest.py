"""Shared fixtures and helpers for the engine tests.

Everything heavy (the default voice, the engine, Piper's onnxruntime reference
voice) is loaded once per session. Helpers keep the tests short and make sure
every synthesis they run is seeded, so the suite is deterministic.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import pytest

from syrinx.server.engine import (
    DecodeWindow,
    EncodedSentence,
    Engine,
    EngineConfig,
    SynthesisOptions,
    Voice,
    default_voice_files,
    load_voice,
)

# Noise-free synthesis: output is a pure function of the phoneme ids.
NO_NOISE = SynthesisOptions(noise_scale=0.0, noise_w=0.0)


@pytest.fixture(scope="session")
def config() -> EngineConfig:
    return EngineConfig()


@pytest.fixture(scope="session")
def voice(config: EngineConfig) -> Voice:
    return load_voice(default_voice_files(), config)


@pytest.fixture(scope="session")
def engine(config: EngineConfig) -> Engine:
    return Engine(config)


@pytest.fixture(scope="session")
def whole_engine(config: EngineConfig) -> Engine:
    """The engine with every sentence encoded whole (never head first): the reference for the
    head-first split, and what puts a long sentence into a padded batch with others."""
    return Engine(dataclasses.replace(config, head_first=False))


@pytest.fixture(scope="session")
def piper_voice(voice: Voice):
    """Piper's own voice (onnxruntime): the reference our torch model must match."""
    from piper import PiperVoice

    # Piper logs a warning per phoneme missing from the id map; tests feed such text on purpose.
    logging.getLogger("piper").setLevel(logging.ERROR)
    return PiperVoice.load(voice.info.model_path)


# -- helpers ----------------------------------------------------------------------------


def encode_text(engine: Engine, voice: Voice, text: str, options: SynthesisOptions) -> list[EncodedSentence]:
    """Phonemize ``text`` and encode all its sentences (in one batch, but for long ones encoded head first)."""
    sentences = voice.phonemizer.sentences(text)
    return engine.finish(engine.encode(engine.sentence_requests(voice, sentences, options)))


def decode_whole(engine: Engine, encoded: Sequence[EncodedSentence]) -> list[np.ndarray]:
    """Each sentence's audio decoded as one window (the reference for windowed decoding)."""
    return engine.decode([DecodeWindow(e, 0, e.num_frames) for e in encoded])


def decode_windows(
    engine: Engine, encoded: EncodedSentence, windows: Sequence[tuple[int, int]], batched: bool
) -> np.ndarray:
    """Decode ``[start, end)`` frame ranges of one sentence and concatenate their audio."""
    items = [DecodeWindow(encoded, start, end) for start, end in windows]
    if batched:
        parts = engine.decode(items)
    else:
        parts = [engine.decode([item])[0] for item in items]
    for (start, end), part in zip(windows, parts):
        assert part.shape == ((end - start) * encoded.voice.hop_length,), (start, end, part.shape)
        assert part.dtype == np.float32
    return np.concatenate(parts)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def relative_l2(ours: np.ndarray, reference: np.ndarray) -> float:
    assert ours.shape == reference.shape, f"shapes differ: {ours.shape} vs {reference.shape}"
    ref = reference.astype(np.float64)
    return float(np.linalg.norm(ours.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-12))


def fixed_windows(num_frames: int, size: int) -> list[tuple[int, int]]:
    """Consecutive windows of ``size`` frames (the last one may be shorter)."""
    return [(start, min(start + size, num_frames)) for start in range(0, num_frames, size)]
