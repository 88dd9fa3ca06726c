"""The audio layer on its own: G.711, streamed resampling, chunking and Ogg Opus (no model, no gRPC)."""

from __future__ import annotations

import io
import struct
import sys
import warnings

import av
import numpy as np
import pytest
import soxr

from syrinx.server.audio import (
    AudioEncoderStream,
    AudioRequest,
    Encoding,
    UnsupportedAudioError,
    encode_whole,
    to_int16,
)
from syrinx.server.audio.g711 import alaw, mulaw
from syrinx.server.audio.ogg_opus import OPUS_RATES
from syrinx.server.audio.resample import StreamResampler

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference G.711 (the audioop-lts package on Python 3.13+)

NATIVE = 22050
RATES = (8000, 12000, 16000, 22050, 24000, 44100, 48000)


def speech_like(seconds: float, rate: int = NATIVE, seed: int = 0) -> np.ndarray:
    """A sweep plus noise in [-1, 1]: energy across the band, so resampling errors would show."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    sweep = 0.5 * np.sin(2 * np.pi * (100 + 2000 * t / max(seconds, 1e-9)) * t)
    return (sweep + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def cut(samples: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Split into chunks of the given sizes, cycling."""
    chunks, at, i = [], 0, 0
    while at < len(samples):
        chunks.append(samples[at : at + sizes[i % len(sizes)]])
        at += sizes[i % len(sizes)]
        i += 1
    return chunks


def stream(output_request: AudioRequest, samples: np.ndarray, sizes: list[int]):
    encoder = AudioEncoderStream(output_request.resolve(NATIVE, streaming=True))
    chunks = [c for piece in cut(samples, sizes) for c in encoder.push(piece)]
    return [*chunks, *encoder.finish()]


# -- G.711 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ours, reference", [(mulaw, audioop.lin2ulaw), (alaw, audioop.lin2alaw)])
def test_g711_is_bit_exact_against_audioop_for_every_16_bit_value(ours, reference):
    every_value = np.arange(-32768, 32768, dtype=np.int16)
    assert ours(every_value) == reference(every_value.astype("<i2").tobytes(), 2)


# -- resampling ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("sizes", [[1, 7, 300], [441], [3072, 8192, 21504]])
def test_streamed_resampling_equals_one_shot(rate, sizes):
    samples = speech_like(1.3)
    resampler = StreamResampler(NATIVE, rate)
    streamed = np.concatenate([resampler.push(c) for c in cut(samples, sizes)] + [resampler.finish()])
    whole = soxr.resample(samples, NATIVE, rate) if rate != NATIVE else samples
    assert len(streamed) == len(whole) == round(len(samples) * rate / NATIVE)
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


@pytest.mark.parametrize("rate", (8000, 44100, 48000))
def test_a_60_second_stream_does_not_drift(rate):
    samples = speech_like(60.0)
    chunks = stream(AudioRequest(Encoding.LINEAR16, rate), samples, [3072, 8192, 22016, 22016])
    expected = round(len(samples) * rate / NATIVE)
    assert sum(c.num_samples for c in chunks) == expected
    assert sum(len(c.data) for c in chunks) == 2 * expected
    assert [c.start_sample for c in chunks] == list(np.cumsum([0] + [c.num_samples for c in chunks[:-1]]))


# -- chunk size ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding, rate, ms, bytes_per_sample",
    [
        (Encoding.MULAW, 8000, 20, 1),
        (Encoding.ALAW, 8000, 20, 1),
        (Encoding.LINEAR16, 16000, 10, 2),
        (Encoding.LINEAR16, 22050, 40, 2),
    ],
)
def test_chunks_hold_exactly_the_requested_duration(encoding, rate, ms, bytes_per_sample):
    samples = speech_like(1.01)
    chunks = stream(AudioRequest(encoding, rate, ms), samples, [3072, 8192])
    size = rate * ms // 1000
    assert all(c.num_samples == size for c in chunks[:-1]) and 0 < chunks[-1].num_samples <= size
    assert all(len(c.data) == c.num_samples * bytes_per_sample for c in chunks)
    assert sum(c.num_samples for c in chunks) == round(len(samples) * rate / NATIVE)


def test_mulaw_stream_is_the_resampled_audio_in_g711():
    samples = speech_like(0.5)
    chunks = stream(AudioRequest(Encoding.MULAW, 8000, 20), samples, [3072])
    expected = to_int16(soxr.resample(samples, NATIVE, 8000)).astype("<i2").tobytes()
    assert b"".join(c.data for c in chunks) == audioop.lin2ulaw(expected, 2)


# -- Ogg Opus ------------------------------------------------------------------------------


