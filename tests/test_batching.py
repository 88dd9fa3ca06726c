"""Batching is invisible: a sentence encodes and decodes the same whatever shares its batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import decode_whole, max_abs_diff

from syrinx.server.engine import DecodeWindow, SynthesisOptions
from syrinx.server.engine.engine import FRAME_BUCKET, _frame_bucket, _keep_bucket

TOLERANCE = 1e-4

TEXTS = [
    "Hello.",  # 1 word
    "The small dog ran quickly across the quiet green park.",  # 10 words
    "When the long winter finally ended, the villagers gathered in the square to celebrate with music, "
    "bread, and warm cider, telling stories of storms they had survived together.",  # 30 words
]


@pytest.fixture(scope="module")
def engine(whole_engine):
    """Every sentence encoded whole, so the long one really shares the padded batch."""
    return whole_engine


@pytest.fixture(scope="module")
def sentences(voice):
    result = []
    for text in TEXTS:
        (sentence,) = voice.phonemizer.sentences(text)
        result.append(sentence)
    lengths = [len(s.phoneme_ids) for s in result]
    assert lengths == sorted(lengths) and lengths[-1] > 5 * lengths[0]  # really mixed lengths
    return result


def _assert_same_encoding(a, b):
    assert a.sentence is b.sentence
    assert np.array_equal(a.durations, b.durations)
    assert a.z_p.shape == b.z_p.shape
    assert (a.z_p - b.z_p).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize(
    "options",
    [SynthesisOptions(seed=11), SynthesisOptions(seed=12, length_scale=1.3, noise_scale=0.3, noise_w=1.2)],
    ids=["defaults", "custom"],
)
def test_batched_encode_equals_single_encodes(voice, engine, sentences, options):
    batched = engine.encode(engine.sentence_requests(voice, sentences, options))
    # Identical requests again (same seed: same per-sentence random streams), encoded one at a time.
    alone = [engine.encode([request])[0] for request in engine.sentence_requests(voice, sentences, options)]
    assert len(batched) == len(alone) == len(sentences)
    for a, b in zip(batched, alone):
        _assert_same_encoding(a, b)
        assert len(a.durations) == len(a.sentence.phoneme_ids)
        assert int(a.durations.sum()) == a.num_frames


def test_batch_order_does_not_matter(voice, engine, sentences):
    options = SynthesisOptions(seed=5)
    forward = engine.encode(engine.sentence_requests(voice, sentences, options))
    requests = engine.sentence_requests(voice, sentences, options)
    backward = engine.encode(requests[::-1])[::-1]  # results follow the requests' order
    for a, b in zip(forward, backward):
        _assert_same_encoding(a, b)


def test_requests_with_different_controls_share_a_batch(voice, engine, sentences):
    """Per-request length scale and noise are honoured inside one padded batch."""
    option_sets = [
        SynthesisOptions(seed=1, length_scale=0.7),
        SynthesisOptions(seed=2, noise_scale=0.0, noise_w=0.0),
        SynthesisOptions(seed=3, length_scale=1.6, noise_w=1.5),
    ]

    def requests():
        return [engine.sentence_requests(voice, [s], o)[0] for s, o in zip(sentences, option_sets)]

    batched = engine.encode(requests())
    alone = [engine.encode([r])[0] for r in requests()]
    for a, b in zip(batched, alone):
        _assert_same_encoding(a, b)


@pytest.fixture(scope="module")
def encoded(voice, engine, sentences):
    encoded = engine.encode(engine.sentence_requests(voice, sentences, SynthesisOptions(seed=77)))
    return encoded, decode_whole(engine, encoded)


def _windows(encoded):
    short, medium, long = encoded
    assert short.num_frames > 12 and long.num_frames > 300
    return [
        DecodeWindow(long, 100, 140),  # middle, 40 frames
        DecodeWindow(short, 0, short.num_frames),  # a whole (short) sentence
        DecodeWindow(medium, 3, 4),  # 1 frame near the start
        DecodeWindow(long, 0, 17),  # sentence start
        DecodeWindow(medium, medium.num_frames - 9, medium.num_frames),  # sentence end
        DecodeWindow(long, 200, 205),
        DecodeWindow(medium, 40, 100),
    ]


def test_batched_decode_equals_single_decodes(engine, encoded):
    sentences, _ = encoded
    windows = _windows(sentences)
    batched = engine.decode(windows)
    assert len(batched) == len(windows)
    for window, audio in zip(windows, batched):
        (alone,) = engine.decode([window])
        assert audio.shape == ((window.end - window.start) * window.sentence.voice.hop_length,)
        assert max_abs_diff(audio, alone) <= TOLERANCE


def test_batched_windows_match_whole_sentence_audio(voice, engine, encoded):
    sentences, wholes = encoded
    hop = voice.hop_length
    windows = _windows(sentences)
    by_sentence = {id(s): w for s, w in zip(sentences, wholes)}
    for window, audio in zip(windows, engine.decode(windows)):
        whole = by_sentence[id(window.sentence)]
        assert max_abs_diff(audio, whole[window.start * hop : window.end * hop]) <= TOLERANCE


def test_whole_sentences_decode_the_same_batched_or_alone(engine, encoded):
    sentences, wholes = encoded
    for sentence, whole in zip(sentences, wholes):
        (alone,) = engine.decode([DecodeWindow(sentence, 0, sentence.num_frames)])
        assert max_abs_diff(alone, whole) <= TOLERANCE


def test_synthesize_equals_per_sentence_synthesis(voice, engine):
    """synthesize() batches all sentences of a text; the audio is the sentences' audio in order."""
    text = " ".join(TEXTS[:2])
    options = SynthesisOptions(seed=31)
    audio = engine.synthesize(voice, text, options)
    requests = engine.sentence_requests(voice, voice.phonemizer.sentences(text), options)
    parts = [decode_whole(engine, engine.encode([r]))[0] for r in requests]
    assert max_abs_diff(audio, np.concatenate(parts)) <= TOLERANCE


