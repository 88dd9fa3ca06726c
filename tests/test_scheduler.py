"""The scheduler's decisions, as a state machine driven by hand: no model, no clock, no threads."""

from __future__ import annotations

import pytest

from syrinx.server.engine import InvalidOptionError
from syrinx.server.scheduler import OverCapacityError, Scheduler, SchedulerConfig
from syrinx.server.scheduler.core import Encoded, Step

FRAME = 0.01  # seconds of audio per latent frame in these tests
WINDOW = 10  # frames per decode window: 0.1 s of audio


def windows(num_frames: int) -> list[tuple[int, int]]:
    return [(s, min(s + WINDOW, num_frames)) for s in range(0, num_frames, WINDOW)]


def audio_of(stream: int, sentence: int, start: int) -> tuple:
    """What the fake engine "decodes" for a window: who it belongs to."""
    return ("audio", stream, sentence, start)


def make(**limits) -> Scheduler:
    defaults = dict(max_streams=8, max_encode_batch=8, max_decode_batch=8, max_step_frames=1000, max_ahead_seconds=1.0)
    return Scheduler(SchedulerConfig(**{**defaults, **limits}), windows)


class Driver:
    """Runs steps as a fake engine would: every sentence is ``frames`` long; streams have ``sentences`` each."""

    def __init__(self, scheduler: Scheduler, frames: int = 30, sentences: dict[int, int] | None = None) -> None:
        self.scheduler = scheduler
        self.frames = frames
        self.sentences = sentences or {}
        self.delivered: list[tuple[int, int, int]] = []  # (stream, sentence, start frame)

    def step(self, now: float, send: bool = True) -> Step | None:
        step = self.scheduler.next_step(now)
        if step is None:
            return None
        encoded = [
            Encoded(
                ("enc", w.stream_id, w.sentence),
                self.frames,
                self.sentences.get(w.stream_id, 1),
                audio_of(w.stream_id, w.sentence, 0),
            )
            for w in step.encodes
        ]
        audio = [audio_of(w.stream_id, w.sentence, w.start) for w in step.decodes]
        for work, samples in self.scheduler.complete(step, encoded, audio, now):
            assert samples == audio_of(work.stream_id, work.sentence, work.start)  # each window with its own audio
            self.delivered.append((work.stream_id, work.sentence, work.start))
            if send:
                self.scheduler.sent(work.stream_id)
        return step


def test_a_stream_is_encoded_with_its_first_window_then_decoded_window_by_window_in_order():
    scheduler = make()
    driver = Driver(scheduler, frames=25)
    stream = scheduler.add(0.0, FRAME)
    first = driver.step(0.0)
    assert [(w.stream_id, w.sentence) for w in first.encodes] == [(stream, 0)] and not first.decodes
    assert driver.delivered == [(stream, 0, 0)]  # the first window came with the encode: one step, not two
    second = driver.step(0.0)
    assert [(w.start, w.end, w.encoded) for w in second.decodes] == [(10, 20, ("enc", stream, 0))]
    while driver.step(0.0):
        pass
    assert driver.delivered == [(stream, 0, 0), (stream, 0, 10), (stream, 0, 20)]
    assert scheduler.active_streams == 0  # finished streams leave


def test_one_item_per_stream_per_step_and_sentences_follow_each_other():
    scheduler = make()
    driver = Driver(scheduler, frames=20, sentences={0: 3})  # two windows per sentence
    scheduler.add(0.0, FRAME)
    kinds = []
    while (step := driver.step(0.0)) is not None:
        assert len(step.encodes) + len(step.decodes) == 1
        kinds.append("E" if step.encodes else "D")
    assert kinds == ["E", "D"] * 3
    assert driver.delivered == [(0, sentence, start) for sentence in range(3) for start in (0, 10)]
    assert scheduler.active_streams == 0


def test_new_stream_goes_before_streams_that_already_have_audio():
    scheduler = make(max_decode_batch=1, max_encode_batch=1)
    driver = Driver(scheduler, frames=200)
    old = scheduler.add(0.0, FRAME)
    driver.step(0.0)  # old: encoded, first window out at t=0 -> due at 0.1 s
    new = scheduler.add(0.05, FRAME)
    step = driver.step(0.05)
    # The newcomer (due since it arrived at 0.05) beats the old stream (due at 0.1), encode and decode alike.
    assert [w.stream_id for w in step.encodes] == [new]
    assert [w.stream_id for w in step.decodes] == [old]  # different kinds share a step
    step = driver.step(0.06)
    assert [w.stream_id for w in step.decodes] == [new]