def ogg_pages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(flags, granule, payload) of each page; fails unless ``data`` is whole pages only."""
    pages, at = [], 0
    while at < len(data):
        magic, version, flags, granule, _, _, _, segments = struct.unpack_from("<4sBBqIIIB", data, at)
        assert magic == b"OggS" and version == 0, f"no page starts at byte {at}"
        lacing = data[at + 27 : at + 27 + segments]
        size = 27 + segments + sum(lacing)
        pages.append((flags, granule, data[at + 27 + segments : at + size]))
        at += size
    assert at == len(data), "a page runs past the end"
    return pages


def decode_opus(data: bytes) -> tuple[int, np.ndarray]:
    with av.open(io.BytesIO(data), format="ogg") as container:  # FFmpeg's demuxer rejects pages with a bad CRC
        frames = [frame.to_ndarray()[0] for frame in container.decode(audio=0)]
        return container.streams.audio[0].codec_context.sample_rate, np.concatenate(frames)


@pytest.mark.parametrize("rate", OPUS_RATES)
@pytest.mark.parametrize("ms", [0, 20, 100])
def test_opus_stream_decodes_to_the_right_duration_and_every_chunk_is_whole_pages(rate, ms):
    samples = speech_like(1.234)
    chunks = stream(AudioRequest(Encoding.OGG_OPUS, rate, ms), samples, [3072, 8192, 21504])
    expected = round(len(samples) * rate / NATIVE)
    assert sum(c.num_samples for c in chunks) == expected
    pages = [ogg_pages(c.data) for c in chunks]  # each chunk parses as whole pages on its own
    assert pages[0][0][2].startswith(b"OpusHead") and pages[0][1][2].startswith(b"OpusTags")
    assert struct.unpack_from("<I", pages[0][0][2], 12)[0] == rate  # the input rate, in the header
    assert pages[-1][-1][0] & 0x04  # end of stream on the last page
    if ms:
        assert all(c.num_samples == rate * ms // 1000 for c in chunks[:-1])
    decoded_rate, decoded = decode_opus(b"".join(c.data for c in chunks))
    assert decoded_rate == 48000  # Opus decodes at 48 kHz; the duration is exact
    assert len(decoded) == expected * 48000 // rate


def test_opus_audio_is_the_input():
    samples = speech_like(1.0)
    chunks = stream(AudioRequest(Encoding.OGG_OPUS, 48000), samples, [3072])
    _, decoded = decode_opus(b"".join(c.data for c in chunks))
    reference = soxr.resample(samples, NATIVE, 48000)
    correlation = np.corrcoef(decoded[2000:-2000], reference[2000:-2000])[0, 1]
    assert correlation > 0.9  # lossy, but the same sound and time-aligned (pre-skip honoured)


def test_an_opus_stream_starts_with_a_one_frame_chunk_then_chunks_as_produced():
    encoder = AudioEncoderStream(AudioRequest(Encoding.OGG_OPUS, 48000).resolve(NATIVE, streaming=True))
    first = list(encoder.push(speech_like(3072 / NATIVE)))  # the engine's first window: 12 frames
    assert [c.num_samples for c in first] == [960, 3840]  # 20 ms at once, then the rest (the filter holds some back)
    second = list(encoder.push(speech_like(0.5)))
    assert len(second) == 1 and second[0].num_samples % 960 == 0


def test_opus_without_pyav_is_a_clear_error_and_other_encodings_still_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` meets where PyAV is not installed
    with pytest.raises(UnsupportedAudioError, match="needs PyAV"):
        AudioEncoderStream(AudioRequest(Encoding.OGG_OPUS, 48000).resolve(NATIVE, streaming=True))
    pcm = AudioEncoderStream(AudioRequest(Encoding.LINEAR16).resolve(NATIVE, streaming=True))
    assert sum(c.num_samples for c in pcm.push(speech_like(0.1))) == round(0.1 * NATIVE)


# -- whole files and validation ------------------------------------------------------------


def test_whole_wav_at_another_rate():
    import wave

    samples = speech_like(0.7)
    data, count = encode_whole(AudioRequest(Encoding.WAV, 16000).resolve(NATIVE, streaming=False), samples)
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getframerate() == 16000 and wav.getnframes() == count == round(len(samples) * 16000 / NATIVE)


@pytest.mark.parametrize(
    "request_, streaming, words",
    [
        (AudioRequest(Encoding.WAV), True, "AUDIO_ENCODING_WAV is for Synthesize only"),
        (AudioRequest(sample_rate_hz=96000), True, "use 8000 to 48000"),
        (AudioRequest(Encoding.OGG_OPUS, 44100), True, "cannot take 44100 Hz; set sample_rate_hz to one of 8000"),
        (AudioRequest(chunk_ms=20), False, "StreamSynthesize only"),
        (AudioRequest(chunk_ms=3), True, "use 5 to 2000"),
        (AudioRequest(Encoding.MULAW, 44100, 25), True, "use a multiple of 10 ms"),
    ],
)
def test_unsupported_requests_say_what_is_allowed(request_, streaming, words):
    with pytest.raises(UnsupportedAudioError, match=words):
        request_.resolve(NATIVE, streaming)


def test_native_rate_and_default_chunks_pass_audio_through_unchanged():
    samples = speech_like(0.3)
    chunks = stream(AudioRequest(), samples, [3072])
    assert [c.num_samples for c in chunks] == [len(c) for c in cut(samples, [3072])]
    assert b"".join(c.data for c in chunks) == to_int16(samples).astype("<i2").tobytes()
