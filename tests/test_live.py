"""LiveSynthesize on a real server on a loopback port: text in fragments, audio and events out."""

from __future__ import annotations

import asyncio
import queue
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from service_fixtures import ServerThread, counted_decodes
from test_service import _until

from syrinx.server.config import ServerConfig
from syrinx.server.scheduler import SchedulerConfig
from syrinx.server.text import Segmenter, SegmenterConfig
from syrinx.v1 import synthesizer_pb2 as pb

SEED = 7


@pytest.fixture(scope="module")
def server():
    config = ServerConfig(host="127.0.0.1", port=0, scheduler=SchedulerConfig(max_streams=8))
    running = ServerThread(config)
    running.make_ready()
    yield running
    running.stop()


def settings(**fields) -> pb.LiveSynthesizeRequest:
    fields.setdefault("seed", SEED)
    return pb.LiveSynthesizeRequest(settings=pb.LiveSettings(**fields))


def say(utterance_id: str, text: str = "", **flags) -> pb.LiveSynthesizeRequest:
    return pb.LiveSynthesizeRequest(utterance_id=utterance_id, text=text, **flags)


def stream_pcm(server, text: str) -> bytes:
    return b"".join(r.audio for r in server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=text, seed=SEED)))


def audio_of(responses, utterance_id: str) -> bytes:
    return b"".join(r.audio for r in responses if r.utterance_id == utterance_id)


def events(responses) -> list[tuple[str, str]]:
    """(utterance, kind) in order, with runs of audio collapsed to one entry."""
    out: list[tuple[str, str]] = []
    for r in responses:
        kind = "flushed" if r.flushed else "done" if r.utterance_done else "cancelled" if r.cancelled else "audio"
        if not out or out[-1] != (r.utterance_id, kind) or kind != "audio":
            out.append((r.utterance_id, kind))
    return out


class Feed:
    """A request stream the test writes to while it reads the responses."""

    def __init__(self, *first: pb.LiveSynthesizeRequest) -> None:
        self._queue: queue.Queue = queue.Queue()
        for message in first:
            self.send(message)

    def send(self, message: pb.LiveSynthesizeRequest) -> None:
        self._queue.put(message)

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self):
        while (message := self._queue.get()) is not None:
            yield message


def test_two_utterances_sound_like_stream_synthesize_of_their_segments(server):
    first = ["Your table", " is booked for ", "seven. The ", "room is upstairs. "]
    second = ["See you ", "then!"]
    responses = list(
        server.stub.LiveSynthesize(
            iter(
                [
                    settings(segmentation=pb.Segmentation(no_eager_first_segment=True)),
                    *[say("a", f) for f in first],
                    say("a", end_of_utterance=True),
                    *[say("b", f) for f in second],
                ]
            )
        )
    )  # half-closed with "b" open: it is finished as if it had end_of_utterance
    assert events(responses) == [("a", "audio"), ("a", "done"), ("b", "audio"), ("b", "done")]
    config = SegmenterConfig(eager_first=False)
    for utterance_id, fragments in (("a", first), ("b", second)):
        segmenter = Segmenter(config)
        segments = [s for f in fragments for s in segmenter.push(f, 0.0)] + segmenter.flush(0.0)
        assert len(segments) == (2 if utterance_id == "a" else 1)
        assert audio_of(responses, utterance_id) == b"".join(stream_pcm(server, s.text) for s in segments)
        chunks = [r for r in responses if r.utterance_id == utterance_id and r.audio]
        assert [r.sequence_number for r in chunks] == list(range(len(chunks)))
        assert chunks[0].format.sample_rate_hz == 22050 and not chunks[1].HasField("format")
        offsets = np.cumsum([0] + [r.num_samples for r in chunks])
        assert [r.offset_samples for r in chunks] == list(offsets[:-1])


def test_telephony_audio_in_exact_frames_each_utterance_its_own_offsets(server):
    audio = pb.AudioConfig(encoding=pb.AUDIO_ENCODING_MULAW, sample_rate_hz=8000, chunk_duration_ms=20)
    responses = list(
        server.stub.LiveSynthesize(
            iter([settings(audio_config=audio), say("a", "Hello there. How are you?"), say("b", "Fine, thanks.")])
        )
    )
    assert events(responses) == [("a", "audio"), ("a", "done"), ("b", "audio"), ("b", "done")]
    for utterance_id in ("a", "b"):
        chunks = [r for r in responses if r.utterance_id == utterance_id and r.audio]
        assert chunks[0].format.encoding == pb.AUDIO_ENCODING_MULAW and chunks[0].format.sample_rate_hz == 8000
        assert all(len(r.audio) == 160 for r in chunks[:-1]) and 0 < len(chunks[-1].audio) <= 160
        assert chunks[0].offset_samples == 0 and chunks[-1].offset_samples == 160 * (len(chunks) - 1)


