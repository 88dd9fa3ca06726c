"""Live sessions: text arrives in fragments, utterance by utterance; audio leaves as it is made.

A :class:`LiveSession` is the service side of the ``LiveSynthesize`` RPC, in domain types
only. Each utterance has a :class:`~.text.Segmenter`; every segment it lets go is spoken as
one scheduled stream (the same path as ``StreamSynthesize``, so a segment's audio equals that
call's for the same text and seed). One task speaks the utterances in order: a segment's
stream opens when the previous one has produced its last chunk, which the scheduler keeps
ahead of real time, so the next segment's first audio is ready before the previous ends.
A stream slot is held only while a segment is being synthesized: an idle session costs the
engine nothing.

Events come out of :meth:`LiveSession.events` in order: audio of one utterance, then its
``done``; a ``flushed`` after the flush's audio; ``cancelled`` at once, and nothing of that
utterance after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import numpy as np

from .audio import OutputFormat
from .engine import Voice
from .engine.errors import InvalidOptionError, SyrinxError, quoted
from .service import SpeechRequest, SynthesisService, WordTiming
from .text import Segment, Segmenter, SegmenterConfig

MAX_UTTERANCE_ID_CHARS = 128


class SessionError(InvalidOptionError):
    """A session's messages break its rules (INVALID_ARGUMENT)."""


class SessionIdleError(SyrinxError):
    """A session had nothing to speak for longer than the server's idle limit (DEADLINE_EXCEEDED)."""


@dataclass(frozen=True)
class UtteranceAudio:
    utterance_id: str
    samples: np.ndarray  # float32 at the voice's rate
    words: tuple[WordTiming, ...]  # words whose audio starts in these samples (utterance coordinates)


@dataclass(frozen=True)
class UtteranceEvent:
    utterance_id: str
    kind: str  # "flushed", "done" or "cancelled"


LiveEvent = UtteranceAudio | UtteranceEvent
_FLUSH = object()
_END = object()


@dataclass
class _Utterance:
    id: str
    segmenter: Segmenter
    items: asyncio.Queue = field(default_factory=asyncio.Queue)  # Segment, _FLUSH, _END
    ended: bool = False
    cancelled: bool = False
    task: asyncio.Task | None = None
    native_samples: int = 0  # audio spoken so far, at the voice's rate


