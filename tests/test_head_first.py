"""Long sentences encoded head first give exactly what encoding them whole gives.

The engine encodes a long sentence's first phonemes, enough for its first decode
window, and the rest once that window is out (``Engine.encode`` / ``finish``).
Noise is on (the voice's defaults) with a fixed seed, so a prior noise drawn in
another order than the whole sentence's would show.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import max_abs_diff

from syrinx.server.engine import AudioChunk, DecodeWindow, EngineConfig, SentenceStart, SynthesisOptions

SEEDED = SynthesisOptions(seed=21)
TOLERANCE = 1e-4
LONG = (
    "When the long winter finally ended, the villagers gathered in the square to celebrate with music, "
    "bread, and warm cider, telling stories of the storms they had survived together and of the spring to come."
)
SHORT = "The small dog ran quickly across the quiet green park."


def _encode(engine, voice, text: str, options: SynthesisOptions = SEEDED, with_words: bool = False):
    (sentence,) = voice.phonemizer.sentences(text, with_words=with_words)
    (encoded,) = engine.encode(engine.sentence_requests(voice, [sentence], options))
    return encoded


@pytest.fixture(scope="module")
def head(voice, engine):
    encoded = _encode(engine, voice, LONG)
    assert not encoded.complete
    return encoded


def test_the_rest_completes_a_head_into_the_whole_sentences_encoding(voice, engine, whole_engine, head):
    reference = _encode(whole_engine, voice, LONG)
    assert reference.complete
    ids = len(head.sentence.phoneme_ids)
    assert 0 < len(head.durations) <= ids // 2  # the head is a small part of the sentence
    assert np.array_equal(head.durations, reference.durations[: len(head.durations)])

    (whole,) = engine.finish([head])
    assert whole.complete and len(whole.durations) == ids
    assert np.array_equal(whole.durations, reference.durations)
    assert whole.num_frames == reference.num_frames == int(reference.durations.sum())
    assert (whole.z_p - reference.z_p).abs().max().item() <= 1e-5
    assert torch.equal(whole.z_p[:, : head.num_frames], head.z_p)  # the head's frames are kept as they were
    assert engine.finish([whole]) == [whole]  # a complete sentence needs nothing more


def test_the_first_window_decodes_the_same_from_the_head_as_from_the_whole_sentence(engine, head):
    (whole,) = engine.finish([head])
    first = engine.config.chunks.windows(head.num_frames)[0]
    assert first == engine.config.chunks.windows(whole.num_frames)[0]
    (from_head,) = engine.decode([DecodeWindow(head, *first)])
    (from_whole,) = engine.decode([DecodeWindow(whole, *first)])
    assert np.array_equal(from_head, from_whole)


def test_what_a_head_cannot_give_is_refused(engine, head):
    with pytest.raises(ValueError, match="encoded so far"):
        engine.decode([DecodeWindow(head, 0, head.num_frames)])  # its right context is not encoded yet
    with pytest.raises(ValueError, match="head first"):
        SentenceStart.of(head, 0, 0)  # its length is not known yet


def test_a_stream_sends_a_long_sentences_first_chunk_before_its_start_and_equals_encoding_it_whole(
    voice, engine, whole_engine
):
    text = f"{LONG} {SHORT}"
    events = list(engine.stream(voice, text, SEEDED))
    reference = list(whole_engine.stream(voice, text, SEEDED))
    assert [type(e) for e in events[:2]] == [AudioChunk, SentenceStart]
    assert isinstance(reference[0], SentenceStart)

    starts = [e for e in events if isinstance(e, SentenceStart)]
    reference_starts = [e for e in reference if isinstance(e, SentenceStart)]
    assert len(starts) == len(reference_starts) == 2
    for ours, theirs in zip(starts, reference_starts):
        assert (ours.index, ours.start_sample, ours.num_samples) == (
            theirs.index,
            theirs.start_sample,
            theirs.num_samples,
        )
        assert np.array_equal(ours.phoneme_samples, theirs.phoneme_samples)

    chunks = [e for e in events if isinstance(e, AudioChunk)]
    reference_chunks = [e for e in reference if isinstance(e, AudioChunk)]
    assert [(c.start_sample, c.last_in_sentence, c.last_in_stream) for c in chunks] == [
        (c.start_sample, c.last_in_sentence, c.last_in_stream) for c in reference_chunks
    ]
    audio = np.concatenate([c.samples for c in chunks])
    assert max_abs_diff(audio, np.concatenate([c.samples for c in reference_chunks])) <= TOLERANCE
    assert np.abs(audio).max() > 0.05
    assert max_abs_diff(engine.synthesize(voice, text, SEEDED), audio) <= TOLERANCE  # the unary path agrees


def test_timed_words_and_short_sentences_are_encoded_whole(voice, engine):
    assert _encode(engine, voice, LONG, with_words=True).complete  # word timings go out with the first chunk
    assert _encode(engine, voice, SHORT).complete


def test_the_split_is_on_for_the_cpu_and_off_for_cuda_unless_asked_for():
    assert EngineConfig().head_first is True
    assert EngineConfig(device="cuda").head_first is False
    assert EngineConfig(device="cuda", head_first=True).head_first is True
    assert EngineConfig(head_first=False).head_first is False


def test_a_heads_margin_is_the_reach_of_the_duration_predictor_and_the_encoders_last_block(voice):
    model = voice.model
    # Stochastic duration predictor: conditioning stack and three flows, each kernel 3 with dilations 1, 3, 9.
    assert model.dp.radius == 4 * (1 + 3 + 9)
    assert model.enc_p.encoder.top_radius == 2  # two kernel-3 feed-forward convs
    assert model.head_margin == 54
