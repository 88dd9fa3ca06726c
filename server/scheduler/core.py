"""The scheduling decisions, as a synchronous state machine with no model and no I/O.

Every active stream has at most one piece of engine work in flight: encoding
its next sentence, or decoding the next window of the sentence it is on. Each
call to :meth:`Scheduler.next_step` gathers the most urgent ready work of all
streams into one step (one batched encode call and one batched decode call);
:meth:`Scheduler.complete` takes the step's results and says what to deliver
to whom. Time is a parameter (``now``) so the rules are testable without a clock.

An encode item also covers the first window of the sentence it encodes: the
engine decodes that window in the same step, right after encoding, so a
sentence's first audio costs one trip to the engine, not two. A long sentence
may come back encoded head first (enough frames for that window only); its
stream's next work is then an encode item for the rest, after which its
windows follow from its whole length.

Urgency is the moment a listener would run dry: a stream that has sent no
audio yet is due since it arrived; one that has is due when the audio it has
sent, played in real time from its first chunk, runs out. Earliest first. A
stream more than ``max_ahead_seconds`` ahead of real time, or whose transport
has not taken its last chunks, waits (backpressure), which also keeps one long
text from holding the device while short ones queue.

A stream added unpaced (a unary call, whose caller waits for all of its audio
and plays none of it as it comes) is held back like any other while a paced
stream has work ready, and runs on regardless of real time when none has: it
uses the time the engine would otherwise stand idle. A paced stream that
arrives meanwhile waits only for the window in progress (a step is never
interrupted), as it would behind another stream's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.errors import InvalidOptionError, SyrinxError


class OverCapacityError(SyrinxError):
    """Admission refused: too many streams, or too many waiting to start."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class SchedulerConfig:
    max_streams: int = 16  # streams being synthesized at once
    # Of those, how many may still wait for their first audio (the queued work); None: max_streams.
    max_waiting_streams: int | None = None
    # Sentences per encode call and windows per decode call. 1 on the CPU: oneDNN
    # and MKL split a lone item's work between threads differently from a batch's,
    # so a batched item's audio can differ in the last bit from the same item
    # alone; one item per call keeps every stream's audio byte-identical to the
    # same request run alone. GPUs batch (see server.config.scheduler_defaults).
    max_encode_batch: int = 1
    max_decode_batch: int = 1
    max_step_frames: int = 256  # latent frames decoded per step; bounds how long a step holds the device
    max_ahead_seconds: float = 2.0  # audio a stream may have ready beyond real time
    max_unsent_chunks: int = 4  # chunks produced but not yet taken by the transport
    retry_after_seconds: float = 1.0  # the hint sent with RESOURCE_EXHAUSTED

    @property
    def waiting_limit(self) -> int:
        """``max_waiting_streams``, resolved (it is ``max_streams`` where left unset)."""
        return self.max_streams if self.max_waiting_streams is None else self.max_waiting_streams

    def __post_init__(self) -> None:
        if self.max_waiting_streams is None:
            object.__setattr__(self, "max_waiting_streams", self.max_streams)
        for name in (
            "max_streams",
            "max_waiting_streams",
            "max_encode_batch",
            "max_decode_batch",
            "max_step_frames",
            "max_unsent_chunks",
        ):
            if getattr(self, name) < 1:
                raise InvalidOptionError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.waiting_limit > self.max_streams:
            raise InvalidOptionError(
                f"max_waiting_streams ({self.max_waiting_streams}) exceeds max_streams ({self.max_streams})"
            )
        for name in ("max_ahead_seconds", "retry_after_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidOptionError(f"{name} must be a positive number of seconds, got {value}")


@dataclass(frozen=True)
class EncodeWork:
    stream_id: int
    sentence: int
    head: Any = None  # the sentence encoded head first, whose rest this encodes (opaque here)


@dataclass(frozen=True)
class DecodeWork:
    stream_id: int
    sentence: int
    encoded: Any  # the engine's encoded sentence (opaque here)
    start: int  # frames [start, end) of the sentence
    end: int
    last_in_sentence: bool
    last_in_stream: bool


@dataclass(frozen=True)
class Step:
    encodes: tuple[EncodeWork, ...]
    decodes: tuple[DecodeWork, ...]

    @property
    def stream_ids(self) -> set[int]:
        return {w.stream_id for w in self.encodes} | {w.stream_id for w in self.decodes}


@dataclass(frozen=True)
class Encoded:
    """What the scheduler needs from an encode result."""

    handle: Any  # passed back to the engine in DecodeWork.encoded
    num_frames: int  # so far, if not ``complete``
    num_sentences: int  # of the whole stream (known once its text is split)
    # The sentence's first window (``windows(num_frames)[0]``), decoded in the same step; None for a rest.
    first_audio: Any
    complete: bool = True  # False: encoded head first, its rest to come (EncodeWork.head)


@dataclass
class _Stream:
    id: int
    arrival: float
    seconds_per_frame: float
    num_sentences: int | None = None  # unknown until the first encode splits the text
    sentence: int = 0  # the sentence being decoded (or next to encode)
    encoded: Any = None
    head_only: bool = False  # ``encoded`` is a head; the rest is to encode before its second window
    windows: list[tuple[int, int]] = field(default_factory=list)
    window: int = 0
    in_flight: bool = False
    first_audio_at: float | None = None
    produced_seconds: float = 0.0
    unsent_chunks: int = 0
    paced: bool = True  # held back when far ahead of real time (False: a unary call's stream)
    plays_at: float = 0.0  # when its listener starts playing it at the earliest (after audio queued before it)

    def due(self) -> float:
        """When a listener playing this stream in real time runs out of audio."""
        if self.first_audio_at is None:
            return max(self.arrival, self.plays_at)
        return max(self.first_audio_at, self.plays_at) + self.produced_seconds

    def ahead(self, now: float) -> float:
        return 0.0 if self.first_audio_at is None else self.due() - now

    def needs_encode(self) -> bool:
        return self.encoded is None or self.head_only

    def remaining(self) -> tuple[float, float]:
        """How much work is left, roughly: sentences after this one, then windows of this one.
        A stream whose text is not split yet counts as the longest."""
        if self.num_sentences is None:
            return (math.inf, math.inf)
        windows_left = len(self.windows) - self.window if self.windows else math.inf
        return (self.num_sentences - self.sentence - 1, windows_left)


class Scheduler:
    def __init__(self, config: SchedulerConfig, windows: Callable[[int], list[tuple[int, int]]]) -> None:
        """``windows`` cuts a sentence of N frames into its decode windows (the engine's chunk policy)."""
        self.config = config
        self._windows = windows
        self._streams: dict[int, _Stream] = {}
        self._next_id = 0
        self._unpaced = False  # draining: nobody waits for real time any more

    # -- admission ----------------------------------------------------------------------

    def add(self, now: float, seconds_per_frame: float, paced: bool = True, plays_after: float = 0.0) -> int:
        """Admit a stream and return its id, or raise :class:`OverCapacityError` at once.

        ``paced=False`` for a stream nobody plays as it comes (a unary call): ahead of real
        time, it still runs whenever no paced stream has work ready. ``plays_after``: seconds of
        audio its listener has yet to play before this stream's (the segments of a live
        utterance before this one): its first audio is due that much later, and its pacing
        counts from then."""
        config = self.config
        if len(self._streams) >= config.max_streams:
            raise OverCapacityError(
                f"server is at its limit of {config.max_streams} concurrent streams; retry shortly",
                config.retry_after_seconds,
            )
        if self.waiting_streams >= config.waiting_limit:
            raise OverCapacityError(
                f"server has {config.max_waiting_streams} streams waiting to start; retry shortly",
                config.retry_after_seconds,
            )
        stream_id = self._next_id
        self._next_id += 1
        self._streams[stream_id] = _Stream(
            stream_id, now, seconds_per_frame, paced=paced and not self._unpaced, plays_at=now + plays_after
        )
        return stream_id

    def unpace(self) -> None:
        """Stop holding streams back for being ahead of real time (a drain: every stream in flight
        should finish as fast as the engine allows, before the grace period runs out). From now on
        the stream with the least work left goes first, not the earliest due: when the grace cannot
        cover them all, as many as possible end whole, instead of all of them being cut near their
        ends together. The transport's backpressure still bounds what a slow reader holds."""
        self._unpaced = True
        for stream in self._streams.values():
            stream.paced = False

    def abort(self, stream_id: int) -> None:
        """Forget a stream (cancelled, expired, failed or finished); work in flight is discarded on completion."""
        self._streams.pop(stream_id, None)

    def sent(self, stream_id: int) -> None:
        """The transport took one of the stream's chunks."""
        stream = self._streams.get(stream_id)
        if stream is not None and stream.unsent_chunks > 0:
            stream.unsent_chunks -= 1

    # -- stepping -----------------------------------------------------------------------

    def next_step(self, now: float) -> Step | None:
        """The most urgent ready work of all streams, batched; ``None`` when nothing is ready."""
        config = self.config
        encodes: list[EncodeWork] = []
        decodes: list[DecodeWork] = []
        frames = 0
        urgency = (lambda s: (s.remaining(), s.id)) if self._unpaced else (lambda s: (s.due(), s.id))
        for stream in sorted(self._ready(now), key=urgency):
            if stream.needs_encode():
                if len(encodes) < config.max_encode_batch:
                    encodes.append(EncodeWork(stream.id, stream.sentence, stream.encoded))
                    stream.in_flight = True
                continue
            work = self._window_work(stream)
            if len(decodes) >= config.max_decode_batch or (
                decodes and frames + work.end - work.start > config.max_step_frames
            ):
                continue
            frames += work.end - work.start
            decodes.append(work)
            stream.in_flight = True
        if not encodes and not decodes:
            return None
        return Step(tuple(encodes), tuple(decodes))

    def complete(
        self, step: Step, encoded: Sequence[Encoded | None], audio: Sequence[Any], now: float
    ) -> list[tuple[DecodeWork, Any]]:
        """Record a finished step; returns the windows to deliver, each with its audio.

        ``encoded`` follows ``step.encodes`` (``None`` marks an item that failed:
        its stream is expected to be aborted by the caller) and ``audio`` follows
        ``step.decodes``; both are opaque here. Each newly encoded sentence's
        first window comes first in the result (a rest brings no audio). Work of
        streams aborted meanwhile is dropped here.
        """
        delivered = []
        for work, result in zip(step.encodes, encoded):
            stream = self._streams.get(work.stream_id)
            if stream is None or result is None:
                continue
            stream.in_flight = False
            stream.num_sentences = result.num_sentences
            stream.encoded = result.handle
            stream.head_only = not result.complete
            # A head's frames give the same first window as the whole sentence's.
            stream.windows = self._windows(result.num_frames)
            if work.head is not None:
                continue  # the rest: its first window is out already
            stream.window = 0
            delivered.append((self._decoded(stream, self._window_work(stream), now), result.first_audio))
        for window, samples in zip(step.decodes, audio):
            stream = self._streams.get(window.stream_id)
            if stream is None:
                continue
            stream.in_flight = False
            delivered.append((self._decoded(stream, window, now), samples))
        return delivered

    @staticmethod
    def _window_work(stream: _Stream) -> DecodeWork:
        """The stream's current window as engine work."""
        start, end = stream.windows[stream.window]
        assert stream.num_sentences is not None, "a stream has windows only once its text is split"
        last_in_sentence = stream.window == len(stream.windows) - 1 and not stream.head_only
        return DecodeWork(
            stream.id,
            stream.sentence,
            stream.encoded,
            start,
            end,
            last_in_sentence,
            last_in_sentence and stream.sentence == stream.num_sentences - 1,
        )

    def _decoded(self, stream: _Stream, work: DecodeWork, now: float) -> DecodeWork:
        """Account for one decoded window of ``stream`` and move it to its next piece of work."""
        if stream.first_audio_at is None:
            stream.first_audio_at = now
        stream.produced_seconds += (work.end - work.start) * stream.seconds_per_frame
        stream.unsent_chunks += 1
        stream.window += 1
        if work.last_in_stream:
            del self._streams[work.stream_id]  # done; its audio is on its way
        elif work.last_in_sentence:
            stream.sentence += 1
            stream.encoded, stream.windows, stream.window = None, [], 0  # release the sentence's tensors
        return work

    def next_wake(self, now: float) -> float | None:
        """When a stream held back only for being ahead of real time becomes ready (``None``: never by time)."""
        limit = self.config.max_ahead_seconds
        times = [s.due() - limit for s in self._streams.values() if self._free(s) and s.paced and s.ahead(now) >= limit]
        return min(times, default=None)

    # -- introspection ------------------------------------------------------------------

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    @property
    def waiting_streams(self) -> int:
        """Admitted streams that have not had their first audio yet."""
        return sum(1 for s in self._streams.values() if s.first_audio_at is None)

    def _free(self, stream: _Stream) -> bool:
        """Nothing in flight and the transport keeping up: only time can still hold it back."""
        return not stream.in_flight and stream.unsent_chunks < self.config.max_unsent_chunks

    def _ready(self, now: float) -> list[_Stream]:
        limit = self.config.max_ahead_seconds
        free = [s for s in self._streams.values() if self._free(s)]
        ready = [s for s in free if s.ahead(now) < limit]
        if any(s.paced for s in ready):
            return ready
        return ready + [s for s in free if not s.paced and s.ahead(now) >= limit]  # the engine is theirs