def test_the_stream_closest_to_running_dry_goes_first():
    scheduler = make(max_decode_batch=1)
    driver = Driver(scheduler, frames=500)
    a, b = scheduler.add(0.0, FRAME), scheduler.add(0.0, FRAME)
    driver.step(0.0)  # both encoded in one batch, each with its first window: both due at 0.1
    driver.step(0.0)  # a again (tie broken by age): due 0.2
    assert [s for s, _, _ in driver.delivered] == [a, b, a]
    step = driver.step(0.0)
    assert [w.stream_id for w in step.decodes] == [b]  # b has less buffered (due 0.1 < 0.2)


def test_a_stream_far_ahead_of_real_time_waits_until_it_is_due():
    scheduler = make(max_ahead_seconds=0.3)
    driver = Driver(scheduler, frames=1000)
    scheduler.add(0.0, FRAME)
    while driver.step(0.0) is not None:
        pass
    assert len(driver.delivered) * WINDOW * FRAME == pytest.approx(0.3)  # stopped 0.3 s ahead of real time
    assert scheduler.next_wake(0.0) == pytest.approx(0.0)  # ready again as soon as any audio has played
    assert driver.step(0.05) is not None  # 0.05 s played: room for one more window
    assert driver.step(0.05) is None
    assert scheduler.next_wake(0.05) == pytest.approx(0.1)


def test_an_unpaced_stream_never_waits_for_real_time():
    scheduler = make(max_ahead_seconds=0.3)
    driver = Driver(scheduler, frames=1000)
    scheduler.add(0.0, FRAME, paced=False)  # a unary call: nobody plays it as it comes
    while driver.step(0.0) is not None:
        pass
    assert len(driver.delivered) == 1000 // WINDOW  # all of it, without the clock moving
    assert scheduler.next_wake(0.0) is None


def test_an_unpaced_stream_far_ahead_waits_while_a_paced_one_has_work():
    scheduler = make(max_decode_batch=1, max_ahead_seconds=0.5)
    driver = Driver(scheduler, frames=1000)
    unary = scheduler.add(0.0, FRAME, paced=False)
    for _ in range(20):  # the unary call alone: 2 s of audio ready at once
        driver.step(0.0)
    paced = scheduler.add(0.0, FRAME)
    first = driver.step(0.0)
    assert [w.stream_id for w in first.encodes] == [paced] and not first.decodes  # nothing rides along
    order = [w.stream_id for _ in range(6) for w in driver.step(0.0).decodes]
    # The paced stream (due at 0.1 s) goes on until it is 0.5 s ahead; then the unary call.
    assert order == [paced] * 4 + [unary] * 2


def test_an_unpaced_stream_behind_real_time_takes_its_turn_among_paced_ones():
    scheduler = make(max_decode_batch=1, max_ahead_seconds=0.5)
    driver = Driver(scheduler, frames=1000)
    unary = scheduler.add(0.0, FRAME, paced=False)
    paced = scheduler.add(0.0, FRAME)
    driver.step(0.0)  # both encoded, each with its first window: both due at 0.1 s
    order = [w.stream_id for _ in range(4) for w in driver.step(0.0).decodes]
    assert order == [unary, paced, unary, paced]  # earliest due first, ties to the older stream


def test_unsent_chunks_hold_a_stream_back_until_the_transport_takes_them():
    scheduler = make(max_unsent_chunks=2, max_ahead_seconds=100)
    driver = Driver(scheduler, frames=1000)
    stream = scheduler.add(0.0, FRAME)
    while driver.step(0.0, send=False) is not None:
        pass
    assert len(driver.delivered) == 2
    assert scheduler.next_wake(0.0) is None  # not a matter of time
    scheduler.sent(stream)
    assert driver.step(0.0, send=False) is not None
    assert driver.step(0.0, send=False) is None


def test_aborted_stream_gets_no_more_steps_and_its_in_flight_work_is_dropped():
    scheduler = make()
    driver = Driver(scheduler, frames=1000)
    a, b = scheduler.add(0.0, FRAME), scheduler.add(0.0, FRAME)
    driver.step(0.0)
    step = scheduler.next_step(0.0)  # a and b decoding
    assert {w.stream_id for w in step.decodes} == {a, b}
    scheduler.abort(a)
    delivered = scheduler.complete(step, [], [audio_of(w.stream_id, 0, w.start) for w in step.decodes], 0.0)
    assert [(w.stream_id, samples) for w, samples in delivered] == [(b, audio_of(b, 0, 10))]  # not a's
    for _ in range(5):
        step = driver.step(0.0)
        assert a not in step.stream_ids
    assert scheduler.active_streams == 1


