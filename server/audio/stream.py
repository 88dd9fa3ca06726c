"""One stream's way from the engine's float chunks to the bytes a client receives.

resample (stateful) → level (gain and limiter, memoryless) → cut into chunks of the asked duration (if any) → encode.
Each :class:`EncodedChunk` says which samples of the output it holds, at the
output rate, so offsets add up exactly from the first chunk to the last.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .formats import Encoding, OutputFormat
from .g711 import alaw, mulaw
from .ogg_opus import OggOpusEncoder
from .pcm import to_int16, wav_file
from .resample import StreamResampler

_PCM_ENCODERS = {
    Encoding.LINEAR16: lambda pcm: pcm.astype("<i2").tobytes(),
    Encoding.MULAW: mulaw,
    Encoding.ALAW: alaw,
}


@dataclass(frozen=True)
class EncodedChunk:
    data: bytes
    start_sample: int  # at the output rate, from the stream's start
    num_samples: int


class AudioEncoderStream:
    """Feed it the engine's chunks with :meth:`push`, then call :meth:`finish` once."""

    def __init__(self, output: OutputFormat) -> None:
        if output.encoding is Encoding.WAV:
            raise ValueError("WAV is written whole: use encode_whole")
        self.output = output
        self._resampler = StreamResampler(output.source_rate_hz, output.sample_rate_hz)
        self._opus = OggOpusEncoder(output.sample_rate_hz) if output.encoding is Encoding.OGG_OPUS else None
        self._headers = self._opus.headers() if self._opus else b""  # sent in front of the first chunk
        self._held = np.zeros(0, dtype=np.int16)  # less than one requested chunk
        self._position = 0

    @property
    def position(self) -> int:
        """Output samples delivered so far: where the next chunk starts."""
        return self._position

    def push(self, samples: np.ndarray) -> Iterator[EncodedChunk]:
        """The chunks ``samples`` completes, each encoded only when asked for (so the first can go out sooner)."""
        pcm = to_int16(self.output.level.apply(self._resampler.push(samples)))
        return self._chunks(pcm, last=False)

    def finish(self) -> list[EncodedChunk]:
        """The rest: the resampler's tail, a last short chunk, Opus's end-of-stream page."""
        return list(self._chunks(to_int16(self.output.level.apply(self._resampler.finish())), last=True))

    def _chunks(self, pcm: np.ndarray, last: bool) -> Iterator[EncodedChunk]:
        size = self.output.chunk_samples
        if size is None:
            pieces = [pcm] if len(pcm) or last else []
            if self._opus is not None and self._position == 0 and len(pcm) > self._opus.frame_samples and not last:
                # An Opus stream's first chunk is one frame: the client hears it after one
                # frame's encoding instead of a whole engine chunk's (about 0.14 s of audio).
                pieces = [pcm[: self._opus.frame_samples], pcm[self._opus.frame_samples :]]
        else:
            pcm = np.concatenate([self._held, pcm])
            whole = len(pcm) - len(pcm) % size
            pieces = [pcm[at : at + size] for at in range(0, whole, size)]
            self._held = pcm[whole:]
            if last and len(self._held):
                pieces.append(self._held)
        for index, piece in enumerate(pieces):
            chunk = self._encode(piece, last and index == len(pieces) - 1)
            if chunk is not None:
                yield chunk

    def _encode(self, pcm: np.ndarray, last: bool) -> EncodedChunk | None:
        if self._opus is None:
            if not len(pcm):
                return None
            data, samples = _PCM_ENCODERS[self.output.encoding](pcm), len(pcm)
        else:
            before = self._opus.samples_in
            data = self._opus.encode(pcm) + (self._opus.finish() if last else b"")
            samples = self._opus.samples_in - before
            if not data:
                return None  # not a whole Opus frame yet
        chunk = EncodedChunk(self._headers + data, self._position, samples)
        self._headers = b""
        self._position += samples
        return chunk


def encode_whole(output: OutputFormat, samples: np.ndarray) -> tuple[bytes, int]:
    """A whole text's audio in ``output`` (Synthesize): the bytes and the number of samples."""
    if output.encoding is Encoding.WAV:
        resampler = StreamResampler(output.source_rate_hz, output.sample_rate_hz)
        audio = output.level.apply(np.concatenate([resampler.push(samples), resampler.finish()]))
        return wav_file(audio, output.sample_rate_hz), len(audio)
    stream = AudioEncoderStream(output)
    chunks = [*stream.push(samples), *stream.finish()]
    return b"".join(c.data for c in chunks), sum(c.num_samples for c in chunks)
