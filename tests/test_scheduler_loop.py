"""The scheduler loop with a deterministic fake engine: delivery, cancellation, failures.

The fake engine's audio encodes who it belongs to (every sample is the stream's
tag plus the sample's position), so any mix-up between streams shows.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import threading
import time
import weakref
from types import SimpleNamespace

import numpy as np
import pytest

from syrinx.server.engine import InvalidTextError, SynthesisOptions
from syrinx.server.scheduler import SchedulerConfig, SchedulerLoop
from syrinx.server.text.speech import Speech

HOP = 4
FRAMES_PER_WORD = 3


class FakeVoice:
    hop_length = HOP
    info = SimpleNamespace(sample_rate=400)

    def __init__(self) -> None:
        self.phonemizer = self

    def speak(self, speech: Speech, with_words: bool = False):
        return self.sentences(speech.plain_text or "", with_words)

    def sentences(self, text: str, with_words: bool = False):
        parts = [p.split() for p in text.split(".") if p.strip()]
        if not parts:
            raise InvalidTextError("nothing to speak")
        return [
            SimpleNamespace(tokens=tokens, words=(), phonemes=tuple(tokens), phoneme_ids=tuple(range(len(tokens))))
            for tokens in parts
        ]


def _open(loop: SchedulerLoop, voice, text: str, options: SynthesisOptions, **kwargs):
    return loop.open(voice, Speech.plain(text), options, **kwargs)


class FakeEncoded(SimpleNamespace):
    """An encoded sentence (weak-referenceable, so tests can see when it is freed)."""

    __slots__ = ("__weakref__",)


class FakeEngine:
    """Sentences are words; a word is three frames; a sample is ``tag * 1000 + sample position``."""

    def __init__(self) -> None:
        self.fail_decode_for: set[float] = set()
        self.encoded: list[weakref.ref] = []  # every encoded sentence, without keeping it alive
        self.work_done: collections.Counter[float] = collections.Counter()  # sentences and windows, by tag

    def sentence_requests(self, voice, sentences, options):
        return [SimpleNamespace(voice=voice, sentence=s, tag=options.length_scale) for s in sentences]

    def encode(self, requests):
        self.work_done.update(r.tag for r in requests)
        encoded = [
            FakeEncoded(
                voice=r.voice,
                sentence=r.sentence,
                tag=r.tag,
                num_frames=len(r.sentence.tokens) * FRAMES_PER_WORD,
                num_samples=len(r.sentence.tokens) * FRAMES_PER_WORD * HOP,
                durations=np.full(len(r.sentence.tokens), FRAMES_PER_WORD),
                complete=True,
            )
            for r in requests
        ]
        self.encoded.extend(weakref.ref(e) for e in encoded)
        return encoded

    def decode(self, windows):
        self.work_done.update(w.sentence.tag for w in windows)
        if any(w.sentence.tag in self.fail_decode_for for w in windows):
            raise RuntimeError("decoder blew up")
        return [w.sentence.tag * 1000 + np.arange(w.start * HOP, w.end * HOP, dtype=np.float32) for w in windows]


class HeadFirstFakeEngine(FakeEngine):
    """Sentences over ``2 * head_frames`` frames come back encoded head first, as the real engine's long ones do."""

    def __init__(self, head_frames: int) -> None:
        super().__init__()
        self.head_frames = head_frames
        self.finished = 0

    def encode(self, requests):
        encoded = super().encode(requests)
        for e in encoded:
            if e.num_frames > 2 * self.head_frames:
                e.complete, e.whole_frames, e.num_frames = False, e.num_frames, self.head_frames
        return encoded

    def finish(self, sentences):
        self.finished += sum(not s.complete for s in sentences)
        return [
            s if s.complete else FakeEncoded(**{**vars(s), "num_frames": s.whole_frames, "complete": True})
            for s in sentences
        ]


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_engine_thread_is_set_up_before_it_runs_anything():
    async def main():
        set_up_on: list[int] = []
        loop = SchedulerLoop(
            FakeEngine(),
            SchedulerConfig(),
            lambda n: [(0, n)],
            engine_thread_setup=lambda: set_up_on.append(threading.get_native_id()),
        )
        loop.start()
        ran_on = [await loop.run_in_engine_thread(threading.get_native_id) for _ in range(3)]
        await loop.close()
        return set_up_on, ran_on

    set_up_on, ran_on = run(main())
    assert set_up_on == ran_on[:1] and set(ran_on) == set(set_up_on)  # once, on the one engine thread


async def _started(engine: FakeEngine, clock=time.monotonic, **limits) -> SchedulerLoop:
    loop = SchedulerLoop(
        engine, SchedulerConfig(**limits), lambda n: [(s, min(s + 2, n)) for s in range(0, n, 2)], clock=clock
    )
    loop.start()
    return loop


async def _collect(stream):
    try:
        return [chunk async for chunk in stream]
    finally:
        await stream.aclose()