def test_word_offsets_point_into_the_raw_text(server):
    raw = "**Hello** there, my *friend*. See [the docs](https://x.example) now."
    pieces = [raw[i : i + 5] for i in range(0, len(raw), 5)]
    responses = list(
        server.stub.LiveSynthesize(
            iter(
                [settings(enable_word_timestamps=True), *[say("u", p) for p in pieces], say("u", end_of_utterance=True)]
            )
        )
    )
    words = [w for r in responses for w in r.words]
    assert [w.word for w in words] == ["Hello", "there", "my", "friend", "See", "the", "docs", "now"]
    for w in words:
        assert raw[w.char_start : w.char_end] == w.word
    starts = [w.start_sample for w in words]
    assert starts == sorted(starts) and starts[-1] > 0  # monotonic across segments
    total = sum(r.num_samples for r in responses)
    assert all(w.end_sample <= total for w in words)


def test_cancel_stops_the_audio_and_the_engine_work_and_a_new_utterance_follows_at_once(server):
    service = server.running.service
    with counted_decodes(service) as decodes:
        long_text = " ".join(f"Sentence {i} keeps this answer going for a while." for i in range(40))
        feed = Feed(settings(), say("long", long_text), say("long", flush=True))
        call = server.stub.LiveSynthesize(iter(feed))
        responses = [next(call), next(call)]
        assert all(r.utterance_id == "long" and r.audio for r in responses)
        feed.send(say("long", cancel=True))
        feed.send(say("next", "Sorry, go ahead.", end_of_utterance=True))
        feed.close()
        responses += list(call)
        server.call(_until(lambda: service.active_streams == 0))
        after = decodes["decode"]
    cancelled_at = next(i for i, r in enumerate(responses) if r.cancelled)
    assert responses[cancelled_at].utterance_id == "long"
    assert not any(r.utterance_id == "long" for r in responses[cancelled_at + 1 :])
    assert not any(r.flushed for r in responses)  # its flush was pending: cancelled instead
    assert events(responses[cancelled_at:]) == [("long", "cancelled"), ("next", "audio"), ("next", "done")]
    assert audio_of(responses, "next") == stream_pcm(server, "Sorry, go ahead.")
    assert after < 40, "the cancelled utterance kept synthesizing"  # 40 sentences take well over 40 windows


def test_flush_speaks_mid_sentence_and_is_acknowledged_after_its_audio(server):
    responses = list(
        server.stub.LiveSynthesize(
            iter([settings(), say("u", "Let me check that for"), say("u", flush=True), say("u", " you.")])
        )
    )
    assert events(responses) == [("u", "audio"), ("u", "flushed"), ("u", "audio"), ("u", "done")]


def test_client_segments_speak_each_flushed_fragment_as_one_segment(server):
    responses = list(
        server.stub.LiveSynthesize(
            iter(
                [
                    settings(segmentation=pb.Segmentation(client_segments=True)),
                    say("u", "Hello there. How are", flush=True),
                    say("u", " you?", end_of_utterance=True),
                ]
            )
        )
    )
    assert audio_of(responses, "u") == stream_pcm(server, "Hello there. How are") + stream_pcm(server, " you?")


def _live_error(server, messages) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        list(server.stub.LiveSynthesize(iter(messages)))
    return caught.value


@pytest.mark.parametrize(
    "messages, words",
    [
        ([say("u", "Hello.")], "first message"),
        ([settings(), settings()], "settings come once"),
        ([settings(), say("u", "Hi.", end_of_utterance=True), say("u", "More.")], "has ended"),
        ([settings(), say("ghost", cancel=True)], "no such utterance"),
        ([settings(), say("", "Hello.")], "utterance_id is empty"),
        ([settings(), say("u", "Hi", cancel=True)], "comes alone"),
        ([settings(segmentation=pb.Segmentation(max_delay_ms=60_000))], "max_delay_ms"),
        ([settings(voice="nobody")], "nobody"),
    ],
)
def test_malformed_sessions_are_refused_with_a_clear_message(server, messages, words):
    error = _live_error(server, messages)
    expected = grpc.StatusCode.NOT_FOUND if words == "nobody" else grpc.StatusCode.INVALID_ARGUMENT
    assert error.code() == expected, error.details()
    assert words in error.details()


