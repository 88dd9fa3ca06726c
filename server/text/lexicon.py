"""Pronunciation lexicons: words said with the phonemes given for them (IPA).

A lexicon maps words to IPA. It comes from a request (``pronunciations`` in ``syrinx.v1``,
``custom_dictionary`` in Riva's protocol) or from files beside the voices (``docs/ssml.md``);
a request's entries win over a file's. Matching (documented for users in ``docs/ssml.md``):

* A word is a run of letters and digits, with apostrophes, hyphens or full stops inside it
  ("don't", "e-mail", "Node.js"); punctuation around it is not part of it ("Syrinx," is
  the word "Syrinx").
* Case does not matter ("SYRINX" and "syrinx" match an entry for "Syrinx"): both sides are
  compared case-folded.
* Only text read as words is looked up: not SSML's ``<phoneme>``, ``<say-as>`` or ``<sub>``
  content, which says how it is read already.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .speech import Piece, Pronounced, Speech, Words, joined

MAX_ENTRIES = 10_000
MAX_WORD_CHARS = 100
_WORD = re.compile(r"\w(?:[\w'’.\-]*\w)?")


class LexiconError(ValueError):
    """An entry that cannot be used, with where it is (INVALID_ARGUMENT in a request)."""


@dataclass(frozen=True)
class Lexicon:
    entries: Mapping[str, str]  # case-folded word -> IPA

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]], where: str = "pronunciations") -> Lexicon:
        entries: dict[str, str] = {}
        for word, ipa in pairs:
            key = word.strip()
            if not _WORD.fullmatch(key) or len(key) > MAX_WORD_CHARS:
                raise LexiconError(
                    f'{where}: "{word}" is not a word (letters and digits, with \' - . inside; '
                    f"at most {MAX_WORD_CHARS} characters)"
                )
            if not ipa.strip():
                raise LexiconError(f'{where}: the entry for "{word}" has no phonemes')
            entries[key.casefold()] = ipa.strip()
            if len(entries) > MAX_ENTRIES:
                raise LexiconError(f"{where}: more than {MAX_ENTRIES} entries")
        return cls(entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def over(self, other: Lexicon) -> Lexicon:
        """This lexicon's entries, and ``other``'s for words this one lacks."""
        if not other:
            return self
        if not self:  # a request without pronunciations: the file lexicon as it is, no copy per call
            return other
        return Lexicon({**other.entries, **self.entries})

    def apply(self, speech: Speech) -> Speech:
        """``speech`` with every word this lexicon has said with its phonemes."""
        if not self.entries:
            return speech
        pieces: list[Piece] = []
        for piece in speech.pieces:
            pieces.extend(self._split(piece) if isinstance(piece, Words) else [piece])
        if len(pieces) == len(speech.pieces):  # each Words came back whole: no word is in the lexicon
            return speech  # (so plain text stays on the plain path)
        return Speech(joined(pieces))

    def _split(self, words: Words) -> list[Piece]:
        out: list[Piece] = []
        at = 0
        for match in _WORD.finditer(words.text):
            ipa = self.entries.get(match.group().casefold())
            if ipa is None:
                continue
            out.append(words.part(at, match.start()))
            out.append(Pronounced(ipa, words.source(match.start(), match.end()), words.rate))
            at = match.end()
        if at == 0:
            return [words]
        out.append(words.part(at, len(words.text)))
        return out


def parse_lexicon_file(text: str, name: str) -> Lexicon:
    """A lexicon file: one ``word  IPA`` entry per line (the word, whitespace, then the IPA);
    blank lines and lines starting with ``#`` are skipped."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise LexiconError(f"{name}, line {number}: expected a word, whitespace, then its IPA")
        Lexicon.of([(parts[0], parts[1])], f"{name}, line {number}")  # names the line of a bad entry
        pairs.append((parts[0], parts[1]))
    return Lexicon.of(pairs, name)


def parse_riva_dictionary(text: str) -> Lexicon:
    """Riva's ``custom_dictionary``: ``word  phonemes`` entries separated by commas."""
    pairs = []
    for entry in text.split(","):
        if not entry.strip():
            continue
        parts = entry.strip().split(None, 1)
        if len(parts) != 2:
            raise LexiconError(f'custom_dictionary: "{entry.strip()}" is not "word  phonemes"')
        pairs.append((parts[0], parts[1]))
    return Lexicon.of(pairs, "custom_dictionary")
