"""Streaming-safe segmentation: an utterance's text arrives in fragments; segments leave once certain.

A segment is spoken as soon as its end is certain, so it must never be cut where more text
could still change the answer. The rules (``docs/live.md`` says why each is there):

* **Sentence ends.** A terminator (``. ! ? …``, with any closing quotes, brackets or emphasis
  marks after it) followed by whitespace, and then the next non-space character. The CJK forms
  (``。！？``) need no whitespace, only the next character. Waiting for the next character is what
  keeps "3" + ".5", "$3." + "5", "1" + ",000" and "example." + "com" whole. A line break ends a
  segment the same way (headings and bullets carry no full stop).
* **Not sentence ends.** A full stop after a common abbreviation ("Dr.", "St.", "e.g.",
  "U.S."), after a single letter (initials: "J. R. R. Tolkien"), or before a lower-case word.
* **An eager first segment.** An utterance's first segment may end at a clause mark (``, ; :``
  or a dash between spaces) once it holds ``eager_min_words`` words, so its first audio does not
  wait for the end of a long first sentence.
* **Waiting and length.** Text that has waited ``max_delay_seconds`` without an end is spoken up
  to its last word boundary; text longer than ``max_segment_chars`` is cut at word boundaries.
  Neither ever cuts inside a word.
* **Client segmentation** (``client_segments``): nothing is cut; each ``flush`` (or the
  utterance's end) makes what came since the last one a segment.

Segments cover the raw text without gaps: a segment's whitespace goes with it, so joining
their raw spans gives back every character the client sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .hygiene import Spoken, clean, verbatim

ASCII_TERMINATORS = ".!?…"
CJK_TERMINATORS = "。！？"
CLAUSE_MARKS = ",;:，；：—–"
CLOSERS = "\"'”’)]}»」』*_`"
# Lower-case keys; a token matches without its final full stop ("Dr." -> "dr").
# Words that are also common words ("no", "sun", "etc" at a sentence's end) are left out: a full
# stop after them ends a sentence before a capital, as after any word.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st sr jr mt ft gen col capt lt sgt rev hon gov sen rep pres "
    "vs approx dept est vols ed eds inc ltd co corp feb apr jun jul aug "
    "sep sept oct nov dec tue tues thu thur thurs fri cf al ca".split()
)
# Abbreviations only before a number ("No. 5", "Fig. 2", "p. 12"); elsewhere plain words.
NUMBER_ABBREVIATIONS = frozenset("no nos fig vol p pp op".split())
_SPACES = re.compile(r"\s+")
_SPEAK_TAG = re.compile(r"</?speak\b")
_DOTTED = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]$")  # "e.g", "U.S", "a.m" (the last full stop is cut)


@dataclass(frozen=True)
class SegmenterConfig:
    eager_first: bool = True
    eager_min_words: int = 4
    max_delay_seconds: float = 1.5
    max_segment_chars: int = 300
    client_segments: bool = False
    clean_markup: bool = True  # markdown and emoji (see hygiene.py)
    # The text is SSML content: segments end only outside tags and elements (see _inside_markup).
    ssml: bool = False

    def __post_init__(self) -> None:
        if self.eager_min_words < 1:
            raise ValueError(f"eager_min_words must be at least 1, got {self.eager_min_words}")
        if self.max_delay_seconds <= 0:
            raise ValueError(f"max_delay_seconds must be positive, got {self.max_delay_seconds:g}")
        if self.max_segment_chars < 20:
            raise ValueError(f"max_segment_chars must be at least 20, got {self.max_segment_chars}")


@dataclass(frozen=True)
class Segment:
    """``raw`` text ``[raw_start, raw_end)`` of its utterance, and what of it is spoken."""

    raw_start: int
    raw_end: int
    spoken: Spoken

    @property
    def text(self) -> str:
        return self.spoken.text

    @property
    def speakable(self) -> bool:
        """Whether anything in it can be spoken (not only marks, spaces or emoji)."""
        return any(c.isalnum() for c in self.spoken.text)

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """The utterance's raw ``[start, end)`` of the spoken text's ``[start, end)``."""
        return self.spoken.raw_span(start, end, self.raw_start)


class Segmenter:
    """One utterance's text in, segments out. Pure: the caller passes the time."""

    def __init__(self, config: SegmenterConfig = SegmenterConfig()) -> None:
        self.config = config
        self._text = ""
        self._emitted = 0  # raw index up to which segments have left
        self._segments = 0
        self._waiting_since: float | None = None  # when the oldest unsegmented word arrived

    @property
    def text(self) -> str:
        return self._text

    @property
    def pending(self) -> str:
        """Raw text not in a segment yet."""
        return self._text[self._emitted :]

    def push(self, fragment: str, now: float) -> list[Segment]:
        """Append ``fragment`` verbatim; the segments whose ends are now certain."""
        self._text += fragment
        if self._waiting_since is None and self.pending.strip():
            self._waiting_since = now
        if self.config.client_segments:
            return []
        return self._cut(self._certain_ends(final=False), now)

    def flush(self, now: float, last: bool = False) -> list[Segment]:
        """Everything pending, now (``flush`` and, with ``last``, ``end_of_utterance``). SSML: an
        element still open is held for the text that completes it, unless this is the ``last``
        flush: then it goes too, incomplete (its reader reports where)."""
        if self.config.client_segments:
            ends = [len(self._text)]
        else:
            ends = [*self._certain_ends(final=True), len(self._text)]
        segments = self._cut(ends, now)
        if last and self.pending:
            segments.append(self._segment(self._emitted, len(self._text)))
            self._emitted = len(self._text)
        return segments

    def deadline(self) -> float | None:
        """When :meth:`poll` will cut waiting text (None: nothing waits)."""
        if self.config.client_segments or self._waiting_since is None:
            return None
        return self._waiting_since + self.config.max_delay_seconds

    def poll(self, now: float) -> list[Segment]:
        """Text that has waited ``max_delay_seconds``, up to its last word boundary."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        cut = self._last_word_boundary(len(self._text), known_end=len(self._text))
        return self._cut([cut] if cut is not None else [], now)

    # -- cutting ------------------------------------------------------------------------

    def _cut(self, ends: list[int], now: float) -> list[Segment]:
        segments = []
        inside = self._inside_markup()
        ends = [end for end in ends if not inside[end]]
        for end in ends:
            segments += self._cut_long(end, final=True)
            if end > self._emitted:
                segments.append(self._segment(self._emitted, end))
                self._emitted = end
        segments += self._cut_long(len(self._text), final=False)
        if segments:
            self._waiting_since = now if self.pending.strip() else None
        return segments

    def _cut_long(self, end: int, final: bool) -> list[Segment]:
        """Text before ``end`` past ``max_segment_chars``, cut at word boundaries (never inside a
        word). ``final``: the text up to ``end`` is complete, else a word or a run of spaces
        that reaches ``end`` may still grow."""
        limit = self.config.max_segment_chars
        segments = []
        inside = self._inside_markup()
        while not self.config.client_segments and end - self._emitted > limit:
            cut = self._last_word_boundary(self._emitted + limit, end if final else None)
            if cut is None:
                match = next(
                    (m for m in _SPACES.finditer(self._text, self._emitted + limit, end) if not inside[m.end()]), None
                )
                if match is None or (match.end() == end and not final):
                    break  # the word (or element) goes on: wait for its end
                cut = match.end()
            segments.append(self._segment(self._emitted, cut))
            self._emitted = cut
        return segments

    def _segment(self, start: int, end: int) -> Segment:
        raw = self._text[start:end]
        self._segments += 1
        return Segment(start, end, clean(raw) if self.config.clean_markup else verbatim(raw))

    def _last_word_boundary(self, limit: int, known_end: int | None = None) -> int | None:
        """The end of the last whitespace run before ``limit`` that follows a word (a cut there
        leaves whole words on both sides), or None. A run that reaches the text's end counts
        only if ``known_end`` says nothing more comes there."""
        text = self._text
        inside = self._inside_markup()
        i = limit - 1
        while i > self._emitted:
            if text[i].isspace() and not text[i - 1].isspace():
                end = i
                while end < len(text) and text[end].isspace():
                    end += 1
                if (end < len(text) or end == known_end) and not inside[end]:
                    return end
            i -= 1
        return None

    def _inside_markup(self) -> bytearray:
        """For each cut position ``0..len(text)``, whether it falls inside an SSML tag or an
        element that is not closed yet (all zeros for plain text). ``<speak>`` and
        ``</speak>`` are not counted: a live utterance is content, its root implied."""
        text = self._text
        inside = bytearray(len(text) + 1)
        if not self.config.ssml:
            return inside
        depth, tag_start = 0, -1
        for i, char in enumerate(text):
            inside[i] = tag_start >= 0 or depth > 0
            if char == "<" and tag_start < 0:
                tag_start = i
            elif char == ">" and tag_start >= 0:
                tag = text[tag_start : i + 1]
                tag_start = -1
                if _SPEAK_TAG.match(tag) or tag.startswith(("<!", "<?")) or tag.endswith("/>"):
                    continue
                depth = max(0, depth - 1) if tag.startswith("</") else depth + 1
        inside[len(text)] = tag_start >= 0 or depth > 0
        return inside

    # -- where sentences end ------------------------------------------------------------

    def _certain_ends(self, final: bool) -> list[int]:
        """Segment ends in the pending text, each the index of the next segment's first character.
        ``final``: no more text comes, so the end of the text is a certain next character."""
        text, n = self._text, len(self._text)
        ends = []
        start = self._emitted
        i = start
        while i < n:
            char = text[i]
            if char in ASCII_TERMINATORS or char in CJK_TERMINATORS or char == "\n":
                after = self._past_closers(i + 1)
                if after is None:
                    break  # a tag after the terminator is still arriving
                if char in ASCII_TERMINATORS and after < n and not text[after].isspace():
                    i = after  # "3.5", "example.com", "Sentence one.Sentence two"
                    continue
                following = after
                while following < n and text[following].isspace():
                    following += 1
                if following == n and not final:
                    break  # the next character decides; it has not come yet
                if self._ends_sentence(start, i, following) and text[start:i].strip(CLOSERS + " \n"):
                    ends.append(following)
                    start = following
                i = following
                continue
            is_dash = char == "-" and i > start and text[i - 1].isspace()  # " - ", not "well-known"
            if (
                (char in CLAUSE_MARKS or is_dash)
                and self.config.eager_first
                and self._segments == 0
                and not ends
                and self._is_eager_clause_end(start, i)
            ):
                following = i + 1
                while following < n and text[following].isspace():
                    following += 1
                if following == n:
                    if not final:
                        break
                elif following > i + 1:  # whitespace after the mark ("1,000" is not a clause)
                    ends.append(following)
                    start = following
                    i = following
                    continue
            i += 1
        return ends

    def _past_closers(self, at: int) -> int | None:
        """The first index from ``at`` past closing quotes and brackets (and, in SSML, end tags
        and empty elements such as ``</s>`` or ``<break/>``); None while a tag there is incomplete."""
        text, n = self._text, len(self._text)
        while at < n:
            if text[at] in CLOSERS:
                at += 1
            elif self.config.ssml and text[at] == "<":
                close = text.find(">", at)
                if close < 0:
                    return None
                if not (text.startswith("</", at) or text[close - 1] == "/"):
                    break
                at = close + 1
            else:
                break
        return at

    def _ends_sentence(self, start: int, at: int, following: int) -> bool:
        """Whether the terminator at ``at`` ends the segment that began at ``start``."""
        text = self._text
        char = text[at]
        if char not in ".…":
            return True
        if following < len(text) and text[following].islower():
            return False  # "e.g. the", "... and so on"
        if char == "…" or (at > 0 and text[at - 1] == "."):
            return True  # an ellipsis before a capital
        word_start = at
        openers = "([{\"'“‘>" if self.config.ssml else "([{\"'“‘"  # SSML: a word starts after a tag too
        while word_start > start and not text[word_start - 1].isspace() and text[word_start - 1] not in openers:
            word_start -= 1
        word = text[word_start:at]
        if word.lower() in NUMBER_ABBREVIATIONS and following < len(text) and text[following].isdigit():
            return False
        if len(word) == 1 and word.isalpha():
            return False  # an initial
        return word.lower() not in ABBREVIATIONS and not _DOTTED.match(word)

    def _is_eager_clause_end(self, start: int, at: int) -> bool:
        words = sum(1 for token in self._text[start:at].split() if any(c.isalnum() for c in token))
        return words >= self.config.eager_min_words
