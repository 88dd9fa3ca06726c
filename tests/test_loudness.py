"""Output level: our BS.1770 meter against pyloudnorm's, the limiter, each voice's calibration,
and ``volume_gain_db``, measured on what clients receive at every encoding."""

from __future__ import annotations

import io
import math
import warnings
import wave

import grpc
import numpy as np
import pyloudnorm
import pytest
from corpus import CORPUS
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from service_fixtures import ServerThread
from test_audio import decode_opus, speech_like

from syrinx.server.audio.loudness import CEILING_DBFS, KNEE_DBFS, Level, db_to_gain, integrated_loudness, limit
from syrinx.server.config import DEFAULT_LOUDNESS_LUFS, ServerConfig
from syrinx.server.engine import AudioChunk, SynthesisOptions
from syrinx.server.scheduler import SchedulerConfig
from syrinx.v1 import synthesizer_pb2 as pb

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference G.711 (the audioop-lts package on Python 3.13+)

SEED = 5
TEXT = " ".join(CORPUS[1:9])  # about 20 s: statements, numbers, a question, an exclamation


def _pyloudnorm(samples: np.ndarray, rate: int, filters: str = "DeMan") -> float:
    return pyloudnorm.Meter(rate, filter_class=filters).integrated_loudness(samples.astype(np.float64))


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 48000])
def test_our_meter_agrees_with_pyloudnorm(rate):
    samples = speech_like(6.0, rate, seed=rate) * 0.5
    samples[rate : 2 * rate] = 0.0  # a silent second: the gates must drop it
    ours = integrated_loudness(samples, rate)
    # pyloudnorm's "DeMan" filters are the standard's own coefficients at 48 kHz, derived for any rate.
    assert ours == pytest.approx(_pyloudnorm(samples, rate), abs=0.01)
    # Its default filters approximate them (a shelf at 1500 Hz): close, not equal.
    assert ours == pytest.approx(_pyloudnorm(samples, rate, "K-weighting"), abs=0.3)


def test_silence_and_short_audio_have_no_loudness():
    assert integrated_loudness(np.zeros(48000), 48000) == -math.inf
    assert integrated_loudness(np.ones(100), 48000) == -math.inf


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 64), elements=st.floats(-8.0, 8.0, width=32)))
def test_the_limiter_keeps_every_peak_under_the_ceiling_and_keeps_the_waveforms_order(samples):
    limited = limit(samples)
    assert np.all(np.abs(limited) <= db_to_gain(CEILING_DBFS))
    order = np.argsort(samples, kind="stable")
    assert np.all(np.diff(limited[order]) >= 0)  # monotonic: no sample overtakes another
    quiet = np.abs(samples) <= db_to_gain(KNEE_DBFS)
    assert np.array_equal(limited[quiet], samples[quiet])  # under the knee, untouched


def test_no_gain_is_bit_exact():
    samples = speech_like(1.0) * 1.5  # even past full scale: no gain, no limiter
    assert Level(0.0).apply(samples) is samples


# -- what a client receives ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    running = ServerThread(ServerConfig(host="127.0.0.1", port=0, scheduler=SchedulerConfig(max_streams=4)))
    running.make_ready()
    yield running
    running.stop()


def _received(
    server, encoding, rate: int = 0, volume: float = 0.0, stream: bool = False, text: str = TEXT
) -> tuple[np.ndarray, int]:
    """The audio a client gets, decoded to floats, and its rate. Unary by default: a stream is
    paced to real time, and these tests need the audio, not its pace."""
    config = pb.AudioConfig(encoding=encoding, sample_rate_hz=rate, volume_gain_db=volume)
    if stream:
        request = pb.StreamSynthesizeRequest(text=text, seed=SEED, audio_config=config)
        replies = list(server.stub.StreamSynthesize(request))
        data, rate = b"".join(r.audio for r in replies), replies[0].format.sample_rate_hz
    else:
        reply = server.stub.Synthesize(pb.SynthesizeRequest(text=text, seed=SEED, audio_config=config))
        data, rate = reply.audio, reply.format.sample_rate_hz
    if encoding == pb.AUDIO_ENCODING_OGG_OPUS:
        return decode_opus(data)[1].astype(np.float64), rate
    if encoding == pb.AUDIO_ENCODING_WAV:
        with wave.open(io.BytesIO(data)) as wav:
            data = wav.readframes(wav.getnframes())
    elif encoding == pb.AUDIO_ENCODING_MULAW:
        data = audioop.ulaw2lin(data, 2)
    elif encoding == pb.AUDIO_ENCODING_ALAW:
        data = audioop.alaw2lin(data, 2)
    return np.frombuffer(data, "<i2") / 32768.0, rate