def test_each_stream_gets_its_own_audio_in_order():
    async def scenario():
        loop = await _started(FakeEngine(), max_encode_batch=4, max_decode_batch=4)
        voice = FakeVoice()
        texts = {1.0: "one two. three", 2.0: "four five six", 3.0: "seven. eight. nine ten"}
        streams = {tag: _open(loop, voice, text, SynthesisOptions(length_scale=tag)) for tag, text in texts.items()}
        results = await asyncio.gather(*(_collect(s) for s in streams.values()))
        await loop.close()
        return texts, streams, results

    texts, streams, results = run(scenario())
    for (tag, text), stream, chunks in zip(texts.items(), streams.values(), results):
        words = [p.split() for p in text.split(".") if p.strip()]
        assert [c.last_in_stream for c in chunks] == [False] * (len(chunks) - 1) + [True]
        for sentence, start in zip(words, stream.sentences):
            audio = np.concatenate([c.samples for c in chunks if c.sentence_index == start.index])
            assert np.array_equal(audio, tag * 1000 + np.arange(len(sentence) * FRAMES_PER_WORD * HOP))
        offsets = [c.start_sample for c in chunks]
        assert offsets == sorted(offsets) and offsets[0] == 0
        assert [s.start_sample for s in stream.sentences] == list(
            np.cumsum([0] + [s.num_samples for s in stream.sentences])[:-1]
        )


def test_a_closed_stream_takes_no_more_engine_steps_and_its_memory_is_freed():
    async def scenario():
        engine = FakeEngine()
        loop = await _started(engine, max_unsent_chunks=1)
        voice = FakeVoice()
        long = _open(loop, voice, " ".join(["word"] * 200), SynthesisOptions(length_scale=1.0))
        iterator = long.__aiter__()
        await iterator.__anext__()
        long_sentence = engine.encoded[0]
        await iterator.aclose()
        await long.aclose()
        steps_at_close = engine.work_done[1.0]
        await _collect(_open(loop, voice, "a short one", SynthesisOptions(length_scale=2.0)))
        gc.collect()
        freed = long_sentence() is None
        await loop.close()
        return steps_at_close, engine.work_done[1.0], freed

    at_close, at_end, freed = run(scenario())
    assert at_end <= at_close + 1  # at most the step already running when it closed
    assert at_end < 200 * FRAMES_PER_WORD / 2 / 4  # far from the whole text
    assert freed, "the closed stream's encoded sentence is still held"


def test_an_unpaced_stream_runs_to_its_end_while_the_clock_stands_still():
    """A unary call's stream is never held back for being ahead of real time: with a clock that
    never moves, a paced stream would stop 0.5 s of audio in, and this one still finishes."""

    async def scenario():
        loop = await _started(FakeEngine(), clock=lambda: 0.0, max_ahead_seconds=0.5)
        stream = _open(loop, FakeVoice(), " ".join(["word"] * 100), SynthesisOptions(length_scale=1.0), paced=False)
        try:
            return await asyncio.wait_for(_collect(stream), timeout=60)  # a hang becomes a failure
        finally:
            await loop.close()

    chunks = run(scenario())
    assert chunks[-1].last_in_stream
    assert sum(len(c.samples) for c in chunks) == 100 * FRAMES_PER_WORD * HOP  # 3 s of audio at 400 Hz


def test_a_failing_step_fails_its_streams_only_and_the_loop_goes_on():
    async def scenario():
        engine = FakeEngine()
        engine.fail_decode_for.add(9.0)
        loop = await _started(engine)
        voice = FakeVoice()
        doomed = _open(loop, voice, "this one fails", SynthesisOptions(length_scale=9.0))
        with pytest.raises(RuntimeError, match="blew up"):
            await _collect(doomed)
        with pytest.raises(InvalidTextError):
            await _collect(_open(loop, voice, "...", SynthesisOptions(length_scale=4.0)))
        fine = await _collect(_open(loop, voice, "this one works", SynthesisOptions(length_scale=5.0)))
        active = loop.active_streams
        await loop.close()
        return fine, active

    fine, active = run(scenario())
    assert fine[-1].last_in_stream and active == 0


def test_a_crashed_loop_fails_its_streams_instead_of_leaving_them_waiting():
    async def scenario():
        loop = await _started(FakeEngine())
        voice = FakeVoice()

        def broken(step, outcome):
            raise AssertionError("scheduler bug")

        loop._deliver = broken
        with pytest.raises(AssertionError, match="scheduler bug"):
            await _collect(_open(loop, voice, "anyone there", SynthesisOptions(length_scale=1.0)))
        with pytest.raises(RuntimeError, match="stopped"):
            _open(loop, voice, "and now", SynthesisOptions(length_scale=1.0))
        await loop.close()

    run(scenario())


def test_a_sentence_encoded_head_first_streams_whole_and_its_start_follows_its_first_chunk():
    async def scenario():
        engine = HeadFirstFakeEngine(head_frames=4)
        loop = await _started(engine)
        # 15 frames (head first: 4 of them, then the rest), then 6 frames (whole).
        stream = _open(loop, FakeVoice(), "one two three four five. six seven", SynthesisOptions(length_scale=1.0))
        chunks, starts_seen = [], []
        try:
            async for chunk in stream:
                chunks.append(chunk)
                starts_seen.append(len(stream.sentences))
        finally:
            await stream.aclose()
        await loop.close()
        return engine, stream, chunks, starts_seen

    engine, stream, chunks, starts_seen = run(scenario())
    assert engine.finished == 1
    assert starts_seen[0] == 0  # the first chunk went out before its sentence's start (it needs the rest)
    assert [s.start_sample for s in stream.sentences] == [0, 15 * HOP]
    assert [s.num_samples for s in stream.sentences] == [15 * HOP, 6 * HOP]
    for start in stream.sentences:
        audio = np.concatenate([c.samples for c in chunks if c.sentence_index == start.index])
        assert np.array_equal(audio, 1000 + np.arange(start.num_samples))
    assert [c.start_sample for c in chunks] == [f * HOP for f in (*range(0, 15, 2), 15, 17, 19)]
    assert [c.last_in_sentence for c in chunks] == [False] * 7 + [True] + [False] * 2 + [True]
