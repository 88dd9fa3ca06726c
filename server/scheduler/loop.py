"""The scheduler's event-loop side: one task steps the engine, streams read their own queues.

The task asks the :class:`~.core.Scheduler` for the next step, runs it on the
single engine thread (torch keeps one OpenMP team per calling thread, so every
engine call comes from that one thread), hands the results back to the state
machine and puts each stream's audio on that stream's queue. It sleeps on an
event when nothing is ready, woken by new streams, by the transport taking
chunks, or at the time a stream that was ahead of real time becomes due.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from ..engine import AudioChunk, DecodeWindow, EncodedSentence, SentenceRequest, SentenceStart, SynthesisOptions, Voice
from ..text.speech import Speech
from .core import DecodeWork, Encoded, EncodeWork, Scheduler, SchedulerConfig, Step

log = logging.getLogger(__name__)
T = TypeVar("T")


class EngineClient(Protocol):
    """What the loop needs from an engine (the real one, or a fake in tests)."""

    def sentence_requests(
        self, voice: Voice, sentences: Sequence[Any], options: SynthesisOptions
    ) -> list[SentenceRequest]: ...

    def encode(self, requests: Sequence[SentenceRequest]) -> list[EncodedSentence]: ...

    def finish(self, sentences: Sequence[EncodedSentence]) -> list[EncodedSentence]: ...

    def decode(self, windows: Sequence[DecodeWindow]) -> list[np.ndarray]: ...


_END = object()


@dataclass
class _Job:
    """One stream's state in the loop; the engine-side fields (requests, offsets) are touched only by the engine thread."""

    voice: Voice
    speech: Speech
    options: SynthesisOptions
    opened_at: float
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    queue_wait: float | None = None  # from admission to its first engine step (set on the event loop)
    requests: list[SentenceRequest] | None = None
    sentence_offsets: list[int] = field(default_factory=list)  # first sample of each encoded sentence
    next_offset: int = 0  # where the next sentence starts (known once this one is complete)

    @property
    def num_sentences(self) -> int:
        assert self.requests is not None, "the text is split at the stream's first step"
        return len(self.requests)


@dataclass
class _Outcome:
    encoded: list[Encoded | None]
    starts: list[tuple[int, SentenceStart]]
    audio: list[np.ndarray]
    failures: dict[int, Exception]


