"""Float samples to 16-bit PCM, bare or in a WAV file."""

from __future__ import annotations

import io
import wave

import numpy as np


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to signed 16-bit integers (clipped, truncated toward zero)."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] to little-endian signed 16-bit PCM."""
    return to_int16(samples).astype("<i2").tobytes()


def wav_file(samples: np.ndarray, sample_rate: int) -> bytes:
    """A complete mono 16-bit WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm16(samples))
    return buffer.getvalue()