ENCODINGS = [
    (pb.AUDIO_ENCODING_LINEAR16, 0),
    (pb.AUDIO_ENCODING_LINEAR16, 16000),
    (pb.AUDIO_ENCODING_WAV, 0),
    (pb.AUDIO_ENCODING_MULAW, 8000),
    (pb.AUDIO_ENCODING_ALAW, 8000),
    (pb.AUDIO_ENCODING_OGG_OPUS, 48000),
]


@pytest.mark.parametrize(("encoding", "rate"), ENCODINGS)
def test_every_encoding_is_at_the_target_loudness_with_peaks_under_the_ceiling(server, encoding, rate):
    samples, rate = _received(server, encoding, rate)
    assert _pyloudnorm(samples, rate) == pytest.approx(DEFAULT_LOUDNESS_LUFS, abs=1.0)
    # Measured after decoding, as a listener's player hears it (G.711 and Opus included).
    assert 20 * math.log10(np.abs(samples).max()) <= CEILING_DBFS


def test_volume_gain_db_is_that_much_louder(server):
    base, rate = _received(server, pb.AUDIO_ENCODING_LINEAR16)
    louder, _ = _received(server, pb.AUDIO_ENCODING_LINEAR16, volume=6.0)
    quieter, _ = _received(server, pb.AUDIO_ENCODING_LINEAR16, volume=-10.0)
    assert _pyloudnorm(louder, rate) - _pyloudnorm(base, rate) == pytest.approx(6.0, abs=0.5)
    assert _pyloudnorm(quieter, rate) - _pyloudnorm(base, rate) == pytest.approx(-10.0, abs=0.1)
    assert 20 * math.log10(np.abs(louder).max()) <= CEILING_DBFS


def test_streamed_equals_whole_with_the_gain_and_limiter(server):
    for encoding, rate in ((pb.AUDIO_ENCODING_LINEAR16, 16000), (pb.AUDIO_ENCODING_MULAW, 8000)):
        streamed, _ = _received(server, encoding, rate, volume=12.0, stream=True, text=CORPUS[2])
        whole, _ = _received(server, encoding, rate, volume=12.0, text=CORPUS[2])
        assert np.array_equal(streamed, whole)


def test_without_a_target_the_output_is_the_models_own(engine, voice):
    server = ServerThread(ServerConfig(host="127.0.0.1", port=0, loudness_target_lufs=None))
    try:
        server.make_ready()
        received, _ = _received(server, pb.AUDIO_ENCODING_LINEAR16)
    finally:
        server.stop()
    chunks = [c.samples for c in engine.stream(voice, TEXT, SynthesisOptions(seed=SEED)) if isinstance(c, AudioChunk)]
    expected = (np.clip(np.concatenate(chunks), -1, 1) * 32767).astype(np.int16)  # the server's windows, unscaled
    assert np.array_equal(received, expected / 32768.0)


@pytest.mark.parametrize("volume", [16.5, -96.5, float("nan")])
def test_volume_out_of_range_is_invalid_argument(server, volume):
    with pytest.raises(grpc.RpcError) as caught:
        _received(server, pb.AUDIO_ENCODING_LINEAR16, volume=volume)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "volume_gain_db" in caught.value.details()
