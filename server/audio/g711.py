"""G.711 μ-law and A-law, as telephony carries them (8 bits per sample).

Each 16-bit sample maps to one byte through a 65 536-entry table built once
from the companding rules, the way the reference implementations do it:
μ-law works on the sample's top 14 bits, A-law on its top 13 (arithmetic
shifts, so negative values round toward minus infinity), then sign, segment
and four quantization bits, with μ-law inverting all bits and A-law every
other bit. ``tests/test_audio.py`` checks all 65 536 inputs against Python's
``audioop`` (``audioop-lts`` on Python 3.13+).
"""

from __future__ import annotations

import numpy as np

_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)


def _mulaw_table() -> np.ndarray:
    value = _ALL_INT16 >> 2  # 14-bit
    negative = value < 0
    magnitude = np.minimum(np.where(negative, -value, value), 8159) + 33  # clip, then bias
    segment_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(segment_ends, magnitude, side="left")
    mantissa = (magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)


def _alaw_table() -> np.ndarray:
    value = _ALL_INT16 >> 3  # 13-bit
    negative = value < 0
    magnitude = np.where(negative, -value - 1, value)
    segment_ends = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    segment = np.searchsorted(segment_ends, magnitude, side="left")
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((magnitude >> shift) & 0x0F))
    return (code ^ np.where(negative, 0x55, 0xD5)).astype(np.uint8)


_MULAW = _mulaw_table()
_ALAW = _alaw_table()


def mulaw(samples: np.ndarray) -> bytes:
    """Signed 16-bit samples to G.711 μ-law bytes."""
    return _MULAW[samples.astype(np.int32) + 32768].tobytes()


def alaw(samples: np.ndarray) -> bytes:
    """Signed 16-bit samples to G.711 A-law bytes."""
    return _ALAW[samples.astype(np.int32) + 32768].tobytes()
