"""Text to phoneme ids exactly as Piper does it.

Piper's own phonemizer (espeak-ng via ``piper-tts``) does the work: the same
sentence splitting, ``[[ raw phonemes ]]`` blocks, vowel clusters and id map,
so the model hears what it was trained on. On top of it this module adds what
a server needs: control characters are removed, text with nothing to speak is
a clear error, phonemes missing from the voice's id map are reported rather
than dropped unseen, and overlong sentences are split at word boundaries. It
also stops a memory leak in piper-tts's espeak bridge (see
``_drop_extra_clause_references``).
"""

from __future__ import annotations

import ctypes
import re
import sys
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .errors import InvalidTextError, listed, quoted
from .words import WordSpan, align_words

# C0/C1 control characters except tab/newline/carriage return, which become spaces.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_WHITESPACE_CONTROL = re.compile(r"[\t\r\n]+")
_WORD_BREAK = " "
_WORD_CACHE_SIZE = 20_000  # words phonemized alone for word timestamps; common words repeat


@dataclass(frozen=True)
class PhonemizedSentence:
    phonemes: tuple[str, ...]
    phoneme_ids: tuple[int, ...]
    # Phonemes espeak produced that the voice's id map lacks; Piper skips them.
    unknown_phonemes: tuple[str, ...] = ()
    # The words of the text this sentence starts speaking (only when asked for: see words.py).
    words: tuple[WordSpan, ...] = ()


class Phonemizer(Protocol):
    """Text to the sentences a voice speaks (what :class:`Voice` needs from its text front-end)."""

    def sentences(self, text: str, with_words: bool = False) -> list[PhonemizedSentence]: ...


class PiperPhonemizer:
    def __init__(self, voice_config: Mapping[str, Any], max_sentence_phonemes: int) -> None:
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        # PiperVoice's phonemize/phonemes_to_ids need only its config; no ONNX session is made.
        self._piper = PiperVoice(session=None, config=PiperConfig.from_dict(dict(voice_config)))
        self._piper.phonemize("ready.")  # starts espeak-ng, which the leak check below calls
        _drop_extra_clause_references()
        self._id_map = self._piper.config.phoneme_id_map
        self._max_phonemes = max_sentence_phonemes
        self._word_cache: dict[str, list[str]] = {}

    def sentences(self, text: str, with_words: bool = False) -> list[PhonemizedSentence]:
        """``text``'s sentences as Piper speaks them; ``with_words`` also maps its words to their ids."""
        result = self._sentences(text)
        if with_words:
            spans = align_words(text, [s.phonemes for s in result], self._word_phonemes, self._id_map)
            result = [replace(sentence, words=tuple(words)) for sentence, words in zip(result, spans)]
        return result

    def _word_phonemes(self, word: str) -> list[str]:
        """One word phonemized on its own (only to find it in its sentence's phonemes); cached."""
        cached = self._word_cache.get(word)
        if cached is None:
            clean = _CONTROL.sub("", word)
            cached = [p for sentence in self._piper.phonemize(clean) for p in sentence] if clean else []
            if len(self._word_cache) >= _WORD_CACHE_SIZE:
                self._word_cache.clear()
            self._word_cache[word] = cached
        return cached

    def _sentences(self, text: str) -> list[PhonemizedSentence]:
        clean = _WHITESPACE_CONTROL.sub(" ", _CONTROL.sub("", text)).strip()
        if not clean:
            raise InvalidTextError("text is empty (or only whitespace and control characters)")
        result: list[PhonemizedSentence] = []
        for phonemes in self._piper.phonemize(clean):
            if not any(p in self._id_map and p != _WORD_BREAK for p in phonemes):
                unknown = sorted({p for p in phonemes if p not in self._id_map and not p.isspace()})
                if unknown:  # not a pause: words the voice cannot say, which Piper would drop silently
                    raise InvalidTextError(
                        f"a sentence has nothing to speak in this voice: its phonemes ({listed(unknown, ' ')}) "
                        "are not in the voice's phoneme map; rewrite or remove it"
                    )
                continue
            for piece in self._split_long(phonemes):
                result.append(self._to_ids(piece))
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

    def _split_long(self, phonemes: list[str]) -> list[list[str]]:
        """Pieces whose id count (about two per phoneme) stays under the limit, cut after spaces."""
        limit = max(1, (self._max_phonemes - 3) // 2)
        if len(phonemes) <= limit:
            return [phonemes]
        pieces: list[list[str]] = []
        start = 0
        while len(phonemes) - start > limit:
            window = phonemes[start : start + limit]
            cut = max((i for i, p in enumerate(window) if p == _WORD_BREAK), default=-1)
            end = start + (cut + 1 if cut > 0 else limit)
            pieces.append(phonemes[start:end])
            start = end
        pieces.append(phonemes[start:])
        return [p for p in pieces if any(ph != _WORD_BREAK for ph in p)]


_PLUG_LOCK = threading.Lock()


def _drop_extra_clause_references() -> None:
    """Stop piper-tts's espeak bridge from keeping every clause it phonemizes.

    piper-tts 1.8.0's ``espeakbridge.get_phonemes`` returns its clauses (tuples) each with
    one reference too many, so no clause is ever freed, nor its phoneme string: 234 bytes
    a clause on average in ``test_phonemizing_keeps_nothing_in_memory``, for every
    sentence and word phonemized, for as long as the server runs (found with tracemalloc
    in a soak of the real server). Where the bridge has that extra reference, its
    ``get_phonemes`` is wrapped to drop it as the clauses come back. It is measured on a
    probe, not assumed, so a bridge that no longer leaks (or leaks in some other way) is
    left as it is. Espeak-ng must already be started (piper starts it on its first
    ``phonemize``). Idempotent, process-wide.
    """
    from piper import espeakbridge

    with _PLUG_LOCK:
        original = espeakbridge.get_phonemes
        if getattr(original, "drops_extra_references", False):
            return
        normal = _references_to_item([tuple([object()])], 0)  # a list's item with no other owner
        probe = original("probe, with two clauses.")
        if not probe or any(_references_to_item(probe, i) != normal + 1 for i in range(len(probe))):
            return
        decref = ctypes.pythonapi.Py_DecRef
        decref.argtypes, decref.restype = [ctypes.py_object], None
        for index in range(len(probe)):
            decref(probe[index])

        def get_phonemes(text: str) -> list:
            clauses = original(text)
            for index in range(len(clauses)):
                if _references_to_item(clauses, index) == normal + 1:
                    decref(clauses[index])
            return clauses

        get_phonemes.drops_extra_references = True  # type: ignore[attr-defined]
        espeakbridge.get_phonemes = get_phonemes


def _references_to_item(items: list, index: int) -> int:
    """``sys.getrefcount`` of ``items[index]``, always taken the same way so counts compare."""
    return sys.getrefcount(items[index])