def test_an_utterance_over_capacity_ends_the_call_with_resource_exhausted(server):
    """The choice documented in the proto and docs/live.md: the whole call ends, naming the
    utterance, with the retry hint; what was spoken before it was delivered."""
    long_text = " ".join(f"This is sentence number {i} of a very long answer." for i in range(80))
    feed = Feed(settings(), say("first", "Hello there.", end_of_utterance=True))
    call = server.stub.LiveSynthesize(iter(feed))
    responses = []
    while not (responses and responses[-1].utterance_done):  # "first" spoken while there is room
        responses.append(next(call))
    held = [server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=long_text, seed=i)) for i in range(8)]
    try:
        for stream in held:  # each holds one of the server's 8 slots while its client reads nothing
            next(stream)
        feed.send(say("second", "Are you still there?", end_of_utterance=True))
        with pytest.raises(grpc.RpcError) as caught:
            responses += list(call)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert '"second"' in caught.value.details() and "limit of 8" in caught.value.details()
        assert ("grpc-retry-pushback-ms", "1000") in caught.value.trailing_metadata()
        assert audio_of(responses, "first") == stream_pcm_after(held, server, "Hello there.")
    finally:
        feed.close()
        for stream in held:
            stream.cancel()


def stream_pcm_after(held, server, text: str) -> bytes:
    """StreamSynthesize of ``text`` once the held calls have let their slots go."""
    for stream in held:
        stream.cancel()
    server.call(_until(lambda: server.running.service.active_streams == 0))
    return stream_pcm(server, text)


def test_an_idle_session_ends_with_deadline_exceeded():
    config = ServerConfig(host="127.0.0.1", port=0, live_idle_seconds=0.3)
    running = ServerThread(config)
    try:
        running.make_ready()
        feed = Feed(settings(), say("u", "Hi.", end_of_utterance=True))
        call = running.stub.LiveSynthesize(iter(feed))
        with pytest.raises(grpc.RpcError) as caught:
            list(call)  # the feed stays open and silent after the utterance is spoken
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "nothing to speak" in caught.value.details()
        feed.close()
    finally:
        running.stop()


# -- the Python client and the CLI ------------------------------------------------------------


def test_the_async_client_hears_audio_before_it_has_sent_the_rest(server):
    from syrinx.client import LiveSession

    address = f"127.0.0.1:{server.running.port}"

    async def scenario():
        async with await LiveSession.open(address, seed=SEED) as live:
            events = live.__aiter__()
            await live.say("a", "Hello there. How")
            first = await anext(events)  # "Hello there. " is certain once "H" has come
            assert first.utterance_id == "a" and first.audio and first.format.sample_rate_hz == 22050
            await live.say("a", " are you?", end=True)
            await live.done_sending()
            return [first] + [event async for event in events]

    received = asyncio.run(scenario())
    assert b"".join(e.audio for e in received) == stream_pcm(server, "Hello there. ") + stream_pcm(
        server, "How are you?"
    )
    assert received[-1].done and not any(e.done for e in received[:-1])


def test_syrinx_live_speaks_standard_input_as_it_arrives(server):
    command = [str(Path(sys.executable).parent / "syrinx"), "--address", f"127.0.0.1:{server.running.port}"]
    process = subprocess.Popen(
        [*command, "live", "-o", "-", "--seed", str(SEED)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        process.stdin.write(b"Hello there. How")
        process.stdin.flush()
        first = process.stdout.read(512)  # arrives while standard input is still open
        assert len(first) == 512
        process.stdin.write(" are you? ¿Qué".encode()[:-1])  # a character cut between two writes
        process.stdin.flush()
        process.stdin.write("¿Qué".encode()[-1:])
        process.stdin.close()
        rest = process.stdout.read()
        assert process.wait(timeout=60) == 0, process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
    segments = ["Hello there. ", "How are you? ", "¿Qué"]  # "?" then "¿": a certain end
    expected = b"".join(stream_pcm(server, s) for s in segments)
    assert first + rest == expected
    assert "first audio" in process.stderr.read().decode()


def test_the_grpcurl_session_in_the_docs_is_valid_and_speaks(server):
    """docs/live.md's grpcurl messages (JSON, as grpcurl sends them) parse and make a whole utterance."""
    from google.protobuf import json_format

    doc = (Path(__file__).resolve().parent.parent / "docs" / "live.md").read_text()
    block = doc.split("cat > live.jsonl <<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    messages = [json_format.Parse(line, pb.LiveSynthesizeRequest()) for line in block.splitlines()]
    assert messages[0].HasField("settings") and messages[-1].end_of_utterance
    responses = list(server.stub.LiveSynthesize(iter(messages)))
    assert events(responses)[-1] == ("a", "done") and any(r.words for r in responses)
