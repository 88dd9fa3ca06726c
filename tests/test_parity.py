"""Parity with Piper: same phoneme ids, and (noise off) the same audio as its onnxruntime model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NO_NOISE, decode_whole, relative_l2
from corpus import CORPUS
from piper.config import SynthesisConfig


def _piper_sentence_ids(piper_voice, text: str) -> list[tuple[int, ...]]:
    return [tuple(piper_voice.phonemes_to_ids(phonemes)) for phonemes in piper_voice.phonemize(text)]


def test_corpus_is_varied_enough():
    assert len(CORPUS) >= 20
    assert any(len(text.split()) >= 40 for text in CORPUS)
    assert any("?" in text for text in CORPUS) and any("!" in text for text in CORPUS)
    assert any(";" in text for text in CORPUS) and any('"' in text for text in CORPUS)


@pytest.mark.parametrize("text", CORPUS)
def test_phoneme_ids_match_piper(voice, piper_voice, text):
    ours = voice.phonemizer.sentences(text)
    assert [s.phoneme_ids for s in ours] == _piper_sentence_ids(piper_voice, text)
    assert [list(s.phonemes) for s in ours] == piper_voice.phonemize(text)
    assert all(s.unknown_phonemes == () for s in ours)


@pytest.fixture(scope="module")
def parity_audio(voice, engine, piper_voice):
    """For every sentence of the corpus: (ours, onnxruntime's) audio with noise off.

    All sentences are encoded in one padded batch, but for the long ones, which the
    engine encodes head first and then finishes; each is decoded as one window.
    """
    items = [(text, sentence) for text in CORPUS for sentence in voice.phonemizer.sentences(text)]
    encoded = engine.encode(engine.sentence_requests(voice, [s for _, s in items], NO_NOISE))
    assert sum(not e.complete for e in encoded) >= 2  # so the head-first split is checked too
    encoded = engine.finish(encoded)
    reference_config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=1.0)
    results: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {text: [] for text in CORPUS}
    for (text, sentence), enc in zip(items, encoded):
        assert enc.sentence is sentence
        (ours,) = decode_whole(engine, [enc])
        reference = np.asarray(piper_voice.phoneme_ids_to_audio(list(sentence.phoneme_ids), reference_config))
        results[text].append((ours, reference))
    return results


@pytest.mark.parametrize("text", CORPUS)
def test_audio_matches_onnxruntime(parity_audio, text):
    pairs = parity_audio[text]
    assert pairs, "no sentences"
    for ours, reference in pairs:
        assert ours.dtype == np.float32
        assert ours.shape == reference.shape, "different number of samples (durations differ)"
        assert np.all(np.isfinite(ours))
        assert np.abs(reference).max() > 0.01, "reference is silent: the comparison would mean nothing"
        assert relative_l2(ours, reference) <= 1e-3


def test_parity_uses_voice_defaults_when_unset(voice, engine, piper_voice):
    """With noise off, leaving length_scale unset means the voice's own (Piper's) default."""
    text = "Defaults should match Piper."
    (sentence,) = voice.phonemizer.sentences(text)
    (encoded,) = engine.encode(engine.sentence_requests(voice, [sentence], NO_NOISE))
    (ours,) = decode_whole(engine, [encoded])
    reference = piper_voice.phoneme_ids_to_audio(
        list(sentence.phoneme_ids), SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    )
    assert ours.shape == reference.shape
    assert relative_l2(ours, reference) <= 1e-3


# Id sequences shorter than the text encoder's relative-attention window (4 positions each side),
# encoded in one padded batch with a long sentence: edge cases of the attention and of the padding.
SHORT_IDS = [
    (1,),
    (1, 0),
    (1, 0, 2),
    (1, 0, 14, 0, 2),
    (1, 0, 14, 0, 20, 0, 2),
    (1, 0, 14, 0, 20, 0, 33, 0, 2),
    (1, 0, 14, 0, 20, 0, 33, 0, 38, 0, 2),
]


def test_very_short_id_sequences_match_onnxruntime(voice, engine, piper_voice):
    from syrinx.server.engine.phonemizer import PhonemizedSentence

    long_sentence = voice.phonemizer.sentences(CORPUS[1])[0]
    sentences = [PhonemizedSentence(("?",) * len(ids), ids) for ids in SHORT_IDS] + [long_sentence]
    encoded = engine.encode(engine.sentence_requests(voice, sentences, NO_NOISE))
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    for enc, ours in zip(encoded, decode_whole(engine, encoded)):
        reference = np.atleast_1d(piper_voice.phoneme_ids_to_audio(list(enc.sentence.phoneme_ids), config))
        assert ours.shape == reference.shape, f"{len(enc.sentence.phoneme_ids)} ids: durations differ"
        assert relative_l2(ours, reference) <= 1e-3, f"{len(enc.sentence.phoneme_ids)} ids"
