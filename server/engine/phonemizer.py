"""Text to phoneme ids exactly as Piper does it.

Piper's own phonemizer (espeak-ng via ``piper-tts``) does the work: the same
sentence splitting, ``[[ raw phonemes ]]`` blocks, vowel clusters and id map,
so the model hears what it was trained on. On top of it this module adds what
a server needs: control characters are removed, text with nothing to speak is
a clear error, phonemes missing from the voice's id map are reported rather
than dropped unseen, and overlong sentences are split at word boundaries. It
also replaces piper-tts's espeak bridge with calls that release the GIL and do not leak
(see ``espeak_bridge``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..text.speech import Pause, Pronounced, SentenceEnd, Speech, Spelled, Words
from . import espeak_bridge
from .errors import InvalidTextError, listed, quoted
from .espeak_bridge import ESPEAK_LOCK
from .words import WordSpan, align_word_sounds, align_words, text_words

# C0/C1 control characters except tab/newline/carriage return, which become spaces.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_WHITESPACE_CONTROL = re.compile(r"[\t\r\n]+")
_WORD_BREAK = " "
_PAUSE = ","  # the phoneme a pause of set length is spoken as (its duration is forced)
_TERMINATORS = frozenset(".!?…")
_WORD_CACHE_SIZE = 20_000  # words phonemized alone for word timestamps; common words repeat


@dataclass(frozen=True)
class PhonemizedSentence:
    phonemes: tuple[str, ...]
    phoneme_ids: tuple[int, ...]
    # Phonemes espeak produced that the voice's id map lacks; Piper skips them.
    unknown_phonemes: tuple[str, ...] = ()
    # The words of the text this sentence starts speaking (only when asked for: see words.py).
    words: tuple[WordSpan, ...] = ()
    # Per id, a speaking rate on top of the request's (SSML prosody); empty: all 1.0.
    rates: tuple[float, ...] = ()
    # (id index, seconds): ids whose duration is set rather than predicted (SSML breaks).
    pauses: tuple[tuple[int, float], ...] = ()


class Phonemizer(Protocol):
    """Text to the sentences a voice speaks (what :class:`Voice` needs from its text front-end)."""

    def sentences(self, text: str, with_words: bool = False) -> list[PhonemizedSentence]: ...

    def speak(self, speech: Speech, with_words: bool = False) -> list[PhonemizedSentence]: ...

    def ipa_phonemes(self, ipa: str) -> list[str]: ...


@dataclass
class _Draft:
    """A sentence being put together from pieces: phonemes, each with its rate and forced pause."""

    phonemes: list[str]
    rates: list[float]
    pauses: list[float | None]

    @classmethod
    def empty(cls) -> _Draft:
        return cls([], [], [])

    def add(self, phonemes: list[str], rate: float) -> None:
        self.phonemes += phonemes
        self.rates += [rate] * len(phonemes)
        self.pauses += [None] * len(phonemes)

    def add_word(self, phonemes: list[str], rate: float) -> None:
        """Phonemes of a word of their own: word breaks on both sides."""
        if self.phonemes and self.phonemes[-1] != _WORD_BREAK:
            self.add([_WORD_BREAK], rate)
        self.add(phonemes, rate)
        self.add([_WORD_BREAK], rate)

    def pause(self, seconds: float, id_map: Mapping[str, Any]) -> None:
        """A pause of ``seconds``: the sentence's last mark takes it, or a comma does."""
        while self.phonemes and self.phonemes[-1] == _WORD_BREAK:
            self.phonemes.pop(), self.rates.pop(), self.pauses.pop()
        if self.phonemes and unicodedata.category(self.phonemes[-1][0]).startswith("P") and self.phonemes[-1] in id_map:
            self.pauses[-1] = (self.pauses[-1] or 0.0) + seconds
        else:
            self.add([_PAUSE], 1.0)
            self.pauses[-1] = seconds
        self.add([_WORD_BREAK], 1.0)


