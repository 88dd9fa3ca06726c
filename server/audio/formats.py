"""What audio a client may ask for, checked once before any synthesis starts."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from .errors import UnsupportedAudioError
from .loudness import CEILING_DBFS, MAX_VOLUME_GAIN_DB, MIN_VOLUME_GAIN_DB, Level
from .ogg_opus import FRAME_MS, OPUS_RATES

MIN_RATE_HZ, MAX_RATE_HZ = 8000, 48000
MIN_CHUNK_MS, MAX_CHUNK_MS = 5, 2000


class Encoding(enum.Enum):
    """Values are the API's names, so that error messages speak the client's language."""

    LINEAR16 = "AUDIO_ENCODING_LINEAR16"  # raw signed 16-bit little-endian PCM
    MULAW = "AUDIO_ENCODING_MULAW"  # G.711 μ-law, 8 bits per sample
    ALAW = "AUDIO_ENCODING_ALAW"  # G.711 A-law, 8 bits per sample
    WAV = "AUDIO_ENCODING_WAV"  # a whole RIFF/WAVE file (unary only)
    OGG_OPUS = "AUDIO_ENCODING_OGG_OPUS"  # Opus in Ogg pages


STREAMABLE = (Encoding.LINEAR16, Encoding.MULAW, Encoding.ALAW, Encoding.OGG_OPUS)
# What an encoding can add to a peak once decoded, taken off the limiter's ceiling so that the
# audio a client decodes still peaks at or under -1 dBFS: G.711 rounds to levels about 3% apart
# near full scale; Opus is lossy, and its decoded peaks overshot by 0.6 dB in tests/test_loudness.py.
ENCODING_HEADROOM_DB = {Encoding.MULAW: 0.5, Encoding.ALAW: 0.5, Encoding.OGG_OPUS: 1.0}


@dataclass(frozen=True)
class AudioRequest:
    """The client's wishes: 0 means the voice's native rate, and chunks as the engine makes them."""

    encoding: Encoding = Encoding.LINEAR16
    sample_rate_hz: int = 0
    chunk_ms: int = 0
    volume_gain_db: float = 0.0  # on top of the voice's calibrated level

    def resolve(self, native_rate_hz: int, streaming: bool, voice_gain_db: float = 0.0) -> OutputFormat:
        """The exact output for a voice of ``native_rate_hz`` whose calibration gain is
        ``voice_gain_db``, or :class:`UnsupportedAudioError`."""
        encoding, rate = self.encoding, self.sample_rate_hz or native_rate_hz
        if not MIN_VOLUME_GAIN_DB <= self.volume_gain_db <= MAX_VOLUME_GAIN_DB:  # NaN fails too
            raise UnsupportedAudioError(
                f"volume_gain_db {self.volume_gain_db:g} is out of range: use {MIN_VOLUME_GAIN_DB:g} to "
                f"{MAX_VOLUME_GAIN_DB:g} dB (0 keeps the server's level)"
            )
        if streaming and encoding not in STREAMABLE:
            allowed = ", ".join(e.value for e in STREAMABLE)
            raise UnsupportedAudioError(f"{encoding.value} is for Synthesize only; a stream can use {allowed}")
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise UnsupportedAudioError(
                f"sample_rate_hz {rate} is out of range: use {MIN_RATE_HZ} to {MAX_RATE_HZ}, or 0 for the voice's native {native_rate_hz}"
            )
        if encoding is Encoding.OGG_OPUS and rate not in OPUS_RATES:
            native = " (the voice's native rate)" if not self.sample_rate_hz else ""
            raise UnsupportedAudioError(
                f"{encoding.value} cannot take {rate} Hz{native}; set sample_rate_hz to one of {', '.join(map(str, OPUS_RATES))}"
            )
        level = Level(voice_gain_db + self.volume_gain_db, CEILING_DBFS - ENCODING_HEADROOM_DB.get(encoding, 0.0))
        return OutputFormat(encoding, rate, native_rate_hz, self._chunk_samples(rate, streaming), level)

    def _chunk_samples(self, rate: int, streaming: bool) -> int | None:
        ms = self.chunk_ms
        if ms == 0:
            return None
        if not streaming:
            raise UnsupportedAudioError("chunk_duration_ms applies to StreamSynthesize only; leave it 0 for Synthesize")
        if not MIN_CHUNK_MS <= ms <= MAX_CHUNK_MS:
            raise UnsupportedAudioError(
                f"chunk_duration_ms {ms} is out of range: use {MIN_CHUNK_MS} to {MAX_CHUNK_MS}, or 0"
            )
        if self.encoding is Encoding.OGG_OPUS and ms % FRAME_MS:
            raise UnsupportedAudioError(
                f"{Encoding.OGG_OPUS.value} chunks hold whole {FRAME_MS} ms Opus frames; use a multiple of {FRAME_MS} ms"
            )
        if rate * ms % 1000:
            raise UnsupportedAudioError(
                f"chunk_duration_ms {ms} is not a whole number of samples at {rate} Hz; use a multiple of "
                f"{1000 // math.gcd(rate, 1000)} ms"
            )
        return rate * ms // 1000


@dataclass(frozen=True)
class OutputFormat:
    encoding: Encoding
    sample_rate_hz: int
    source_rate_hz: int  # the voice's rate, what the engine produces
    chunk_samples: int | None  # exact samples per chunk (the last may be shorter); None: as produced
    level: Level = Level()  # gain and limiter, applied at the output rate

    def output_position(self, source_sample: int) -> int:
        """Where a sample of the engine's audio lands in the output (the resampler keeps time exactly)."""
        return round(source_sample * self.sample_rate_hz / self.source_rate_hz)
