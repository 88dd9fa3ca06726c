"""The synthesis service: what the transport calls, in domain types only.

It validates requests, owns the voices and hands admitted streams to the
scheduler, which runs every stream's engine work, step by step and in
order of urgency, on one engine thread.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from .audio import AudioRequest, OutputFormat
from .calibration import calibration_gain_db
from .config import ServerConfig
from .engine import Engine, EngineConfig, SentenceStart, SynthesisOptions, Voice, VoiceCatalog
from .engine.errors import InvalidOptionError, InvalidTextError, SyrinxError
from .engine.priority import set_engine_thread_priority
from .lexicons import VoiceLexicons
from .scheduler import ScheduledStream, SchedulerLoop
from .telemetry import Telemetry
from .text.lexicon import Lexicon, LexiconError
from .text.speech import Pronounced, Speech
from .text.ssml import SsmlError, parse_ssml

T = TypeVar("T")
MIN_SPEAKING_RATE, MAX_SPEAKING_RATE = 0.25, 4.0


class UnavailableError(SyrinxError):
    """The server is not ready yet, or is draining."""


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    voice: str = ""  # empty: the default voice
    ssml: str = ""  # SSML instead of text (exactly one of the two)
    ssml_fragment: bool = False  # ``ssml`` is content without its <speak> root (a live segment)
    pronunciations: tuple[tuple[str, str], ...] = ()  # (word, IPA): this request's lexicon
    speaking_rate: float = 0.0  # 0: normal
    speaker_id: int = 0
    seed: int | None = None
    audio: AudioRequest = AudioRequest()
    word_timestamps: bool = False


@dataclass(frozen=True)
class WordTiming:
    """A word of the request text and where the output speaks it (samples at the output rate)."""

    text: str
    char_start: int
    char_end: int
    start_sample: int
    end_sample: int


def split_words_before(words: list[WordTiming], end_sample: int | None) -> tuple[list[WordTiming], list[WordTiming]]:
    """``words`` (in order) cut into those whose audio starts before ``end_sample`` (None: all) and the rest."""
    count = len(words) if end_sample is None else sum(1 for w in words if w.start_sample < end_sample)
    return words[:count], words[count:]


class SpeechStream:
    """One admitted request: its voice and output format (known before any audio) and its float chunks.

    :meth:`aclose` must be awaited (in a ``finally``) whether or not the chunks
    were consumed; it takes the stream's remaining work out of the scheduler.
    Text with nothing to speak fails on the first chunk, before any audio.
    """

    def __init__(self, voice: Voice, output: OutputFormat, text: str, scheduled: ScheduledStream) -> None:
        self.voice = voice
        self.output = output  # what the transport turns the chunks into
        self._scheduled = scheduled
        self._sentences_read = 0
        self._words: list[WordTiming] = []  # known, not yet handed out
        self._raw_span: Callable[[int, int], tuple[int, int]] | None = None
        self._raw_text = text
        self._sample_offset = 0

    def map_words(self, raw_span: Callable[[int, int], tuple[int, int]], raw_text: str, sample_offset: int) -> None:
        """Give word timings in another text's coordinates: ``raw_span`` maps a character span of
        this stream's text into ``raw_text``, and ``sample_offset`` (at the voice's rate) is where
        this stream's audio starts (a segment of a live utterance)."""
        self._raw_span, self._raw_text, self._sample_offset = raw_span, raw_text, sample_offset

    @property
    def queue_wait_seconds(self) -> float | None:
        return self._scheduled.queue_wait_seconds

    def new_sentences(self) -> list[SentenceStart]:
        """Sentences encoded since the last call (their words join those not yet handed out)."""
        fresh = self._scheduled.sentences[self._sentences_read :]
        self._sentences_read += len(fresh)
        for sentence in fresh:
            for word in sentence.words:
                start, end = sentence.word_samples(word)
                char_start, char_end = word.char_start, word.char_end
                if self._raw_span is not None and char_end > char_start:
                    char_start, char_end = self._raw_span(char_start, char_end)
                self._words.append(
                    WordTiming(
                        self._raw_text[char_start:char_end],
                        char_start,
                        char_end,
                        self.output.output_position(self._sample_offset + start),
                        self.output.output_position(self._sample_offset + end),
                    )
                )
        return fresh

    def words_before(self, end_sample: int | None) -> list[WordTiming]:
        """Words not handed out yet whose audio starts before output sample ``end_sample`` (None: all)."""
        self.new_sentences()
        taken, self._words = split_words_before(self._words, end_sample)
        return taken

    def __aiter__(self):
        return self._scheduled.__aiter__()

    async def aclose(self) -> None:
        await self._scheduled.aclose()


