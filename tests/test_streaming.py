"""Windowed (streaming) decoding gives exactly the whole-sentence audio.

Noise is on (the voice's defaults) with a fixed seed, so the latents are not
just the prior means and any context mistake shows.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from conftest import decode_whole, decode_windows, encode_text, fixed_windows, max_abs_diff

from syrinx.server.engine import (
    AudioChunk,
    ChunkPolicy,
    DecodeWindow,
    Engine,
    EngineConfig,
    SentenceStart,
    SynthesisOptions,
)

SEED = 2024
SEEDED = SynthesisOptions(seed=SEED)
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def sentence(voice, engine):
    """One sentence with default noise (about 200 frames) and its whole-sentence audio."""
    (encoded,) = encode_text(engine, voice, "Every window needs context on both sides.", SEEDED)
    assert 150 < encoded.num_frames < 400
    (whole,) = decode_whole(engine, [encoded])
    assert whole.shape == (encoded.num_samples,)
    assert np.abs(whole).max() > 0.05
    return encoded, whole


def test_noise_is_really_on(voice, engine, sentence):
    encoded, _ = sentence
    (noiseless,) = encode_text(
        engine, voice, "Every window needs context on both sides.", SynthesisOptions(noise_scale=0.0, seed=SEED)
    )
    assert noiseless.num_frames == encoded.num_frames  # same duration noise
    assert (encoded.z_p - noiseless.z_p).abs().max().item() > 0.1


# k=1 and 3 are far below the decoder's receptive field (11 frames) and the flow's (32);
# 43 is both together; some cases decode all windows in one batched call.
@pytest.mark.parametrize(
    ("size", "batched"),
    [(1, False), (2, True), (3, False), (5, True), (11, False), (12, True), (32, False), (43, True), (97, False)],
)
def test_fixed_size_windows_concatenate_to_whole_sentence(engine, sentence, size, batched):
    encoded, whole = sentence
    windows = fixed_windows(encoded.num_frames, size)
    assert len(windows) > 1
    audio = decode_windows(engine, encoded, windows, batched=batched)
    assert audio.shape == whole.shape
    assert max_abs_diff(audio, whole) <= TOLERANCE


@pytest.mark.parametrize(
    "policy",
    [
        ChunkPolicy(),
        ChunkPolicy(first_frames=1, max_frames=40, growth=1.5),
        ChunkPolicy(first_frames=4, max_frames=4, growth=1.0),
    ],
    ids=["default", "growing-from-1", "constant-4"],
)
def test_chunk_policy_windows_concatenate_to_whole_sentence(engine, sentence, policy):
    encoded, whole = sentence
    windows = policy.windows(encoded.num_frames)
    assert len(windows) > 2
    audio = decode_windows(engine, encoded, windows, batched=False)
    assert audio.shape == whole.shape
    assert max_abs_diff(audio, whole) <= TOLERANCE


def test_naive_chunking_without_context_would_not_match(engine, sentence):
    """Sanity check of the tests above: decoding chunks as if they were sentences of their own is audibly wrong."""
    encoded, whole = sentence
    parts = []
    for start, end in fixed_windows(encoded.num_frames, 8):
        alone = dataclasses.replace(encoded, z_p=encoded.z_p[:, start:end].clone())
        parts.append(engine.decode([DecodeWindow(alone, 0, alone.num_frames)])[0])
    assert max_abs_diff(np.concatenate(parts), whole) > 1e-2


@pytest.mark.parametrize(("start", "end"), [(-1, 5), (0, 0), (7, 7), (9, 3), (0, 10_000)])
def test_decode_rejects_windows_outside_the_sentence(engine, sentence, start, end):
    encoded, _ = sentence
    with pytest.raises(ValueError, match="outside sentence"):
        engine.decode([DecodeWindow(encoded, start, end)])


def test_decode_of_nothing_is_nothing(engine):
    assert engine.decode([]) == []
    assert engine.encode([]) == []


# -- receptive field ----------------------------------------------------------------------


def test_receptive_field_values(voice, engine):
    field = voice.model.receptive_field
    assert field.flow == voice.model.flow.radius == 32
    assert 0 < field.decoder_left < 32 and 0 < field.decoder_right < 32


def _perturbed(encoded, frame: int, delta: float = 1.0):
    z_p = encoded.z_p.clone()
    z_p[:, frame] += delta
    return dataclasses.replace(encoded, z_p=z_p)


def test_frames_beyond_receptive_field_do_not_influence_a_window(voice, engine, sentence):
    """Change z_p one frame outside a window's documented field: the window's audio stays the same.

    Decoded as one whole sentence, so the engine's own windowing plays no part. (That a
    frame exactly at the field's edge does reach the window cannot be seen here: through
    flow and decoder together its influence is around 1e-17. The two tests below check
    each part's field for tightness in float64 instead.)
    """
    encoded, whole = sentence
    field, hop = voice.model.receptive_field, voice.hop_length
    start = encoded.num_frames // 2 - 4
    end = start + 8
    left = start - field.flow - field.decoder_left  # first frame the window depends on
    right = end - 1 + field.flow + field.decoder_right  # last frame the window depends on
    assert left - 1 >= 0 and right + 1 < encoded.num_frames

    def window_change(frame: int, delta: float) -> float:
        (audio,) = decode_whole(engine, [_perturbed(encoded, frame, delta)])
        return max_abs_diff(audio[start * hop : end * hop], whole[start * hop : end * hop])

    for delta in (1.0, 10.0):
        assert window_change(left - 1, delta) <= 1e-6
        assert window_change(right + 1, delta) <= 1e-6
    # The same perturbation well inside the field is clearly audible: the method can see influence.
    assert window_change(start - 3, 1.0) > 1e-3
    assert window_change(end + 2, 1.0) > 1e-3


@pytest.fixture(scope="module")
def float64_flow_and_decoder(voice):
    """Double-precision copies of the voice's flow and decoder.

    At the very edge of a receptive field the influence of one frame is tiny (a product
    of edge taps: about 1e-10 for the flow, 1e-9 for the decoder's right side), far
    below float32 resolution, so "does it reach?" is asked in float64, where it is
    far above rounding noise and a frame out of reach leaves the output bit-identical.
    """
    flow = copy.deepcopy(voice.model.flow).double()
    decoder = copy.deepcopy(voice.model.dec).double()
    return flow, decoder


EDGE_INFLUENCE = 1e-13  # float64 rounding noise is around 1e-16


def test_flow_radius_is_tight(engine, voice, sentence, float64_flow_and_decoder):
    """Flow output at frame c depends on z_p at c +- radius, and on nothing further away."""
    flow, _ = float64_flow_and_decoder
    encoded, _ = sentence
    radius = voice.model.receptive_field.flow
    c = encoded.num_frames // 2
    z_p = encoded.z_p.double()[None]
    mask = torch.ones(1, 1, encoded.num_frames, dtype=torch.float64)

    with torch.inference_mode():

        def flow_at_c(frame: int | None) -> torch.Tensor:
            zz = z_p.clone()
            if frame is not None:
                zz[:, :, frame] += 1.0
            return flow.reverse(zz, mask)[0, :, c]

        base = flow_at_c(None)
        for sign in (-1, 1):
            edge = (flow_at_c(c + sign * radius) - base).abs().max().item()
            assert edge > EDGE_INFLUENCE, f"frame c{sign * radius:+d} should reach c"
            assert torch.equal(flow_at_c(c + sign * (radius + 1)), base), f"frame c{sign * (radius + 1):+d} reaches c"


def test_decoder_field_is_tight(engine, voice, sentence, float64_flow_and_decoder):
    """Audio of latent frame c depends on z at c - left .. c + right and nothing else."""
    flow, decoder = float64_flow_and_decoder
    encoded, _ = sentence
    field, hop = voice.model.receptive_field, voice.hop_length
    # A segment reaching well beyond the claimed field; the decoder runs on it alone to keep float64 cheap.
    reach = 2 * max(field.decoder_left, field.decoder_right) + 8
    c = encoded.num_frames // 2
    assert c - reach >= 0 and c + reach < encoded.num_frames
    with torch.inference_mode():
        z = flow.reverse(encoded.z_p.double()[None], torch.ones(1, 1, encoded.num_frames, dtype=torch.float64))
        segment = z[:, :, c - reach : c + reach + 1]

        def frame_audio(offset: int | None) -> torch.Tensor:
            zz = segment.clone()
            if offset is not None:
                zz[:, :, reach + offset] += 1.0
            return decoder(zz)[0, reach * hop : (reach + 1) * hop]

        base = frame_audio(None)
        assert (frame_audio(-field.decoder_left) - base).abs().max().item() > EDGE_INFLUENCE
        assert (frame_audio(field.decoder_right) - base).abs().max().item() > EDGE_INFLUENCE
        assert torch.equal(frame_audio(-field.decoder_left - 1), base)
        assert torch.equal(frame_audio(field.decoder_right + 1), base)


# -- Engine.stream ----------------------------------------------------------------------

STREAM_TEXT = "First sentence here. Is this the second one? Yes, and this is the third!"


@pytest.fixture(scope="module")
def streamed(voice, engine):
    return list(engine.stream(voice, STREAM_TEXT, SEEDED))


def _by_sentence(events):
    """[(SentenceStart, [AudioChunk, ...]), ...] checking that each start precedes its chunks."""
    grouped = []
    for event in events:
        if isinstance(event, SentenceStart):
            grouped.append((event, []))
        else:
            assert isinstance(event, AudioChunk)
            assert grouped, "audio before any SentenceStart"
            assert event.sentence_index == grouped[-1][0].index
            grouped[-1][1].append(event)
    return grouped


def test_stream_event_order(voice, streamed):
    grouped = _by_sentence(streamed)
    sentences = voice.phonemizer.sentences(STREAM_TEXT)
    assert len(sentences) == 3
    assert [start.index for start, _ in grouped] == [0, 1, 2]
    for (start, chunks), sentence in zip(grouped, sentences):
        assert chunks, f"sentence {start.index} has no audio"
        assert [c.last_in_sentence for c in chunks] == [False] * (len(chunks) - 1) + [True]
        assert start.phoneme_ids == sentence.phoneme_ids
        assert start.phonemes == sentence.phonemes


def test_stream_offsets_are_contiguous(streamed):
    position = 0
    for start, chunks in _by_sentence(streamed):
        assert start.start_sample == position
        for chunk in chunks:
            assert chunk.start_sample == position
            assert chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1 and chunk.samples.size > 0
            position += chunk.samples.size
        assert position == start.start_sample + start.num_samples


def test_stream_equals_synthesize(voice, engine, streamed):
    audio = np.concatenate([e.samples for e in streamed if isinstance(e, AudioChunk)])
    whole = engine.synthesize(voice, STREAM_TEXT, SEEDED)
    assert audio.shape == whole.shape
    assert max_abs_diff(audio, whole) <= TOLERANCE
    assert np.abs(audio).max() <= 1.0


def test_stream_phoneme_samples(voice, streamed):
    for start, chunks in _by_sentence(streamed):
        samples = np.asarray(start.phoneme_samples)
        assert samples.shape == (len(start.phoneme_ids),)
        assert int(samples.sum()) == start.num_samples == sum(c.samples.size for c in chunks)
        assert np.all(samples % voice.hop_length == 0)
        assert np.all(samples >= voice.hop_length)  # every id lasts at least one frame


def test_stream_chunks_follow_the_chunk_policy(voice, engine, streamed):
    hop = voice.hop_length
    first = engine.config.chunks.first_frames
    for start, chunks in _by_sentence(streamed):
        frames = start.num_samples // hop
        assert frames > first, "test text should have sentences longer than the first chunk"
        assert chunks[0].samples.size == first * hop
        expected = [(end - begin) * hop for begin, end in engine.config.chunks.windows(frames)]
        assert [c.samples.size for c in chunks] == expected


def test_stream_with_custom_chunk_policy(voice, streamed):
    policy = ChunkPolicy(first_frames=3, max_frames=20, growth=1.5)
    engine = Engine(EngineConfig(chunks=policy))
    events = list(engine.stream(voice, STREAM_TEXT, SEEDED))
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    reference = np.concatenate([e.samples for e in streamed if isinstance(e, AudioChunk)])
    assert len(chunks) > len([e for e in streamed if isinstance(e, AudioChunk)])
    assert max(c.samples.size for c in chunks) == 20 * voice.hop_length
    assert max_abs_diff(np.concatenate([c.samples for c in chunks]), reference) <= TOLERANCE


def test_stream_can_be_consumed_partly(voice, engine):
    """A client may stop listening: the stream is a generator that yields as it goes and can be closed."""
    stream = engine.stream(voice, STREAM_TEXT, SEEDED)
    first = next(stream)
    assert isinstance(first, SentenceStart) and first.index == 0
    second = next(stream)
    assert isinstance(second, AudioChunk) and second.sentence_index == 0 and second.start_sample == 0
    stream.close()


def test_sentence_shorter_than_the_first_chunk_is_one_chunk(voice, engine):
    events = list(engine.stream(voice, "A.", SynthesisOptions(seed=1, length_scale=0.1)))
    start, *chunks = events
    assert isinstance(start, SentenceStart)
    assert start.num_samples < engine.config.chunks.first_frames * voice.hop_length
    assert len(chunks) == 1 and chunks[0].last_in_sentence
    assert chunks[0].samples.size == start.num_samples == int(np.sum(start.phoneme_samples))
