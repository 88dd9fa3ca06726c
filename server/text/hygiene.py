"""LLM output hygiene: markdown and emoji are not read out as symbols.

Every change is a deletion, so the spoken text keeps, for each of its characters, the
position it had in the raw text: word timings found in the spoken text point back into
the text the client sent. What goes:

* code fence lines (```` ```python ````) and inline code's backticks (the code itself is kept);
* heading marks (``# ``), bullet marks (``- ``, ``* ``, ``+ ``) and quote marks (``> ``) at a
  line's start; numbered lists keep their numbers;
* emphasis and strike-through marks (``**``, ``*``, ``__``, ``_``, ``~~``); an underscore inside
  a word (``snake_case``) stays;
* a link's brackets and address (``[the docs](https://...)`` speaks "the docs"), an image's too;
* emoji, with their joiners, variation selectors, skin tones and keycaps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE_LINE = re.compile(r"^[ \t]*(```|~~~)[^\n]*(\n|$)", re.MULTILINE)
_LINE_MARK = re.compile(r"^[ \t]*(#{1,6}[ \t]+|[-*+][ \t]+|>[ \t]?)", re.MULTILINE)
_LINK = re.compile(r"!?\[([^\]\n]*)\]\(([^)\s]*)\)")
_INLINE_CODE = re.compile(r"`+")
_STARS = re.compile(r"\*+|~~")
# Underscores that mark emphasis: a run at a word's edge, not one inside a word.
_UNDERSCORES = re.compile(r"(?<![0-9A-Za-z])_+|_+(?![0-9A-Za-z])")

_EMOJI_RANGES = (
    (0x1F000, 0x1FAFF),  # pictographs, emoticons, transport, flags' regional letters, skin tones
    (0x2600, 0x27BF),  # miscellaneous symbols and dingbats
    (0x2B00, 0x2BFF),  # arrows and stars (the star emoji)
    (0x2300, 0x23FF),  # watches, hourglasses, media keys
    (0xFE00, 0xFE0F),  # variation selectors
    (0xE0000, 0xE007F),  # tag characters (subdivision flags)
    (0x20E3, 0x20E3),  # combining keycap
)
_ZWJ = 0x200D


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _EMOJI_RANGES)


@dataclass(frozen=True)
class Spoken:
    """The text to speak, and for each of its characters the index it had in the raw text."""

    text: str
    positions: tuple[int, ...]

    def raw_span(self, start: int, end: int, raw_offset: int = 0) -> tuple[int, int]:
        """Raw ``[start, end)`` of spoken ``[start, end)`` (``end > start``), shifted by ``raw_offset``."""
        return raw_offset + self.positions[start], raw_offset + self.positions[end - 1] + 1


def verbatim(raw: str) -> Spoken:
    return Spoken(raw, tuple(range(len(raw))))


def clean(raw: str) -> Spoken:
    """``raw`` without markdown marks and emoji (see the module's docstring)."""
    drop = bytearray(len(raw))

    def drop_span(start: int, end: int) -> None:
        drop[start:end] = b"\x01" * (end - start)

    for match in _FENCE_LINE.finditer(raw):
        drop_span(match.start(), match.end())
    for match in _LINE_MARK.finditer(raw):
        drop_span(match.start(1), match.end(1))
    for match in _LINK.finditer(raw):
        drop_span(match.start(), match.start(1))  # "![" or "["
        drop_span(match.end(1), match.end())  # "](address)"
    for pattern in (_INLINE_CODE, _STARS, _UNDERSCORES):
        for match in pattern.finditer(raw):
            drop_span(match.start(), match.end())
    for i, char in enumerate(raw):
        if _is_emoji(char):
            drop[i] = 1
        elif ord(char) == _ZWJ and ((i > 0 and _is_emoji(raw[i - 1])) or (i + 1 < len(raw) and _is_emoji(raw[i + 1]))):
            drop[i] = 1
    positions = tuple(i for i in range(len(raw)) if not drop[i])
    return Spoken("".join(raw[i] for i in positions), positions)