class SynthesisService:
    def __init__(
        self,
        config: ServerConfig,
        telemetry: Telemetry | None = None,
        load_catalog: Callable[[EngineConfig], VoiceCatalog] = VoiceCatalog.load,
        engine: Engine | None = None,
    ) -> None:
        """``engine`` replaces the one ``config.engine`` describes (benchmarks of the layers above it)."""
        self.config = config
        self._load_catalog = load_catalog
        self._engine = engine if engine is not None else Engine(config.engine)
        self._catalog: VoiceCatalog | None = None
        self._gain_db: dict[str, float] = {}  # each voice's calibration (see calibration.py)
        self._lexicons = VoiceLexicons(None, [])
        self._telemetry = telemetry
        on_step = telemetry.engine_step if telemetry is not None else None
        self._scheduler = SchedulerLoop(
            self._engine,
            config.scheduler,
            config.engine.chunks.windows,
            on_step=on_step,
            engine_thread_setup=functools.partial(set_engine_thread_priority, config.engine.priority),
        )
        self._draining = False
        if telemetry is not None:
            telemetry.metrics.observe_streams(
                lambda: self._scheduler.active_streams, lambda: self._scheduler.waiting_streams
            )

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load every voice, warm each up with a real synthesis and measure its level, on the engine thread."""
        started = time.perf_counter()
        self._scheduler.start()
        run = self._scheduler.run_in_engine_thread
        catalog = await run(lambda: self._load_catalog(self.config.engine))
        target = self.config.loudness_target_lufs
        for voice in catalog:
            await run(functools.partial(self._engine.warm_up, voice))
            if target is not None:
                self._gain_db[voice.info.name] = await run(
                    functools.partial(calibration_gain_db, self._engine, voice, target)
                )
        lexicons_dir = self.config.lexicons_dir or self.config.engine.voices_dir
        self._lexicons = await run(lambda: VoiceLexicons(lexicons_dir, list(catalog)))
        self._catalog = catalog
        if self._telemetry is not None:
            self._telemetry.metrics.startup.record(time.perf_counter() - started)

    @property
    def ready(self) -> bool:
        return self._catalog is not None and not self._draining

    @property
    def active_streams(self) -> int:
        return self._scheduler.active_streams

    def drain(self) -> None:
        """Refuse new work from now on; calls in flight go on, no longer held to real time, so that
        they finish within the grace period when the engine can make their audio that fast."""
        self._draining = True
        self._scheduler.unpace()

    async def close(self) -> None:
        await self._scheduler.close()

    async def run_on_engine(self, fn: Callable[[Engine], T]) -> T:
        """Run ``fn(engine)`` on the engine thread between scheduler steps (benchmarks, tools)."""
        return await self._scheduler.run_in_engine_thread(lambda: fn(self._engine))

    # -- queries ------------------------------------------------------------------------

    def voices(self) -> tuple[list[Voice], str]:
        catalog = self._require_ready()
        return list(catalog), catalog.default_name

    # -- synthesis ----------------------------------------------------------------------

    async def open_stream(
        self, request: SpeechRequest, streaming: bool = True, plays_after: float = 0.0
    ) -> SpeechStream:
        """Validate ``request`` and take a stream slot.

        Every input error is raised here, before any audio, so a client gets one
        clear status instead of a stream that fails half-way. ``streaming=False`` (a unary
        call): the audio is encoded whole, and nobody plays it as it comes, so the
        scheduler does not pace it to real time. ``plays_after``: seconds of audio the listener
        has yet to play before this stream's (a live utterance's next segment).
        """
        voice, output, options = self._resolve(request, streaming)
        speech = self._speech(request, voice)
        scheduled = self._scheduler.open(voice, speech, options, paced=streaming, plays_after=plays_after)
        return SpeechStream(voice, output, request.ssml or request.text, scheduled)

    def resolve(self, request: SpeechRequest, streaming: bool = True) -> tuple[Voice, OutputFormat]:
        """The request's voice and output format, its options checked (not its text)."""
        voice, output, _ = self._resolve(request, streaming)
        return voice, output

    def _resolve(self, request: SpeechRequest, streaming: bool) -> tuple[Voice, OutputFormat, SynthesisOptions]:
        catalog = self._require_ready()
        voice = catalog.get(request.voice or None)
        options = self._options(voice, request)
        output = request.audio.resolve(voice.info.sample_rate, streaming, self._gain_db.get(voice.info.name, 0.0))
        return voice, output, options

    async def synthesize(self, request: SpeechRequest) -> tuple[Voice, OutputFormat, np.ndarray, list[WordTiming]]:
        """The whole text's audio at the voice's rate, with its voice, the format to encode it in,
        and its words' timings (with ``request.word_timestamps``)."""
        stream = await self.open_stream(request, streaming=False)
        try:
            parts = [chunk.samples async for chunk in stream]
        finally:
            await stream.aclose()
        return stream.voice, stream.output, np.concatenate(parts), stream.words_before(None)

    # -- helpers ------------------------------------------------------------------------

    def _require_ready(self) -> VoiceCatalog:
        if self._draining:
            raise UnavailableError("server is shutting down; retry on another instance")
        if self._catalog is None:
            raise UnavailableError("server is still loading its voices; retry shortly")
        return self._catalog

    def _speech(self, request: SpeechRequest, voice: Voice) -> Speech:
        """What the request asks ``voice`` to say: its text or SSML, with the lexicons applied.
        Every markup and lexicon error is raised here, before a stream slot is taken."""
        if request.text and request.ssml:
            raise InvalidTextError("set text or ssml, not both")
        what = "ssml" if request.ssml else "text"
        source = request.ssml or request.text
        if len(source) > self.config.max_text_chars:
            raise InvalidTextError(
                f"{what} is {len(source)} characters long; the limit is {self.config.max_text_chars}"
            )
        if not source.strip():
            raise InvalidTextError(f"{what} is empty")
        try:
            speech = parse_ssml(source, request.ssml_fragment) if request.ssml else Speech.plain(source)
        except SsmlError as error:
            raise InvalidTextError(str(error)) from None
        own = self.check_pronunciations(request, voice)
        for piece in speech.pieces:
            if isinstance(piece, Pronounced):
                self._check_ipa(voice, piece.ipa, f"<phoneme> at characters {piece.source[0]}-{piece.source[1]}")
        return own.over(self._lexicons.of(voice)).apply(speech)

    def check_pronunciations(self, request: SpeechRequest, voice: Voice) -> Lexicon:
        """The request's own lexicon, each entry checked against ``voice``'s phonemes."""
        try:
            own = Lexicon.of(request.pronunciations)
        except LexiconError as error:
            raise InvalidTextError(str(error)) from None
        for word, ipa in own.entries.items():
            self._check_ipa(voice, ipa, f'pronunciation of "{word}"')
        return own

    @staticmethod
    def _check_ipa(voice: Voice, ipa: str, what: str) -> None:
        try:
            voice.phonemizer.ipa_phonemes(ipa)
        except InvalidTextError as error:
            raise InvalidTextError(f"{what}: {error}") from None

    @staticmethod
    def _options(voice: Voice, request: SpeechRequest) -> SynthesisOptions:
        rate = request.speaking_rate or 1.0
        if not MIN_SPEAKING_RATE <= rate <= MAX_SPEAKING_RATE:
            raise InvalidOptionError(
                f"speaking_rate {request.speaking_rate:g} is out of range: use {MIN_SPEAKING_RATE} to {MAX_SPEAKING_RATE} (0 means 1.0)"
            )
        voice.speaker_id(request.speaker_id)  # raises InvalidOptionError when out of range
        length_scale = voice.info.defaults.length_scale / rate
        return SynthesisOptions(
            length_scale=length_scale,
            speaker_id=request.speaker_id,
            seed=request.seed,
            word_timestamps=request.word_timestamps,
        )
