"""Word timestamps: the text's words mapped onto the phonemes the voice speaks, and timed by the model."""

from __future__ import annotations

import difflib

import numpy as np
import pytest
from corpus import CORPUS

from syrinx.server.engine import AudioChunk, SentenceStart, SynthesisOptions
from syrinx.server.engine.words import _is_sound, sound_ids

SURROUNDING = ".,;:!?\"'()"  # what a word is written without (the API's rule, spelled out here)


def expected_words(text: str) -> list[str]:
    return [token.strip(SURROUNDING) for token in text.split() if token.strip(SURROUNDING)]


@pytest.mark.parametrize("text", CORPUS)
def test_every_word_of_the_text_is_found_once_in_order_with_its_offsets(voice, text):
    sentences = voice.phonemizer.sentences(text, with_words=True)
    words = [w for s in sentences for w in s.words]
    assert [text[w.char_start : w.char_end] for w in words] == expected_words(text)
    assert all(a.char_end <= b.char_start for a, b in zip(words, words[1:]))


@pytest.mark.parametrize("text", CORPUS)
def test_asking_for_words_does_not_change_what_the_model_hears(voice, text):
    plain = voice.phonemizer.sentences(text)
    with_words = voice.phonemizer.sentences(text, with_words=True)
    assert [s.phoneme_ids for s in plain] == [s.phoneme_ids for s in with_words]


def sentence_starts(engine, voice, text: str) -> tuple[list[SentenceStart], int]:
    events = list(engine.stream(voice, text, SynthesisOptions(seed=1, word_timestamps=True)))
    total = sum(len(e.samples) for e in events if isinstance(e, AudioChunk))
    return [e for e in events if isinstance(e, SentenceStart)], total


@pytest.mark.parametrize("text", CORPUS[:8] + ["Hello there. Dr. Smith paid $42.50 for 3 books & 2 pens - really!"])
def test_word_times_are_ordered_do_not_overlap_and_cover_every_spoken_phoneme(engine, voice, text):
    starts, total = sentence_starts(engine, voice, text)
    id_map = voice.phonemizer._id_map
    spans = [start.word_samples(w) for start in starts for w in start.words]
    assert all(0 <= a <= b <= total for a, b in spans)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    for start in starts:  # every id of a sound (not a pause or punctuation) lies inside a word
        covered = {i for w in start.words for i in range(w.first_id, w.end_id)}
        assert {i for _, first, end in sound_ids(start.phonemes, id_map) for i in range(first, end)} <= covered


def test_each_word_gets_the_phonemes_it_has_on_its_own(voice):
    """The alignment's quality on the corpus: a word's phonemes in its sentence against the word alone."""
    scores = []
    for text in CORPUS:
        for sentence in voice.phonemizer.sentences(text, with_words=True):
            sounds = sound_ids(sentence.phonemes, voice.phonemizer._id_map)
            for word in sentence.words:
                in_context = [p for p, first, _ in sounds if word.first_id <= first < word.end_id]
                alone = [
                    p for p in voice.phonemizer._word_phonemes(text[word.char_start : word.char_end]) if _is_sound(p)
                ]
                scores.append(difflib.SequenceMatcher(None, in_context, alone).ratio())
    assert np.median(scores) == 1.0  # most words keep exactly their own phonemes
    assert np.mean(np.array(scores) >= 0.5) >= 0.95  # and nearly all share most of them


def test_a_long_text_is_aligned_block_by_block_without_losing_a_word(voice):
    text = " ".join(CORPUS * 3)  # about 4000 characters: many alignment blocks
    sentences = voice.phonemizer.sentences(text, with_words=True)
    words = [w for s in sentences for w in s.words]
    assert [text[w.char_start : w.char_end] for w in words] == expected_words(text)
    # Same words get the same sounds in every repetition: no drift between blocks.
    per_copy = len(words) // 3
    sizes = [w.end_id - w.first_id for w in words]
    assert sizes[:per_copy] == sizes[per_copy : 2 * per_copy] == sizes[2 * per_copy :]
