"""Which phoneme ids speak which word of the request text (for word timestamps).

espeak-ng phonemizes whole clauses, and its output does not say which
characters each phoneme came from: it spells out numbers ("42" becomes two
words), expands abbreviations ("Dr." becomes "doctor") and joins short
function words ("of the" becomes one word, "ʌvðə"). So each word of the text
is phonemized again on its own, and the words' phonemes, in order, are
aligned with the sentences' phonemes (``difflib``'s longest-matching-block
alignment, stress marks left out since they change in context). Every
phoneme the voice speaks then belongs to one word, and a word's ids run from
its first phoneme's to its last phoneme's. The phonemes the model hears are
untouched: this only reads them.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"\S+")
_STRESS = {"ˈ", "ˌ"}
_BOS, _PAD = "^", "_"


@dataclass(frozen=True)
class WordSpan:
    """One word of the request text and the ids of its sentence that speak it."""

    char_start: int  # [char_start, char_end) in the request text, in code points
    char_end: int
    first_id: int  # ids [first_id, end_id) of the sentence; empty if the voice says nothing for it
    end_id: int


def _is_sound(phoneme: str) -> bool:
    return not (phoneme.isspace() or phoneme in _STRESS or unicodedata.category(phoneme[0])[0] in "PC")


def sound_ids(phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]]) -> list[tuple[str, int, int]]:
    """Each sound of a sentence (not a pause, stress mark or unknown phoneme) with its ids ``[first, end)``,
    laid out as Piper's ``phonemes_to_ids`` lays them: BOS, pad, then each phoneme followed by a pad."""
    sounds = []
    position = len(id_map[_BOS]) + len(id_map[_PAD])
    for phoneme in phonemes:
        if phoneme not in id_map:  # dropped from the ids, as Piper does
            continue
        width = len(id_map[phoneme])
        if _is_sound(phoneme):
            sounds.append((phoneme, position, position + width))
        position += width + len(id_map[_PAD])
    return sounds


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """The token without leading and trailing punctuation: ``"(yes),"`` is the word ``yes``."""
    while start < end and unicodedata.category(text[start])[0] in "PC":
        start += 1
    while end > start and unicodedata.category(text[end - 1])[0] in "PC":
        end -= 1
    return start, end


def align_words(
    text: str,
    sentences: Sequence[Sequence[str]],
    phonemize_word: Callable[[str], list[str]],
    id_map: Mapping[str, Sequence[int]],
) -> list[list[WordSpan]]:
    """Per sentence (given as its phonemes), the words whose first phoneme is in it, in text order.

    Tokens that speak nothing on their own (a lone dash) are not words. A word
    whose phonemes the voice left out gets an empty span where it would be.
    """
    return align_word_sounds(text_words(text, phonemize_word), sentences, id_map)


def text_words(text: str, phonemize_word: Callable[[str], list[str]]) -> list[tuple[int, int, list[str]]]:
    """Each word of ``text`` that speaks something: ``(char_start, char_end, its sounds)``."""
    words = []
    for match in _TOKEN.finditer(text):
        sounds = [p for p in phonemize_word(match.group()) if _is_sound(p)]
        if not sounds:
            continue
        start, end = _trimmed(text, match.start(), match.end())
        if start == end:  # all punctuation, yet spoken ("&" is "and"): the whole token is the word
            start, end = match.start(), match.end()
        words.append((start, end, sounds))
    return words


