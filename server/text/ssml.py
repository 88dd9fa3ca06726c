"""A subset of SSML 1.1 read into :class:`~.speech.Speech` (``docs/ssml.md`` lists it).

Elements: ``<speak>`` (the root), ``<p>`` and ``<s>`` (sentence ends), ``<break>`` (``time``
or ``strength``), ``<say-as interpret-as=...>`` (characters, spell-out, digits, cardinal,
ordinal, telephone, date, time), ``<sub alias=...>``, ``<phoneme alphabet="ipa" ph=...>`` and
``<prosody rate=...>``. Any other element speaks its text, as SSML asks of a processor that
does not know it (``<emphasis>``, ``<voice>``, ``<lang>``, ``<audio>``'s fallback text);
``<mark>`` says nothing. Attributes that are not listed (``pitch``, ``volume``) are ignored.

Malformed markup is an :class:`SsmlError` that names the line and column. The parser is
expat, with document type declarations refused (no entity expansion beyond XML's own five).
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass, field

from .speech import Pause, Piece, Pronounced, SentenceEnd, Span, Speech, Spelled, Words, joined

MAX_BREAK_SECONDS = 10.0
MIN_RATE, MAX_RATE = 0.25, 4.0
BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7, "x-strong": 1.0}
RATE_WORDS = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}
TELEPHONE_GROUP_PAUSE = 0.2  # seconds between a phone number's groups of digits
INTERPRETATIONS = ("characters", "spell-out", "digits", "cardinal", "ordinal", "telephone", "date", "time")
_TEXT_ONLY = ("say-as", "sub", "phoneme")
_BREAK_TIME = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)\s*$")
_RATE_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*%\s*$")
_ROOT = "speak"
_SPEAK_TAGS = re.compile(r"</?speak\b[^>]*>")
_MONTHS = "January February March April May June July August September October November December".split()


class SsmlError(ValueError):
    """Markup that cannot be read, with where it is (INVALID_ARGUMENT)."""


class _Unreadable(ValueError):
    """Content a ``<say-as>`` cannot read (reported at the element's start)."""


@dataclass
class _Element:
    name: str
    rate: float
    start: int  # where its content starts in the document (characters)
    tag: int  # where its start tag is
    attributes: dict[str, str]
    text: list[str] = field(default_factory=list)  # collected content (say-as, sub, phoneme)
    sources: list[Span] = field(default_factory=list)


def parse_ssml(source: str, fragment: bool = False) -> Speech:
    """``source`` read as SSML whose root is ``<speak>``; with ``fragment``, SSML content whose
    root is implied (a segment of a live utterance: ``<speak>`` tags in it are ignored). Spans
    point into ``source``."""
    return _Reader(source, fragment).read()


class _Reader:
    def __init__(self, source: str, fragment: bool) -> None:
        self._source = source
        self._wrapped = fragment
        self._shift = len(f"<{_ROOT}>") if fragment else 0
        if fragment:  # the root is implied; any <speak> tags in it become spaces (positions hold)
            body = _SPEAK_TAGS.sub(lambda match: " " * len(match.group()), source)
            self._document = f"<{_ROOT}>{body}</{_ROOT}>"
        else:
            self._document = source
        data = self._document.encode("utf-8")
        self._char_at_byte = [0] * (len(data) + 1)
        at = 0
        for index, char in enumerate(self._document):
            width = len(char.encode("utf-8"))
            for offset in range(width):
                self._char_at_byte[at + offset] = index
            at += width
        self._char_at_byte[at] = len(self._document)
        self._data = data
        self._pieces: list[Piece] = []
        self._stack: list[_Element] = []
        self._parser = xml.parsers.expat.ParserCreate("utf-8")

    def read(self) -> Speech:
        parser = self._parser
        # A handler's SsmlError stops the parse and comes out of Parse as it is.
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._characters
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._doctype
        try:
            parser.Parse(self._data, True)
        except xml.parsers.expat.ExpatError as error:
            message = xml.parsers.expat.ErrorString(error.code)
            line, column = error.lineno, error.offset + 1
            if self._wrapped and line == 1:
                column -= self._shift
            raise SsmlError(f"malformed SSML at line {line}, column {max(column, 1)}: {message}") from None
        return Speech(joined(self._pieces))

    # -- positions ------------------------------------------------------------------------

    def _here(self) -> int:
        """Where the event being handled starts, in the document's characters."""
        return self._char_at_byte[self._parser.CurrentByteIndex]

    def _fail(self, message: str, at: int | None = None) -> SsmlError:
        """An error at document character ``at`` (default: the event being handled)."""
        at = max(0, (self._here() if at is None else at) - self._shift)
        line = self._source.count("\n", 0, at) + 1
        column = at - (self._source.rfind("\n", 0, at) + 1) + 1
        return SsmlError(f"SSML error at line {line}, column {column}: {message}")

    # -- events ---------------------------------------------------------------------------

    def _doctype(self, *_args) -> None:
        raise self._fail("document type declarations are not allowed in SSML requests")

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        if not self._stack:
            if name != _ROOT:
                raise self._fail(f"the root element must be <{_ROOT}>, not <{name}>")
        elif self._stack[-1].name in _TEXT_ONLY:
            raise self._fail(f"<{self._stack[-1].name}> may hold only text, not <{name}>")
        elif name == _ROOT:
            raise self._fail(f"<{_ROOT}> is the root element; it cannot be nested")
        rate = self._stack[-1].rate if self._stack else 1.0
        if name == "prosody" and "rate" in attributes:
            rate = min(MAX_RATE, max(MIN_RATE, rate * self._rate(attributes["rate"])))
        if name in ("p", "s"):
            self._pieces.append(SentenceEnd())
        elif name == "break":
            self._pieces.append(Pause(self._break_seconds(attributes)))
        elif name == "say-as":
            kind = attributes.get("interpret-as", "")
            if kind not in INTERPRETATIONS:
                raise self._fail(
                    f'<say-as interpret-as="{kind}"> is not supported; use one of {", ".join(INTERPRETATIONS)}'
                )
        elif name == "sub" and "alias" not in attributes:
            raise self._fail('<sub> needs an alias="..." to say')
        elif name == "phoneme":
            alphabet = attributes.get("alphabet", "ipa")
            if alphabet != "ipa":
                raise self._fail(f'<phoneme alphabet="{alphabet}"> is not supported; use alphabet="ipa"')
            if not attributes.get("ph", "").strip():
                raise self._fail('<phoneme> needs ph="..." (the IPA to say)')
        end_of_tag = self._data.index(b">", self._parser.CurrentByteIndex) + 1
        self._stack.append(_Element(name, rate, self._char_at_byte[end_of_tag], self._here(), dict(attributes)))

    def _end(self, name: str) -> None:
        element = self._stack.pop()
        content_end = self._here()
        span = (element.start - self._shift, max(element.start, content_end) - self._shift)
        text = "".join(element.text)
        if name in ("p", "s"):
            self._pieces.append(SentenceEnd())
        elif name == "sub":
            alias = element.attributes["alias"]
            self._pieces.append(Words(alias, (span,) * len(alias), element.rate))
        elif name == "phoneme":
            self._pieces.append(Pronounced(element.attributes["ph"].strip(), span, element.rate))
        elif name == "say-as":
            try:
                self._pieces.extend(self._say_as(element, text, span))
            except _Unreadable as error:
                raise self._fail(str(error), element.tag) from None

    def _characters(self, data: str) -> None:
        if not self._stack:
            return  # whitespace around the root
        start = self._here()
        if self._document[start] != "&" and self._document.startswith(data, start):
            sources = tuple((start + i - self._shift, start + i + 1 - self._shift) for i in range(len(data)))
        else:  # an entity or character reference (&amp;, &#233;), or a CR LF read as LF
            end = self._document.index(";", start) + 1 if self._document[start] == "&" else start + 2
            sources = ((start - self._shift, end - self._shift),) * len(data)
        element = self._stack[-1]
        if element.name in _TEXT_ONLY:
            element.text.append(data)
            element.sources.extend(sources)
        else:
            self._pieces.append(Words(data, sources, element.rate))

    # -- attributes -----------------------------------------------------------------------

    def _rate(self, value: str) -> float:
        if value.strip() in RATE_WORDS:
            return RATE_WORDS[value.strip()]
        match = _RATE_PERCENT.match(value)
        if match is None or float(match.group(1)) <= 0:
            words = ", ".join(RATE_WORDS)
            raise self._fail(f'<prosody rate="{value}"> is not a rate; use a percentage such as "80%", or {words}')
        return float(match.group(1)) / 100.0

    def _break_seconds(self, attributes: dict[str, str]) -> float:
        if "time" in attributes:
            match = _BREAK_TIME.match(attributes["time"])
            if match is None:
                raise self._fail(f'<break time="{attributes["time"]}"> is not a duration; use e.g. "500ms" or "1.5s"')
            seconds = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
            if seconds > MAX_BREAK_SECONDS:
                raise self._fail(f"<break> of {seconds:g} s is longer than the {MAX_BREAK_SECONDS:g} s allowed")
            return seconds
        strength = attributes.get("strength", "medium")
        if strength not in BREAK_STRENGTHS:
            raise self._fail(f'<break strength="{strength}"> is not one of {", ".join(BREAK_STRENGTHS)}')
        return BREAK_STRENGTHS[strength]

    # -- say-as ---------------------------------------------------------------------------

    def _say_as(self, element: _Element, text: str, span: Span) -> list[Piece]:
        kind, rate = element.attributes["interpret-as"], element.rate
        sources = element.sources
        if kind in ("characters", "spell-out"):
            keep = [i for i, char in enumerate(text) if not char.isspace()]
            return [Spelled("".join(text[i] for i in keep), tuple(sources[i] for i in keep), rate)]
        if kind == "digits":
            keep = [i for i, char in enumerate(text) if char.isdigit()]
            if not keep:
                raise _Unreadable(f'<say-as interpret-as="digits"> holds no digits: "{text.strip()}"')
            return [Spelled("".join(text[i] for i in keep), tuple(sources[i] for i in keep), rate)]
        if kind == "telephone":
            return self._telephone(text, sources, rate)
        spoken = {"cardinal": _cardinal, "ordinal": _ordinal, "date": _date, "time": _time}[kind](
            text.strip(), element.attributes.get("format", "")
        )
        if spoken is None:
            raise _Unreadable(f'<say-as interpret-as="{kind}"> cannot read "{text.strip()}"')
        return [Words(spoken, (span,) * len(spoken), rate)]

    def _telephone(self, text: str, sources: list[Span], rate: float) -> list[Piece]:
        pieces: list[Piece] = []
        for match in re.finditer(r"\+|\d+", text):
            if match.group() == "+":
                pieces.append(Words("plus ", (sources[match.start()],) * 5, rate))
                continue
            if any(isinstance(p, Spelled) for p in pieces):
                pieces.append(Pause(TELEPHONE_GROUP_PAUSE))
            pieces.append(Spelled(match.group(), tuple(sources[match.start() : match.end()]), rate))
        if not any(isinstance(p, Spelled) for p in pieces):
            raise _Unreadable(f'<say-as interpret-as="telephone"> holds no digits: "{text.strip()}"')
        return pieces


# -- say-as wording (English: what the phonemizer reads in the text's place) ----------------


def _cardinal(text: str, _format: str) -> str | None:
    number = text.replace(",", "").replace("_", "")
    return number if re.fullmatch(r"[-+]?\d+(\.\d+)?", number) else None


def _ordinal(text: str, _format: str) -> str | None:
    number = text.replace(",", "")
    if not re.fullmatch(r"\d+", number):
        return None
    value = int(number)
    suffix = "th" if value % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")
    return f"{value}{suffix}"


def _date(text: str, date_format: str) -> str | None:
    parts = [p for p in re.split(r"[-/.\s]+", text) if p]
    order = date_format or ("ymd" if parts and len(parts[0]) == 4 else "mdy"[: len(parts)])
    if len(order) != len(parts) or set(order) - set("ymd") or len(set(order)) != len(order):
        return None
    if not all(p.isdigit() for p in parts):
        return None
    values = dict(zip(order, map(int, parts)))
    if "m" in values and not 1 <= values["m"] <= 12 or "d" in values and not 1 <= values["d"] <= 31:
        return None
    month = _MONTHS[values["m"] - 1] if "m" in values else ""
    day = _ordinal(str(values["d"]), "") if "d" in values else ""
    year = str(values["y"]) if "y" in values else ""
    if month and day:
        head = f"{month} {day}" if order.index("m") < order.index("d") else f"the {day} of {month}"
    else:
        head = month or (f"the {day}" if day else "")
    return f"{head}, {year}" if head and year else head or year


def _time(text: str, _format: str) -> str | None:
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*([AaPp]\.?[Mm]\.?)?", text)
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2) or 0)
    half = match.group(4)
    if minutes > 59 or (half and not 1 <= hours <= 12) or hours > 23:
        return None
    suffix = f" {half[0].upper()}M" if half else ""
    if minutes == 0:
        return f"{hours} o'clock{suffix}" if not half else f"{hours}{suffix}"
    return f"{hours}:{minutes:02d}{suffix}"