class SchedulerLoop:
    def __init__(
        self,
        engine: EngineClient,
        config: SchedulerConfig,
        windows: Callable[[int], list[tuple[int, int]]],
        clock: Callable[[], float] = time.monotonic,
        on_step: Callable[[int, float], None] | None = None,
        engine_thread_setup: Callable[[], object] | None = None,
    ) -> None:
        """``on_step(items, seconds)`` hears of each engine step (metrics): items in it and its time.
        ``engine_thread_setup`` runs on the engine thread before anything else (its priority)."""
        self._engine = engine
        self._on_step = on_step
        self._scheduler = Scheduler(config, windows)
        self._windows = windows
        self._clock = clock
        self._jobs: dict[int, _Job] = {}
        self._worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="syrinx-engine", initializer=engine_thread_setup
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._crashed: BaseException | None = None

    @property
    def active_streams(self) -> int:
        return self._scheduler.active_streams

    @property
    def waiting_streams(self) -> int:
        return self._scheduler.waiting_streams

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="syrinx-scheduler")
        self._task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task) -> None:
        """A bug that ends the loop fails the streams in it instead of leaving them to hang."""
        if task.cancelled() or task.exception() is None:
            return
        self._crashed = task.exception()
        log.critical("the scheduler loop stopped", exc_info=self._crashed)
        for stream_id in list(self._jobs):
            self._finish(stream_id, self._crashed)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for stream_id in list(self._jobs):
            self._finish(stream_id, _END)
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def run_in_engine_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the engine thread (voice loading, warm-up), between steps."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn)

    # -- streams ------------------------------------------------------------------------

    def open(
        self, voice: Voice, speech: Speech, options: SynthesisOptions, paced: bool = True, plays_after: float = 0.0
    ) -> ScheduledStream:
        """Admit a stream (or raise :class:`~.core.OverCapacityError` at once); ``paced=False``
        for a caller that takes the whole audio at once, ``plays_after`` for one whose listener
        has audio queued before it (see :meth:`~.core.Scheduler.add`)."""
        if self._crashed is not None:
            raise RuntimeError("the scheduler loop has stopped") from self._crashed
        seconds_per_frame = voice.hop_length / voice.info.sample_rate
        now = self._clock()
        stream_id = self._scheduler.add(now, seconds_per_frame, paced, plays_after)
        job = _Job(voice, speech, options, now)
        self._jobs[stream_id] = job
        self._wake.set()
        return ScheduledStream(self, stream_id, job)

    def unpace(self) -> None:
        """Let every stream run as fast as the engine allows from now on (see :meth:`~.core.Scheduler.unpace`)."""
        self._scheduler.unpace()
        self._wake.set()

    def _sent(self, stream_id: int) -> None:
        self._scheduler.sent(stream_id)
        self._wake.set()

    def _abort(self, stream_id: int) -> None:
        """Drop a stream's remaining work: nothing of it enters a step after this."""
        self._scheduler.abort(stream_id)
        self._jobs.pop(stream_id, None)
        self._wake.set()

    def _finish(self, stream_id: int, last: Any) -> None:
        job = self._jobs.pop(stream_id, None)
        self._scheduler.abort(stream_id)
        if job is not None:
            job.queue.put_nowait(last)

    # -- the stepping task --------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = self._clock()
            step = self._scheduler.next_step(now)
            if step is None:
                self._wake.clear()
                wake_at = self._scheduler.next_wake(now)
                timeout = None if wake_at is None else max(0.0, wake_at - now)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
                continue
            jobs = {stream_id: self._jobs[stream_id] for stream_id in step.stream_ids}
            for job in jobs.values():
                if job.queue_wait is None:
                    job.queue_wait = now - job.opened_at
            started = time.perf_counter()
            try:
                outcome = await loop.run_in_executor(self._worker, self._execute, step, jobs)
            except Exception as error:
                log.error("engine step failed for streams %s", sorted(jobs), exc_info=error)
                for stream_id in jobs:
                    self._finish(stream_id, error)
                continue
            if self._on_step is not None:
                self._on_step(len(step.encodes) + len(step.decodes), time.perf_counter() - started)
            self._deliver(step, outcome)
            # Let the streams' handlers hand the new chunks to gRPC before the engine's threads
            # take the cores again for the next step: one turn of the event loop.
            await asyncio.sleep(0)

    def _deliver(self, step: Step, outcome: _Outcome) -> None:
        for stream_id, error in outcome.failures.items():
            self._finish(stream_id, error)
        # A sentence's start goes before its first chunk (both came from this step).
        for stream_id, start in outcome.starts:
            if stream_id in self._jobs:
                self._jobs[stream_id].queue.put_nowait(start)
        for work, samples in self._scheduler.complete(step, outcome.encoded, outcome.audio, self._clock()):
            job = self._jobs.get(work.stream_id)
            if job is None:
                continue
            job.queue.put_nowait(self._chunk(job, work, samples))
            if work.last_in_stream:
                self._finish(work.stream_id, _END)

    @staticmethod
    def _chunk(job: _Job, work: DecodeWork, samples: np.ndarray) -> AudioChunk:
        start = job.sentence_offsets[work.sentence] + work.start * job.voice.hop_length
        return AudioChunk(samples, work.sentence, start, work.last_in_sentence, work.last_in_stream)

    # -- on the engine thread -----------------------------------------------------------

    def _execute(self, step: Step, jobs: dict[int, _Job]) -> _Outcome:
        failures: dict[int, Exception] = {}
        to_encode: list[tuple[int, SentenceRequest]] = []
        heads = [(position, work) for position, work in enumerate(step.encodes) if work.head is not None]
        for position, work in enumerate(step.encodes):
            if work.head is not None:
                continue
            job = jobs[work.stream_id]
            try:
                if job.requests is None:  # the stream's first step: split and phonemize its text
                    phonemized = job.voice.phonemizer.speak(job.speech, with_words=job.options.word_timestamps)
                    job.requests = self._engine.sentence_requests(job.voice, phonemized, job.options)
                to_encode.append((position, job.requests[work.sentence]))
            except Exception as error:
                failures[work.stream_id] = error

        encoded: list[Encoded | None] = [None] * len(step.encodes)
        starts: list[tuple[int, SentenceStart]] = []
        sentences = self._engine.encode([request for _, request in to_encode]) if to_encode else []
        first_audio = self._decode(
            [DecodeWindow(sentence, *self._windows(sentence.num_frames)[0]) for sentence in sentences]
        )
        for (position, _), sentence, audio in zip(to_encode, sentences, first_audio):
            work = step.encodes[position]
            job = jobs[work.stream_id]
            job.sentence_offsets.append(job.next_offset)  # sentences are encoded in order
            encoded[position] = Encoded(sentence, sentence.num_frames, job.num_sentences, audio, sentence.complete)
            if sentence.complete:  # a head's start waits for its rest (it carries the whole length)
                starts.append((work.stream_id, self._start(job, work, sentence)))

        wholes = self._engine.finish([work.head for _, work in heads]) if heads else []
        for (position, work), sentence in zip(heads, wholes):
            job = jobs[work.stream_id]
            encoded[position] = Encoded(sentence, sentence.num_frames, job.num_sentences, None)
            starts.append((work.stream_id, self._start(job, work, sentence)))

        windows = self._decode([DecodeWindow(work.encoded, work.start, work.end) for work in step.decodes])
        return _Outcome(encoded, starts, windows, failures)

    @staticmethod
    def _start(job: _Job, work: EncodeWork, sentence: EncodedSentence) -> SentenceStart:
        """A complete sentence's start; the next sentence begins where it ends."""
        offset = job.sentence_offsets[work.sentence]
        job.next_offset = offset + sentence.num_samples
        return SentenceStart.of(sentence, work.sentence, offset)

    def _decode(self, windows: list[DecodeWindow]) -> list[np.ndarray]:
        """Decode in calls of at most ``max_decode_batch`` windows."""
        size = self._scheduler.config.max_decode_batch
        return [audio for at in range(0, len(windows), size) for audio in self._engine.decode(windows[at : at + size])]


class ScheduledStream:
    """One admitted stream's output, read by the transport.

    Iterating yields its audio chunks as the scheduler produces them; taking a
    chunk tells the scheduler it was sent (backpressure). :meth:`aclose` must be
    awaited when the caller is done, early or not: it aborts whatever work remains.
    """

    def __init__(self, loop: SchedulerLoop, stream_id: int, job: _Job) -> None:
        self.stream_id = stream_id
        self.sentences: list[SentenceStart] = []
        self._loop = loop
        self._job = job
        self._queue = job.queue
        self._open = True

    @property
    def queue_wait_seconds(self) -> float | None:
        """How long the stream waited for its first engine step (None: not started yet)."""
        return self._job.queue_wait

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        while self._open:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, SentenceStart):
                self.sentences.append(item)
                continue
            self._loop._sent(self.stream_id)
            yield item

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._loop._abort(self.stream_id)