@pytest.fixture(scope="module")
def twin(voice, config):
    """The same voice loaded a second time under another name: a different Voice in the same batch."""
    from syrinx.server.engine import VoiceFiles, load_voice

    files = VoiceFiles("en_US-twin-medium", voice.info.model_path, Path(str(voice.info.model_path) + ".json"))
    twin = load_voice(files, config)
    assert twin is not voice and twin.model is not voice.model
    return twin


def test_batches_mixing_voices_keep_request_order(voice, engine, sentences, twin):
    def requests():
        ours = engine.sentence_requests(voice, sentences, SynthesisOptions(seed=41))
        theirs = engine.sentence_requests(twin, sentences, SynthesisOptions(seed=42))
        return [ours[0], theirs[2], theirs[0], ours[2], ours[1], theirs[1]]

    batched = engine.encode(requests())
    alone = [engine.encode([r])[0] for r in requests()]
    assert [e.voice.name for e in batched] == [voice.name, twin.name, twin.name, voice.name, voice.name, twin.name]
    for a, b in zip(batched, alone):
        assert a.voice is b.voice
        _assert_same_encoding(a, b)

    windows = [DecodeWindow(e, 2, min(e.num_frames, 2 + 7 * (i + 1))) for i, e in enumerate(batched)]
    for window, audio in zip(windows, engine.decode(windows)):
        (single,) = engine.decode([window])
        assert max_abs_diff(audio, single) <= TOLERANCE


def test_frame_lengths_fall_into_few_buckets():
    """Every step's shape is one of a few, so the kernels and packed weights kept per shape
    stop growing however many sentences of new lengths arrive (docs/reliability.md, soak)."""
    buckets = [_frame_bucket(n) for n in range(1, 1025)]
    assert all(n <= b <= max(n + FRAME_BUCKET - 1, int(n * 1.25)) for n, b in enumerate(buckets, start=1))
    assert all(_frame_bucket(b) == b for b in buckets)
    assert len(set(buckets)) <= 8 + 4 * 4  # multiples of 8 to 64, then 4 per octave up to 1024


def test_kept_frames_are_widened_to_few_offsets():
    for lo in range(40):
        for hi in range(lo + 1, 100):
            kept_lo, kept_hi = _keep_bucket(lo, hi, 96)
            assert kept_lo <= lo and kept_lo % FRAME_BUCKET == 0
            assert min(hi, 96) <= kept_hi <= 96 and (kept_hi % FRAME_BUCKET == 0 or kept_hi == 96)