class LiveSession:
    """One ``LiveSynthesize`` call. The transport feeds :meth:`add` and friends in message
    order and reads :meth:`events`; :meth:`close` must be awaited when the call ends."""

    def __init__(
        self,
        service: SynthesisService,
        request: SpeechRequest,
        segmentation: SegmenterConfig,
        voice: Voice,
        output: OutputFormat,
        ssml: bool = False,
    ) -> None:
        self.voice = voice
        self._ssml = ssml  # utterances are SSML content; each segment is read as SSML
        self.output = output
        self._service = service
        self._request = request  # its text is replaced by each segment's
        self._segmentation = segmentation
        self._utterances: dict[str, _Utterance] = {}
        self._order: asyncio.Queue[_Utterance | None] = asyncio.Queue()
        self._events: asyncio.Queue[LiveEvent | BaseException | None] = asyncio.Queue()
        self._speaker = asyncio.get_running_loop().create_task(self._speak_all(), name="syrinx-live")
        self._speaking = False  # a segment's stream is open
        # When the audio sent so far ends, for a listener who plays it as it comes (loop clock).
        self._plays_until = 0.0

    @classmethod
    async def open(
        cls, service: SynthesisService, request: SpeechRequest, segmentation: SegmenterConfig, ssml: bool = False
    ):
        """Check the settings as ``StreamSynthesize`` would (every settings error is raised here)."""
        voice, output = service.resolve(request, streaming=True)
        service.check_pronunciations(request, voice)
        return cls(service, request, segmentation, voice, output, ssml)

    @property
    def busy(self) -> bool:
        """Whether a segment is being spoken or waits to be (an open utterance without text is idle)."""
        return self._speaking or any(not u.items.empty() for u in self._utterances.values() if not u.cancelled)

    # -- what the client sends ------------------------------------------------------------

    def add(self, utterance_id: str, text: str, flush: bool, end: bool) -> None:
        utterance = self._utterances.get(utterance_id) if utterance_id else None
        if utterance is None:
            utterance = self._start(utterance_id)
        elif utterance.ended or utterance.cancelled:
            state = "cancelled" if utterance.cancelled else "ended (end_of_utterance)"
            raise SessionError(
                f'utterance "{quoted(utterance_id)}" has {state}; send new text under a new utterance_id'
            )
        now = asyncio.get_running_loop().time()
        segments = utterance.segmenter.push(text, now) if text else []
        if flush or end:
            segments += utterance.segmenter.flush(now, last=end)
        for segment in segments:
            utterance.items.put_nowait(segment)
        if flush:
            utterance.items.put_nowait(_FLUSH)
        if end:
            utterance.ended = True
            utterance.items.put_nowait(_END)

    def cancel(self, utterance_id: str) -> None:
        utterance = self._utterances.get(utterance_id)
        if utterance is None:
            raise SessionError(f'cannot cancel utterance "{quoted(utterance_id)}": no such utterance in this session')
        if utterance.cancelled:
            return
        utterance.cancelled = True
        if utterance.native_samples:  # the listener drops what it had of it (barge-in)
            self._plays_until = 0.0
        # The event goes out before anything the speaker could still queue: it checks the flag
        # before every event of this utterance.
        self._events.put_nowait(UtteranceEvent(utterance.id, "cancelled"))
        if utterance.task is not None:
            utterance.task.cancel()
        utterance.items.put_nowait(_END)

    def finish(self) -> None:
        """The client half-closed: every utterance ends as if it had ``end_of_utterance``."""
        for utterance in self._utterances.values():
            if not utterance.ended and not utterance.cancelled:
                self.add(utterance.id, "", flush=False, end=True)
        self._order.put_nowait(None)

    def fail(self, error: BaseException) -> None:
        """End the events with ``error`` (a broken rule in the client's messages, an idle session)."""
        self._events.put_nowait(error)

    async def events(self) -> AsyncIterator[LiveEvent]:
        """Audio and events in order; ends after :meth:`finish` once everything is spoken."""
        while True:
            item = await self._events.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        self._speaker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._speaker

    # -- speaking -------------------------------------------------------------------------

    def _start(self, utterance_id: str) -> _Utterance:
        if not utterance_id:
            raise SessionError("utterance_id is empty; every message after the settings names its utterance")
        if len(utterance_id) > MAX_UTTERANCE_ID_CHARS:
            raise SessionError(f"utterance_id is {len(utterance_id)} characters; the limit is {MAX_UTTERANCE_ID_CHARS}")
        utterance = _Utterance(utterance_id, Segmenter(self._segmentation))
        self._utterances[utterance_id] = utterance
        self._order.put_nowait(utterance)
        return utterance

    async def _speak_all(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        try:
            while (utterance := await self._order.get()) is not None:
                if not utterance.cancelled:
                    utterance.task = asyncio.get_running_loop().create_task(self._speak(utterance))
                    with contextlib.suppress(asyncio.CancelledError):
                        await utterance.task
                    if me.cancelling():  # the session closes (not only this utterance)
                        raise asyncio.CancelledError
            self._events.put_nowait(None)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # a stream's error ends the call with its status
            self._events.put_nowait(error)

    async def _speak(self, utterance: _Utterance) -> None:
        while True:
            item = await self._next_item(utterance)
            if item is _END:
                self._emit(utterance, UtteranceEvent(utterance.id, "done"))
                return
            if item is _FLUSH:
                self._emit(utterance, UtteranceEvent(utterance.id, "flushed"))
                continue
            if item.speakable:
                await self._speak_segment(utterance, item)

    async def _next_item(self, utterance: _Utterance):
        """The utterance's next segment or mark; text that waited too long is cut meanwhile."""
        loop = asyncio.get_running_loop()
        while utterance.items.empty():
            deadline = utterance.segmenter.deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                return await asyncio.wait_for(utterance.items.get(), timeout)
            except TimeoutError:
                for segment in utterance.segmenter.poll(loop.time()):
                    utterance.items.put_nowait(segment)
        return utterance.items.get_nowait()

    async def _speak_segment(self, utterance: _Utterance, segment: Segment) -> None:
        if self._ssml:
            request = replace(self._request, ssml=segment.text, ssml_fragment=True)
        else:
            request = replace(self._request, text=segment.text)
        queued = max(0.0, self._plays_until - asyncio.get_running_loop().time())
        try:
            # Due when the audio before it runs out, not at once: urgent work of other calls goes first.
            stream = await self._service.open_stream(request, plays_after=queued)
        except SyrinxError as error:  # nothing to speak, over capacity, draining: the call ends with its status
            error.args = (f'utterance "{quoted(utterance.id)}": {error}',)  # same class, same retry hint
            raise
        stream.map_words(segment.raw_span, utterance.segmenter.text, utterance.native_samples)
        self._speaking = True
        try:
            async for chunk in stream:
                words = stream.words_before(None)  # every word known so far; the transport places them
                self._emit(utterance, UtteranceAudio(utterance.id, chunk.samples, tuple(words)))
                utterance.native_samples += len(chunk.samples)
        finally:
            self._speaking = False
            await stream.aclose()

    def _emit(self, utterance: _Utterance, event: LiveEvent) -> None:
        if utterance.cancelled:
            return
        self._events.put_nowait(event)
        if isinstance(event, UtteranceAudio):
            now = asyncio.get_running_loop().time()
            self._plays_until = max(self._plays_until, now) + len(event.samples) / self.voice.info.sample_rate


__all__ = ["LiveEvent", "LiveSession", "SessionError", "SessionIdleError", "UtteranceAudio", "UtteranceEvent"]