class PiperPhonemizer:
    def __init__(self, voice_config: Mapping[str, Any], max_sentence_phonemes: int) -> None:
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        # PiperVoice's phonemize/phonemes_to_ids need only its config; no ONNX session is made.
        self._piper = PiperVoice(session=None, config=PiperConfig.from_dict(dict(voice_config)))
        with ESPEAK_LOCK:
            self._piper.phonemize("ready.")  # starts espeak-ng, which the bridge's replacement calls
        espeak_bridge.plug()
        self._id_map = self._piper.config.phoneme_id_map
        self._max_phonemes = max_sentence_phonemes
        self._word_cache: dict[str, list[str]] = {}

    def _espeak(self, text: str) -> list[list[str]]:
        """Piper's phonemize: espeak-ng's sentences of ``text``, each a list of phonemes."""
        with ESPEAK_LOCK:  # piper sets its voice, then asks for the clauses: one state, process-wide
            return self._piper.phonemize(text)

    def sentences(self, text: str, with_words: bool = False) -> list[PhonemizedSentence]:
        """``text``'s sentences as Piper speaks them; ``with_words`` also maps its words to their ids."""
        result = self._sentences(text)
        if with_words:
            spans = align_words(text, [s.phonemes for s in result], self._word_phonemes, self._id_map)
            result = [replace(sentence, words=tuple(words)) for sentence, words in zip(result, spans)]
        return result

    def ipa_phonemes(self, ipa: str) -> list[str]:
        """IPA given by a client as this voice's phonemes, or :class:`InvalidTextError` naming
        what the voice cannot say. Normalized as espeak's output is (decomposed, clusters merged)."""
        phonemes = list(unicodedata.normalize("NFD", _WHITESPACE_CONTROL.sub(" ", ipa).strip()))
        clusters = self._piper.config.vowel_clusters
        if clusters:
            from piper.phonemize_espeak import _merge_known_vowel_clusters

            phonemes = _merge_known_vowel_clusters(phonemes, clusters)
        unknown = sorted({p for p in phonemes if p not in self._id_map})
        if unknown:
            raise InvalidTextError(
                f"IPA {quoted(ipa)!r} has phonemes this voice lacks ({listed(unknown, ' ')}); "
                "use the phonemes of the voice's phoneme map"
            )
        if not any(self._speakable(p) for p in phonemes):
            raise InvalidTextError(f"IPA {quoted(ipa)!r} has nothing to speak")
        return phonemes

    def speak(self, speech: Speech, with_words: bool = False) -> list[PhonemizedSentence]:
        """:meth:`sentences` for speech with markup (SSML, lexicons): plain text takes the
        same path as :meth:`sentences` and gives the same result."""
        plain = speech.plain_text
        if plain is not None:
            return self.sentences(plain, with_words)
        drafts: list[_Draft] = []
        draft = _Draft.empty()
        found: list[tuple[int, int, list[str]]] = []  # words, with request spans, for word timings

        def end_sentence() -> None:
            nonlocal draft
            if any(self._speakable(p) for p in draft.phonemes):
                drafts.append(draft)
                draft = _Draft.empty()

        for piece in speech.pieces:
            if isinstance(piece, Words):
                text = _WHITESPACE_CONTROL.sub(" ", _CONTROL.sub(" ", piece.text))  # same length: sources hold
                if draft.phonemes and draft.phonemes[-1] != _WORD_BREAK and text[0].isspace():
                    draft.add([_WORD_BREAK], piece.rate)
                if not any(char.isalnum() for char in text):  # spaces and marks between other pieces
                    draft.add([c for c in text if c in self._id_map and not c.isspace()], piece.rate)
                    if any(c in _TERMINATORS for c in text):
                        end_sentence()
                    continue
                for index, phonemes in enumerate(self._espeak(text)):
                    if index:
                        end_sentence()
                    draft.add(phonemes, piece.rate)
                if text.rstrip() and text.rstrip()[-1] in _TERMINATORS:
                    end_sentence()
                elif text[-1].isspace():
                    draft.add([_WORD_BREAK], piece.rate)
                if with_words:
                    found += [(*piece.source(a, b), sounds) for a, b, sounds in text_words(text, self._word_phonemes)]
            elif isinstance(piece, Spelled):
                for char, source in zip(piece.text, piece.sources):
                    sounds = self._character_phonemes(char)
                    if sounds:
                        draft.add_word(sounds, piece.rate)
                        found.append((*source, sounds))
            elif isinstance(piece, Pronounced):
                sounds = self.ipa_phonemes(piece.ipa)
                draft.add_word(sounds, piece.rate)
                found.append((*piece.source, sounds))
            elif isinstance(piece, Pause):
                if piece.seconds > 0:
                    draft.pause(piece.seconds, self._id_map)
            elif isinstance(piece, SentenceEnd):
                end_sentence()
        if drafts and not any(self._speakable(p) for p in draft.phonemes):
            for seconds in draft.pauses:  # pauses after the last words end their sentence
                if seconds:
                    drafts[-1].pause(seconds, self._id_map)
        else:
            end_sentence()
        if not drafts:
            raise InvalidTextError("the request has nothing to speak (no pronounceable words)")
        result = [self._drafted(d, start, end) for d in drafts for start, end in self._split_long(d.phonemes)]
        if with_words:
            spans = align_word_sounds(found, [s.phonemes for s in result], self._id_map)
            result = [replace(sentence, words=_merged(words)) for sentence, words in zip(result, spans)]
        return result

    def _character_phonemes(self, char: str) -> list[str]:
        """A letter's or digit's name on its own ("A" is "ay", not the article)."""
        if char.isspace():
            return []
        probe = f"{char}." if char.isalpha() else char
        phonemes = [p for p in self._word_phonemes(probe) if p not in _TERMINATORS]
        return phonemes if any(self._speakable(p) for p in phonemes) else []

    def _drafted(self, draft: _Draft, start: int, end: int) -> PhonemizedSentence:
        """Phonemes ``[start, end)`` of ``draft`` as ids, with each id's rate and forced pause,
        laid out as Piper's ``phonemes_to_ids`` lays them out (BOS, pad, each phoneme and a pad, EOS)."""
        pad, bos, eos = len(self._id_map["_"]), len(self._id_map["^"]), len(self._id_map["$"])
        kept = [i for i in range(start, end) if draft.phonemes[i] in self._id_map]
        phonemes = draft.phonemes[start:end]
        first_rate = draft.rates[kept[0]] if kept else 1.0
        rates = [first_rate] * (bos + pad)
        pauses: list[tuple[int, float]] = []
        for i in kept:
            width = len(self._id_map[draft.phonemes[i]]) + pad
            pause = draft.pauses[i]
            if pause is not None:
                pauses += [(len(rates), pause)] + [(len(rates) + k, 0.0) for k in range(1, width)]
            rates += [draft.rates[i]] * width
        rates += [draft.rates[kept[-1]] if kept else 1.0] * eos
        sentence = self._to_ids(phonemes)
        assert len(rates) == len(sentence.phoneme_ids)
        return replace(sentence, rates=tuple(rates) if any(r != 1.0 for r in rates) else (), pauses=tuple(pauses))

    def _word_phonemes(self, word: str) -> list[str]:
        """One word phonemized on its own (only to find it in its sentence's phonemes); cached."""
        cached = self._word_cache.get(word)
        if cached is None:
            clean = _CONTROL.sub("", word)
            cached = [p for sentence in self._espeak(clean) for p in sentence] if clean else []
            if len(self._word_cache) >= _WORD_CACHE_SIZE:
                self._word_cache.clear()
            self._word_cache[word] = cached
        return cached

    def _sentences(self, text: str) -> list[PhonemizedSentence]:
        clean = _WHITESPACE_CONTROL.sub(" ", _CONTROL.sub("", text)).strip()
        if not clean:
            raise InvalidTextError("text is empty (or only whitespace and control characters)")
        result: list[PhonemizedSentence] = []
        for phonemes in self._espeak(clean):
            if not any(p in self._id_map and p != _WORD_BREAK for p in phonemes):
                unknown = sorted({p for p in phonemes if p not in self._id_map and not p.isspace()})
                if unknown:  # not a pause: words the voice cannot say, which Piper would drop silently
                    raise InvalidTextError(
                        f"a sentence has nothing to speak in this voice: its phonemes ({listed(unknown, ' ')}) "
                        "are not in the voice's phoneme map; rewrite or remove it"
                    )
                continue
            for start, end in self._split_long(phonemes):
                result.append(self._to_ids(phonemes[start:end]))
        # A punctuation-only sentence between others is a pause, as in Piper; text that is
        # nothing but pauses has nothing to speak.
        if not any(self._speakable(p) for s in result for p in s.phonemes):
            raise InvalidTextError(f"text has nothing to speak (no pronounceable words): {quoted(clean)!r}")
        return result

    def _speakable(self, phoneme: str) -> bool:
        return phoneme in self._id_map and not (phoneme.isspace() or unicodedata.category(phoneme[0]).startswith("P"))

    def _to_ids(self, phonemes: list[str]) -> PhonemizedSentence:
        unknown = tuple(sorted({p for p in phonemes if p not in self._id_map}))
        ids = self._piper.phonemes_to_ids(phonemes) if not unknown else self._known_ids(phonemes)
        return PhonemizedSentence(tuple(phonemes), tuple(ids), unknown)

    def _known_ids(self, phonemes: list[str]) -> list[int]:
        # Same result as piper's phonemes_to_ids, without its per-phoneme warning spam.
        return self._piper.phonemes_to_ids([p for p in phonemes if p in self._id_map])

    def _split_long(self, phonemes: list[str]) -> list[tuple[int, int]]:
        """``[start, end)`` pieces whose id count (about two per phoneme) stays under the limit, cut after spaces."""
        limit = max(1, (self._max_phonemes - 3) // 2)
        if len(phonemes) <= limit:
            return [(0, len(phonemes))]
        pieces: list[tuple[int, int]] = []
        start = 0
        while len(phonemes) - start > limit:
            window = phonemes[start : start + limit]
            cut = max((i for i, p in enumerate(window) if p == _WORD_BREAK), default=-1)
            end = start + (cut + 1 if cut > 0 else limit)
            pieces.append((start, end))
            start = end
        pieces.append((start, len(phonemes)))
        return [(a, b) for a, b in pieces if any(ph != _WORD_BREAK for ph in phonemes[a:b])]


def _merged(words: list[WordSpan]) -> tuple[WordSpan, ...]:
    """Words read in place of one span of the request (``<sub alias>``, ``<say-as>``) as one word."""
    out: list[WordSpan] = []
    for word in words:
        last = out[-1] if out else None
        if last is not None and (last.char_start, last.char_end) == (word.char_start, word.char_end):
            out[-1] = WordSpan(last.char_start, last.char_end, last.first_id, max(last.end_id, word.end_id))
        else:
            out.append(word)
    return tuple(out)