def test_failed_encode_does_not_block_the_others():
    scheduler = make()
    a, b = scheduler.add(0.0, FRAME), scheduler.add(0.0, FRAME)
    step = scheduler.next_step(0.0)
    scheduler.abort(a)  # the loop aborts a stream whose item failed
    delivered = scheduler.complete(step, [None, Encoded("enc-b", 20, 1, "b's first audio")], [], 0.0)
    assert [(w.stream_id, w.start, samples) for w, samples in delivered] == [(b, 0, "b's first audio")]
    step = scheduler.next_step(0.0)
    assert [(w.stream_id, w.start) for w in step.decodes] == [(b, 10)]


def test_batches_respect_their_limits_and_the_step_frame_budget():
    scheduler = make(max_encode_batch=3, max_decode_batch=4, max_step_frames=25)
    driver = Driver(scheduler, frames=100)
    ids = [scheduler.add(0.0, FRAME) for _ in range(6)]
    assert len(driver.step(0.0).encodes) == 3
    step = driver.step(0.0)
    assert len(step.encodes) == 3 and len(step.decodes) == 2  # 2 x 10 frames fit in 25, a third does not
    assert {w.stream_id for w in step.decodes} == set(ids[:2])


def test_one_oversized_window_still_runs_alone():
    scheduler = make(max_step_frames=5)
    driver = Driver(scheduler, frames=100)
    scheduler.add(0.0, FRAME)
    driver.step(0.0)
    assert [w.end - w.start for w in driver.step(0.0).decodes] == [10]


def test_a_long_text_does_not_starve_short_requests():
    scheduler = make(max_decode_batch=1, max_encode_batch=1, max_ahead_seconds=0.5)
    driver = Driver(scheduler, frames=20, sentences={0: 50})  # stream 0: 50 sentences
    long = scheduler.add(0.0, FRAME)
    now = 0.0
    for _ in range(10):
        driver.step(now)
    short_arrivals = {}
    for _ in range(5):
        now += 0.2
        short_arrivals[scheduler.add(now, FRAME)] = now
        for _ in range(4):
            driver.step(now)
    served = {s for s, _, _ in driver.delivered}
    assert set(short_arrivals) <= served  # every short request got audio within four steps of arriving
    assert long in served


def test_admission_limits_streams_and_streams_waiting_to_start():
    scheduler = make(max_streams=3, max_waiting_streams=2, retry_after_seconds=0.5)
    driver = Driver(scheduler, frames=100)
    scheduler.add(0.0, FRAME), scheduler.add(0.0, FRAME)
    with pytest.raises(OverCapacityError, match="2 streams waiting") as info:
        scheduler.add(0.0, FRAME)
    assert info.value.retry_after_seconds == 0.5
    driver.step(0.0)  # both encoded with their first windows: no longer waiting
    scheduler.add(0.0, FRAME)
    with pytest.raises(OverCapacityError, match="limit of 3 concurrent streams"):
        scheduler.add(0.0, FRAME)
    scheduler.abort(0)
    scheduler.add(0.0, FRAME)  # a slot freed by abort is reusable at once


@pytest.mark.parametrize(
    "limits, words",
    [
        (dict(max_streams=0), "max_streams"),
        (dict(max_streams=2, max_waiting_streams=3), "exceeds"),
        (dict(max_ahead_seconds=float("nan")), "max_ahead_seconds"),
        (dict(max_decode_batch=0), "max_decode_batch"),
    ],
)
def test_invalid_limits_are_rejected(limits, words):
    with pytest.raises(InvalidOptionError, match=words):
        SchedulerConfig(**limits)


