"""The synthesis service: what the transport calls, in domain types only.

Engine work is CPU/GPU-bound and torch runs its own thread pool per step, so
every engine step runs on one dedicated worker thread. Streams interleave step
by step (no lock is held across a whole request), and a stream whose client is
gone simply stops submitting steps. The batching scheduler replaces this
worker with batched steps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Iterator, TypeVar

import numpy as np

from .config import ServerConfig
from .engine import AudioChunk, Engine, SynthesisOptions, Voice, VoiceCatalog
from .engine.errors import InvalidOptionError, InvalidTextError, SyrinxError

T = TypeVar("T")

MIN_SPEAKING_RATE, MAX_SPEAKING_RATE = 0.25, 4.0


class UnavailableError(SyrinxError):
    """The server is not ready yet, or is draining."""


class OverCapacityError(SyrinxError):
    """All stream slots are taken."""


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    voice: str = ""  # empty: the default voice
    speaking_rate: float = 0.0  # 0: normal
    speaker_id: int = 0
    seed: int | None = None
    sample_rate_hz: int = 0  # 0: the voice's native rate


class SpeechStream:
    """One admitted request: its voice (so the audio format is known before any audio) and its chunks.

    It holds a stream slot until :meth:`aclose`, which the caller must await
    (in a ``finally``) whether or not the chunks were consumed. Phonemizing
    happens in the worker together with the first engine step, so the first
    audio costs one trip to the worker thread; text with nothing to speak
    fails there, before any audio.
    """

    def __init__(self, service: "SynthesisService", voice: Voice, start: Callable[[], tuple[Iterator, int]]) -> None:
        self.voice = voice
        self.num_sentences = 0
        self._service = service
        self._start = start
        self._events: Iterator | None = None
        self._open = True

    @property
    def sample_rate_hz(self) -> int:
        return self.voice.info.sample_rate

    def is_last(self, chunk: AudioChunk) -> bool:
        return chunk.last_in_sentence and chunk.sentence_index == self.num_sentences - 1

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        while self._open:
            chunk = await self._service._run(self._next_chunk)
            if chunk is None:
                return
            yield chunk

    def _next_chunk(self) -> AudioChunk | None:
        """Advance the engine to its next audio chunk, in one trip to the worker thread."""
        if self._events is None:
            self._events, self.num_sentences = self._start()
        for event in self._events:
            if isinstance(event, AudioChunk):
                return event
        return None

    async def aclose(self) -> None:
        """Release the slot; no engine step of this stream runs after this returns."""
        if self._open:
            self._open = False
            self._service._release()
            if self._events is not None:
                await self._service._run(self._events.close)  # in the worker: never races a step


class SynthesisService:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._engine = Engine(config.engine)
        self._catalog: VoiceCatalog | None = None
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="syrinx-engine")
        self._active = 0
        self._draining = False

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load every voice and warm each up with a real synthesis (in the worker thread)."""
        catalog = await self._run(lambda: VoiceCatalog.load(self.config.engine))
        for voice in catalog:
            await self._run(lambda v=voice: self._engine.warm_up(v))
        self._catalog = catalog

    @property
    def ready(self) -> bool:
        return self._catalog is not None and not self._draining

    @property
    def active_streams(self) -> int:
        return self._active

    def drain(self) -> None:
        """Refuse new work from now on; calls in flight go on."""
        self._draining = True

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    # -- queries ------------------------------------------------------------------------

    def voices(self) -> tuple[list[Voice], str]:
        catalog = self._require_ready()
        return list(catalog), catalog.default_name

    # -- synthesis ----------------------------------------------------------------------

    async def open_stream(self, request: SpeechRequest) -> SpeechStream:
        """Validate ``request`` and take a stream slot.

        Every input error is raised here, before any audio, so a client gets one
        clear status instead of a stream that fails half-way.
        """
        catalog = self._require_ready()
        voice = catalog.get(request.voice or None)
        options = self._options(voice, request)
        self._check_text(request.text)
        if self._active >= self.config.max_streams:
            raise OverCapacityError(
                f"server is at its limit of {self.config.max_streams} concurrent streams; retry shortly"
            )
        self._active += 1

        def start() -> tuple[Iterator, int]:
            sentences = voice.phonemizer.sentences(request.text)
            requests = self._engine.sentence_requests(voice, sentences, options)
            return self._engine.stream_requests(voice, requests), len(requests)

        return SpeechStream(self, voice, start)

    async def synthesize(self, request: SpeechRequest) -> tuple[Voice, np.ndarray]:
        stream = await self.open_stream(request)
        try:
            parts = [chunk.samples async for chunk in stream]
        finally:
            await stream.aclose()
        return stream.voice, np.concatenate(parts)

    def _release(self) -> None:
        self._active -= 1

    # -- helpers ------------------------------------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn)

    def _require_ready(self) -> VoiceCatalog:
        if self._draining:
            raise UnavailableError("server is shutting down; retry on another instance")
        if self._catalog is None:
            raise UnavailableError("server is still loading its voices; retry shortly")
        return self._catalog

    def _check_text(self, text: str) -> None:
        if len(text) > self.config.max_text_chars:
            raise InvalidTextError(
                f"text is {len(text)} characters long; the limit is {self.config.max_text_chars}"
            )
        if not text.strip():
            raise InvalidTextError("text is empty")

    @staticmethod
    def _options(voice: Voice, request: SpeechRequest) -> SynthesisOptions:
        rate = request.speaking_rate or 1.0
        if not MIN_SPEAKING_RATE <= rate <= MAX_SPEAKING_RATE:
            raise InvalidOptionError(
                f"speaking_rate {request.speaking_rate:g} is out of range: use {MIN_SPEAKING_RATE} to {MAX_SPEAKING_RATE} (0 means 1.0)"
            )
        native = voice.info.sample_rate
        if request.sample_rate_hz not in (0, native):
            raise InvalidOptionError(
                f"sample_rate_hz {request.sample_rate_hz} is not supported for voice '{voice.name}'; use 0 or {native} (its native rate)"
            )
        voice.speaker_id(request.speaker_id)  # raises InvalidOptionError when out of range
        length_scale = voice.info.defaults.length_scale / rate
        return SynthesisOptions(length_scale=length_scale, speaker_id=request.speaker_id, seed=request.seed)
