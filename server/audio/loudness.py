"""Output level: integrated loudness (ITU-R BS.1770-4 / EBU R128), a fixed gain and a peak limiter.

Each voice's output is brought to a target loudness by one fixed gain, measured at load
(``docs/audio.md``), so a stream stays streamable and its chunks joined equal the whole.
Anything that raises the level can push peaks past full scale; :func:`limit` keeps them at
or under ``CEILING_DBFS`` with a soft knee. It is memoryless (each sample on its own),
so it too gives the same samples streamed or whole, and it leaves every sample below the
knee untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CEILING_DBFS = -1.0  # no output sample is louder than this once any gain is applied
KNEE_DB = 1.0  # the knee is this far under the ceiling: quieter samples pass the limiter unchanged
KNEE_DBFS = CEILING_DBFS - KNEE_DB
MIN_VOLUME_GAIN_DB, MAX_VOLUME_GAIN_DB = -96.0, 16.0  # a request's volume_gain_db (Google's range)

_BLOCK_SECONDS, _STEP = 0.4, 0.25  # 400 ms gating blocks, 75% overlap
_ABSOLUTE_GATE_LUFS, _RELATIVE_GATE_LU = -70.0, -10.0


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def _biquad_response(b: tuple[float, ...], a: tuple[float, ...], frequencies: np.ndarray, rate: int) -> np.ndarray:
    z = np.exp(-2j * np.pi * frequencies / rate)
    return (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)


def _k_weighting(frequencies: np.ndarray, rate: int) -> np.ndarray:
    """BS.1770's K-weighting (a high shelf, then a high pass) at ``frequencies``, for any rate.

    The two biquads are made from the analog parameters behind the standard's 48 kHz
    coefficients (Brecht De Man's derivation), so at 48 kHz they are the standard's own.
    """
    gain_db, q, fc = 3.99984385397, 0.7071752369554193, 1681.9744509555319
    k = math.tan(math.pi * fc / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.499666774155
    a0 = 1.0 + k / q + k * k
    shelf_b = ((vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0)
    shelf_a = (1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0)
    q, fc = 0.5003270373253953, 38.13547087613982
    k = math.tan(math.pi * fc / rate)
    a0 = 1.0 + k / q + k * k
    pass_b = (1.0, -2.0, 1.0)
    pass_a = (1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0)
    return _biquad_response(shelf_b, shelf_a, frequencies, rate) * _biquad_response(pass_b, pass_a, frequencies, rate)


def integrated_loudness(samples: np.ndarray, rate: int) -> float:
    """Integrated loudness of mono ``samples`` (floats, full scale 1.0) in LUFS; -inf when
    nothing passes the gates (silence, or less than one 400 ms block).

    The K-weighting filter is applied in the frequency domain (numpy only, no scipy),
    with a second of zeros after the signal for the filters' tails to ring out in.
    """
    x = np.asarray(samples, dtype=np.float64)
    block = int(_BLOCK_SECONDS * rate)
    if len(x) < block:
        return -math.inf
    size = len(x) + rate
    spectrum = np.fft.rfft(x, size) * _k_weighting(np.fft.rfftfreq(size, 1 / rate), rate)
    energy = np.fft.irfft(spectrum, size)[: len(x)] ** 2
    cumulative = np.concatenate([[0.0], np.cumsum(energy)])
    count = int(round((len(x) / rate - _BLOCK_SECONDS) / (_BLOCK_SECONDS * _STEP))) + 1
    starts = (np.arange(count) * _BLOCK_SECONDS * _STEP * rate).astype(int)
    ends = np.minimum(starts + block, len(x))
    powers = (cumulative[ends] - cumulative[starts]) / block
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(powers)
    gated = powers[loudness >= _ABSOLUTE_GATE_LUFS]
    if not len(gated):
        return -math.inf
    relative_gate = -0.691 + 10 * math.log10(gated.mean()) + _RELATIVE_GATE_LU
    gated = powers[(loudness > _ABSOLUTE_GATE_LUFS) & (loudness > relative_gate)]
    return -0.691 + 10 * math.log10(gated.mean()) if len(gated) else -math.inf


def limit(samples: np.ndarray, ceiling_dbfs: float = CEILING_DBFS) -> np.ndarray:
    """Peaks brought under ``ceiling_dbfs``: unchanged below the knee (``KNEE_DB`` under it),
    above it a tanh curve that meets the line with the same slope and never reaches the ceiling."""
    knee, ceiling = db_to_gain(ceiling_dbfs - KNEE_DB), db_to_gain(ceiling_dbfs)
    magnitude = np.abs(samples)
    over = magnitude > knee
    if not over.any():
        return samples
    room = ceiling - knee
    out = samples.copy()
    out[over] = np.sign(samples[over]) * (knee + room * np.tanh((magnitude[over] - knee) / room))
    return out


@dataclass(frozen=True)
class Level:
    """A stream's gain in dB (the voice's calibration plus the request's volume). Zero leaves
    the samples exactly as the model made them; any other gain is followed by the limiter,
    whose ceiling leaves room for what the encoding adds to peaks (see ``ENCODING_HEADROOM_DB``)."""

    gain_db: float = 0.0
    ceiling_dbfs: float = CEILING_DBFS

    def apply(self, samples: np.ndarray) -> np.ndarray:
        if self.gain_db == 0.0 or not len(samples):
            return samples
        scaled = samples * np.float32(db_to_gain(self.gain_db))
        return limit(scaled, self.ceiling_dbfs).astype(np.float32, copy=False)
