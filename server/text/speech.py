"""What a request asks the voice to say, after its markup is read: a sequence of pieces.

Plain text is one :class:`Words` piece. SSML (``ssml.py``) and pronunciation lexicons
(``lexicon.py``) make the other kinds: letters read one by one, phonemes given in IPA,
pauses of a set length, sentence ends, and a speaking rate on any of them. Every piece that
is spoken knows which characters of the request it came from, so word timings point into
the text the client sent, whatever was read in its place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Span = tuple[int, int]  # [start, end) in the request's text, in code points


@dataclass(frozen=True)
class Words:
    """Text the voice's phonemizer reads; ``sources[i]`` is the request span of ``text[i]``.
    ``sources=None``: the text is the request's own, character for character (plain text:
    nothing is built per character for the requests that need nothing more)."""

    text: str
    sources: tuple[Span, ...] | None = None
    rate: float = 1.0  # speaking rate on top of the request's (prosody)

    def source(self, start: int, end: int) -> Span:
        """The request span of ``text[start:end]`` (``end > start``)."""
        if self.sources is None:
            return start, end
        return self.sources[start][0], self.sources[end - 1][1]

    def spans(self) -> tuple[Span, ...]:
        return self.sources if self.sources is not None else tuple((i, i + 1) for i in range(len(self.text)))

    def part(self, start: int, end: int) -> Words:
        """``text[start:end]``, still pointing where it came from."""
        if self.sources is None:  # only the part's own spans, not the whole text's for each part
            return Words(self.text[start:end], tuple((i, i + 1) for i in range(start, end)), self.rate)
        return Words(self.text[start:end], self.sources[start:end], self.rate)


@dataclass(frozen=True)
class Spelled:
    """Characters read one at a time, each as its own name ("IBM" as "I B M", "42" as "four two")."""

    text: str
    sources: tuple[Span, ...]
    rate: float = 1.0


@dataclass(frozen=True)
class Pronounced:
    """Phonemes given as IPA (an SSML ``<phoneme>`` or a lexicon entry) for request ``source``."""

    ipa: str
    source: Span
    rate: float = 1.0


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class SentenceEnd:
    """A sentence ends here (``</s>``, ``</p>``) whether or not the text says so."""


Piece = Words | Spelled | Pronounced | Pause | SentenceEnd


@dataclass(frozen=True)
class Speech:
    pieces: tuple[Piece, ...]
    verbatim: bool = False  # the request's text, read as written, nothing else (see ``plain``)

    @classmethod
    def plain(cls, text: str) -> Speech:
        """A request's ``text`` read as it is."""
        return cls((Words(text),) if text else (), verbatim=True)

    @property
    def plain_text(self) -> str | None:
        """The request's text, when that is all there is to say (the phonemizer's plain path,
        whose word timings point into that text as it is)."""
        if not self.verbatim:
            return None
        return self.pieces[0].text if self.pieces and isinstance(self.pieces[0], Words) else ""


def joined(pieces: Iterable[Piece]) -> tuple[Piece, ...]:
    """Adjacent :class:`Words` of one rate merged (the phonemizer reads them in one go)."""
    out: list[Piece] = []
    for piece in pieces:
        last = out[-1] if out else None
        if isinstance(piece, Words) and isinstance(last, Words) and last.rate == piece.rate:
            out[-1] = Words(last.text + piece.text, last.spans() + piece.spans(), last.rate)
        elif not (isinstance(piece, Words | Spelled) and not piece.text):
            out.append(piece)
    return tuple(out)