def test_a_sentence_encoded_head_first_gets_its_rest_encoded_before_its_second_window():
    scheduler = make()
    stream = scheduler.add(0.0, FRAME)
    first = scheduler.next_step(0.0)
    (work,) = first.encodes
    assert work.head is None
    # The engine encoded 22 of the sentence's frames: enough for its first window only.
    head = Encoded("head", 22, 1, audio_of(stream, 0, 0), complete=False)
    (delivered,) = scheduler.complete(first, [head], [], 0.0)
    assert (delivered[0].start, delivered[0].end, delivered[0].last_in_sentence) == (0, 10, False)
    scheduler.sent(stream)

    rest = scheduler.next_step(0.0)
    assert not rest.decodes and [(w.stream_id, w.sentence, w.head) for w in rest.encodes] == [(stream, 0, "head")]
    # The whole sentence is 25 frames: its windows now follow from that, from the second on.
    assert scheduler.complete(rest, [Encoded("whole", 25, 1, None)], [], 0.0) == []
    ends = []
    while (step := scheduler.next_step(0.0)) is not None:
        assert not step.encodes
        for work, _ in scheduler.complete(
            step, [], [audio_of(w.stream_id, w.sentence, w.start) for w in step.decodes], 0.0
        ):
            assert work.encoded == "whole"
            ends.append((work.start, work.end, work.last_in_sentence, work.last_in_stream))
            scheduler.sent(stream)
    assert ends == [(10, 20, False, False), (20, 25, True, True)]
    assert scheduler.active_streams == 0


def test_a_stream_aborted_while_its_rest_is_encoded_is_dropped():
    scheduler = make()
    stream = scheduler.add(0.0, FRAME)
    first = scheduler.next_step(0.0)
    scheduler.complete(first, [Encoded("head", 22, 1, audio_of(stream, 0, 0), complete=False)], [], 0.0)
    rest = scheduler.next_step(0.0)
    scheduler.abort(stream)
    assert scheduler.complete(rest, [Encoded("whole", 25, 1, None)], [], 0.0) == []
    assert scheduler.next_step(0.0) is None and scheduler.active_streams == 0


def test_a_stream_with_audio_queued_before_it_yields_to_one_due_now_and_is_paced_from_its_start():
    scheduler = make(max_encode_batch=1, max_ahead_seconds=1.0)
    driver = Driver(scheduler, frames=300, sentences={0: 1, 1: 1})  # 3 s of audio each
    later = scheduler.add(0.0, FRAME, plays_after=2.0)  # a live utterance's next segment
    newcomer = scheduler.add(0.0, FRAME)
    first = driver.step(0.0)
    assert [w.stream_id for w in first.encodes] == [newcomer]  # due now goes first
    second = driver.step(0.0)
    assert [w.stream_id for w in second.encodes] == [later]  # nothing more urgent: it runs (no idling)

    def produced(stream: int) -> int:
        return sum(1 for s, _, _ in driver.delivered if s == stream)  # 0.1 s windows

    while driver.step(0.0):
        pass
    assert (produced(newcomer), produced(later)) == (11, 1)  # 1 s ahead of now / of its listener's start at 2 s
    while driver.step(1.5):
        pass
    # At t = 1.5 the newcomer may run to 2.5 s of audio; the other's listener starts at 2 s, so 0.5 s.
    assert (produced(newcomer), produced(later)) == (25, 5)


def test_unpaced_streams_run_on_past_real_time_newcomers_too():
    scheduler = make(max_ahead_seconds=1.0)
    driver = Driver(scheduler, frames=300)  # 3 s of audio
    held = scheduler.add(0.0, FRAME)
    while driver.step(0.0):
        pass
    assert sum(1 for s, _, _ in driver.delivered if s == held) == 11  # held back 1 s ahead of real time
    scheduler.unpace()  # SIGTERM: finish what is in flight as fast as the engine allows
    newcomer = scheduler.add(0.0, FRAME)
    while driver.step(0.0):
        pass
    produced = {stream: sum(1 for s, _, _ in driver.delivered if s == stream) for stream in (held, newcomer)}
    assert produced == {held: 30, newcomer: 30} and scheduler.active_streams == 0


def test_a_drain_finishes_the_streams_with_the_least_work_left_first():
    """When the grace cannot cover every stream, as many as possible should end whole: least
    work left first, not all of them round robin (which would cut them all near their ends)."""
    scheduler = make(max_encode_batch=1, max_decode_batch=1, max_ahead_seconds=0.2)
    long, short, middle = (scheduler.add(0.0, FRAME) for _ in range(3))
    driver = Driver(scheduler, frames=100, sentences={long: 4, short: 1, middle: 2})
    while driver.step(0.0):  # each held 0.2 s ahead of real time
        pass
    scheduler.unpace()
    before = len(driver.delivered)
    while driver.step(0.0):
        pass
    order = [stream for stream, _, _ in driver.delivered[before:]]
    # The shortest runs to its end before anything else is decoded (round robin would interleave
    # all three and finish none early); then the middle one ends before the longest.
    assert order[: order.count(short)] == [short] * order.count(short)
    last = {stream: len(order) - 1 - order[::-1].index(stream) for stream in (short, middle, long)}
    assert last[short] < last[middle] < last[long]