def align_word_sounds(
    found: Sequence[tuple[int, int, Sequence[str]]],
    sentences: Sequence[Sequence[str]],
    id_map: Mapping[str, Sequence[int]],
) -> list[list[WordSpan]]:
    """:func:`align_words` for words already found: ``(char_start, char_end, phonemes)`` each,
    in order (the phonemes' sounds are aligned; pauses and stress marks are left out)."""
    words: list[tuple[int, int]] = []
    text_phonemes: list[str] = []
    text_labels: list[int] = []
    for start, end, phonemes in found:
        sounds = [p for p in phonemes if _is_sound(p)]
        if not sounds:
            continue
        text_phonemes += sounds
        text_labels += [len(words)] * len(sounds)
        words.append((start, end))

    spoken: list[str] = []
    places: list[tuple[int, int, int]] = []  # (sentence, first id, end id) of each spoken phoneme
    for index, phonemes in enumerate(sentences):
        for phoneme, first, end in sound_ids(phonemes, id_map):
            spoken.append(phoneme)
            places.append((index, first, end))

    owner = _owners(text_phonemes, text_labels, spoken)
    per_sentence: list[list[WordSpan]] = [[] for _ in sentences]
    spans_of: dict[int, list[int]] = {}
    for spoken_index, word in enumerate(owner):
        spans_of.setdefault(word, []).append(spoken_index)
    previous = (0, 0)  # (sentence, end id) of the word before
    for word, (start, end) in enumerate(words):
        indexes = spans_of.get(word)
        if not indexes or not per_sentence:
            sentence, at = previous
            span = WordSpan(start, end, at, at)
        else:
            sentence, first, _ = places[indexes[0]]
            last = max((places[i] for i in indexes if places[i][0] == sentence), key=lambda place: place[2])
            span = WordSpan(start, end, first, last[2])
            previous = (sentence, last[2])
        if per_sentence:
            per_sentence[sentence].append(span)
    return per_sentence


def _owners(text_phonemes: list[str], labels: list[int], spoken: list[str], block: int = 400) -> list[int]:
    """For each spoken phoneme, the index of the word it belongs to.

    Aligned a block of the text's phonemes at a time against a window of the
    spoken ones, each block cut at its last exact match, so long texts cost
    linear time (one alignment of 10 000 characters at once took a second).
    """
    owner: list[int] = []
    a = b = 0
    while a < len(text_phonemes) and b < len(spoken):
        last_block = a + block >= len(text_phonemes)
        a_end = len(text_phonemes) if last_block else a + block
        b_end = len(spoken) if last_block else min(len(spoken), b + 2 * block + 32)
        opcodes = difflib.SequenceMatcher(None, text_phonemes[a:a_end], spoken[b:b_end], autojunk=False).get_opcodes()
        if not last_block:  # keep up to the last exact match; the rest goes to the next block
            matched = [op for op in opcodes if op[0] == "equal"]
            if matched:
                _, _, a_cut, _, b_cut = matched[-1]
                opcodes = [op for op in opcodes if op[4] <= b_cut and op[2] <= a_cut]
            else:  # nothing in common in a whole window: align everything that is left at once
                a_end, b_end = len(text_phonemes), len(spoken)
                opcodes = difflib.SequenceMatcher(None, text_phonemes[a:], spoken[b:], autojunk=False).get_opcodes()
                a_cut, b_cut = a_end - a, b_end - b
        else:
            a_cut, b_cut = a_end - a, b_end - b
        owner += _owners_of(opcodes, labels[a : a + a_cut], a == 0, labels[a - 1] if a else 0)
        a, b = a + a_cut, b + b_cut
    # Spoken sounds after the last word's (or with no words at all) go with the last word.
    owner += [labels[-1]] * (len(spoken) - len(owner)) if labels else []
    return owner


def _owners_of(
    opcodes: Sequence[tuple[str, int, int, int, int]], labels: list[int], first: bool, before: int
) -> list[int]:
    owner: list[int] = []
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            owner += labels[i1:i2]
        elif tag == "replace":  # spread the spoken phonemes over the words they replace
            owner += [labels[i1 + (j - j1) * (i2 - i1) // (j2 - j1)] for j in range(j1, j2)]
        elif tag == "insert":  # sounds no word has on its own: they go with the word before
            owner += [labels[i1 - 1] if i1 else (labels[0] if first else before)] * (j2 - j1)
    return owner
