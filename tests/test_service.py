"""The gRPC service against a real server on a loopback port, with the real engine."""

from __future__ import annotations

import concurrent.futures
import gc
import io
import logging
import os
import wave

import av
import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from service_fixtures import ServerThread, counted_decodes

from syrinx.server.audio import AudioEncoderStream, AudioRequest, Encoding, encode_whole, pcm16
from syrinx.server.config import ServerConfig
from syrinx.server.engine import AudioChunk, Engine, SentenceStart, SynthesisOptions
from syrinx.server.scheduler import SchedulerConfig
from syrinx.v1 import synthesizer_pb2 as pb

MAX_TEXT = 6000
MAX_STREAMS = 12


@pytest.fixture(scope="module")
def server():
    # Without a loudness target the server's audio is the engine's, bit for bit: what these tests
    # compare it with (the calibrated level is tests/test_loudness.py's).
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        max_text_chars=MAX_TEXT,
        scheduler=SchedulerConfig(max_streams=MAX_STREAMS),
        loudness_target_lufs=None,
    )
    running = ServerThread(config)
    running.make_ready()
    yield running
    running.stop()


def reference_pcm(engine: Engine, voice, text: str, seed: int) -> bytes:
    """What the engine itself produces for the request (same chunking, same seed)."""
    chunks = [e.samples for e in engine.stream(voice, text, SynthesisOptions(seed=seed)) if isinstance(e, AudioChunk)]
    return pcm16(np.concatenate(chunks))


def stream_request(text: str, seed: int = 7, **fields) -> pb.StreamSynthesizeRequest:
    return pb.StreamSynthesizeRequest(text=text, seed=seed, **fields)


def test_what_start_up_made_is_out_of_the_garbage_collectors_walks(server):
    """A full collection walked every object start-up made, holding the GIL (129 ms on the CI
    machine, docs/reliability.md); the server's voices and their modules are frozen now."""
    voices, _ = server.running.service.voices()
    served = [voices[0], voices[0].model, *list(voices[0].model.modules())[:50]]
    walked = {id(o) for o in gc.get_objects()}
    assert [type(o).__name__ for o in served if id(o) in walked] == []
    assert gc.get_freeze_count() >= len(served)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")
def test_the_engine_runs_at_idle_priority_so_the_threads_answering_calls_get_a_core_at_once(server):
    """By default (``--engine-priority idle``): a shed call waited up to a scheduler tick behind
    torch's threads for each of its thread wake-ups (docs/reliability.md)."""
    policy = server.call(server.running.service.run_on_engine(lambda engine: os.sched_getscheduler(0)))
    assert policy == os.SCHED_IDLE

    async def event_loop_policy() -> int:
        return os.sched_getscheduler(0)

    assert server.call(event_loop_policy()) == os.SCHED_OTHER


def test_list_voices(server, voice):
    reply = server.stub.ListVoices(pb.ListVoicesRequest())
    assert reply.default_voice == voice.name
    assert [v.name for v in reply.voices] == [voice.name]
    assert reply.voices[0].sample_rate_hz == voice.info.sample_rate == 22050
    assert reply.voices[0].language == "en_US"


def test_unary_audio_equals_engine_output(server, engine, voice):
    text = "The unary call returns the whole audio at once. It has two sentences."
    reply = server.stub.Synthesize(pb.SynthesizeRequest(text=text, seed=11, request_id="abc-1"))
    assert reply.audio == reference_pcm(engine, voice, text, 11)
    assert reply.num_samples * 2 == len(reply.audio)
    assert reply.format == pb.AudioFormat(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate_hz=22050, channels=1)
    assert reply.request_id == "abc-1"


def test_unary_wav(server, engine, voice):
    text = "A wave file, header and all."
    reply = server.stub.Synthesize(
        pb.SynthesizeRequest(text=text, seed=3, audio_config=pb.AudioConfig(encoding=pb.AUDIO_ENCODING_WAV))
    )
    with wave.open(io.BytesIO(reply.audio)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (22050, 1, 2)
        assert wav.readframes(wav.getnframes()) == reference_pcm(engine, voice, text, 3)
    assert reply.format.encoding == pb.AUDIO_ENCODING_WAV


def test_stream_chunks_are_ordered_and_equal_engine_output(server, engine, voice):
    text = "Streaming sends audio while the model is still working. Here is a second sentence, too."
    replies = list(server.stub.StreamSynthesize(stream_request(text, seed=5, request_id="s-9")))
    assert len(replies) > 2
    assert replies[0].format == pb.AudioFormat(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate_hz=22050, channels=1)
    assert all(not r.HasField("format") for r in replies[1:])
    assert [r.sequence_number for r in replies] == list(range(len(replies)))
    assert [r.final for r in replies] == [False] * (len(replies) - 1) + [True]
    offset = 0
    for reply in replies:
        assert reply.offset_samples == offset and reply.num_samples * 2 == len(reply.audio)
        assert reply.request_id == "s-9"
        offset += reply.num_samples
    assert b"".join(r.audio for r in replies) == reference_pcm(engine, voice, text, 5)


def engine_chunks(engine: Engine, voice, text: str, seed: int) -> list[np.ndarray]:
    return [e.samples for e in engine.stream(voice, text, SynthesisOptions(seed=seed)) if isinstance(e, AudioChunk)]


def test_telephony_stream_is_mulaw_8k_in_20_ms_frames(server, engine, voice):
    text = "Thanks for calling. Your order ships tomorrow."
    config = pb.AudioConfig(encoding=pb.AUDIO_ENCODING_MULAW, sample_rate_hz=8000, chunk_duration_ms=20)
    replies = list(server.stub.StreamSynthesize(stream_request(text, seed=4, audio_config=config)))
    assert replies[0].format == pb.AudioFormat(encoding=pb.AUDIO_ENCODING_MULAW, sample_rate_hz=8000, channels=1)
    assert all(len(r.audio) == r.num_samples == 160 for r in replies[:-1])  # 20 ms of 8 kHz, one byte each
    assert 0 < len(replies[-1].audio) <= 160 and replies[-1].final
    assert [r.offset_samples for r in replies] == [160 * i for i in range(len(replies))]
    # Exactly what the audio layer makes of the engine's own chunks for the same request.
    encoder = AudioEncoderStream(AudioRequest(Encoding.MULAW, 8000, 20).resolve(voice.info.sample_rate, True))
    expected = [
        c for samples in engine_chunks(engine, voice, text, 4) for c in encoder.push(samples)
    ] + encoder.finish()
    assert [r.audio for r in replies] == [c.data for c in expected]
    native_samples = sum(len(c) for c in engine_chunks(engine, voice, text, 4))
    assert replies[-1].offset_samples + replies[-1].num_samples == round(native_samples * 8000 / voice.info.sample_rate)


@pytest.mark.parametrize("chunk_ms", [0, 60])
def test_webrtc_stream_is_ogg_opus_48k_that_plays_chunk_by_chunk(server, engine, voice, chunk_ms):
    text = "Opus for the browser, page by page."
    config = pb.AudioConfig(encoding=pb.AUDIO_ENCODING_OGG_OPUS, sample_rate_hz=48000, chunk_duration_ms=chunk_ms)
    replies = list(server.stub.StreamSynthesize(stream_request(text, seed=8, audio_config=config)))
    assert replies[0].format == pb.AudioFormat(encoding=pb.AUDIO_ENCODING_OGG_OPUS, sample_rate_hz=48000, channels=1)
    assert replies[0].audio.startswith(b"OggS") and b"OpusHead" in replies[0].audio[:64]
    assert all(r.audio.startswith(b"OggS") for r in replies)  # every chunk starts on a page
    native_samples = sum(len(c) for c in engine_chunks(engine, voice, text, 8))
    expected = round(native_samples * 48000 / voice.info.sample_rate)
    assert sum(r.num_samples for r in replies) == expected
    with av.open(io.BytesIO(b"".join(r.audio for r in replies)), format="ogg") as container:
        decoded = sum(frame.samples for frame in container.decode(audio=0))
    assert decoded == expected


@pytest.mark.parametrize(
    "audio", [None, pb.AudioConfig(encoding=pb.AUDIO_ENCODING_MULAW, sample_rate_hz=8000, chunk_duration_ms=20)]
)
def test_word_timestamps_come_with_the_chunk_where_each_word_starts(server, engine, voice, audio):
    text = "Sure, Dr. Lee can see you at 4:30 tomorrow. Does that work?"
    replies = list(
        server.stub.StreamSynthesize(stream_request(text, seed=6, audio_config=audio, enable_word_timestamps=True))
    )
    words = [w for r in replies for w in r.words]
    assert [w.word for w in words] == [
        "Sure",
        "Dr",
        "Lee",
        "can",
        "see",
        "you",
        "at",
        "4:30",
        "tomorrow",
        "Does",
        "that",
        "work",
    ]
    assert all(text[w.char_start : w.char_end] == w.word for w in words)
    for reply in replies[:-1]:  # a word is sent with the chunk its audio starts in
        assert all(
            reply.offset_samples <= w.start_sample < reply.offset_samples + reply.num_samples for w in reply.words
        )
    total = replies[-1].offset_samples + replies[-1].num_samples
    assert all(a.end_sample <= b.start_sample for a, b in zip(words, words[1:])) and words[-1].end_sample <= total
    # The same times the engine gives for the same request, at the stream's rate.
    rate = replies[0].format.sample_rate_hz
    starts = [
        e
        for e in engine.stream(voice, text, SynthesisOptions(seed=6, word_timestamps=True))
        if isinstance(e, SentenceStart)
    ]
    native = [start.word_samples(w) for start in starts for w in start.words]
    assert [(w.start_sample, w.end_sample) for w in words] == [
        (round(a * rate / voice.info.sample_rate), round(b * rate / voice.info.sample_rate)) for a, b in native
    ]


def test_no_words_unless_asked_for(server):
    replies = list(server.stub.StreamSynthesize(stream_request("No timings here, please.")))
    assert not any(r.words for r in replies)


def test_unary_mulaw_at_8k(server, engine, voice):
    text = "One more for the phone line."
    config = pb.AudioConfig(encoding=pb.AUDIO_ENCODING_MULAW, sample_rate_hz=8000)
    reply = server.stub.Synthesize(pb.SynthesizeRequest(text=text, seed=2, audio_config=config))
    native = np.concatenate(engine_chunks(engine, voice, text, 2))
    output = AudioRequest(Encoding.MULAW, 8000).resolve(voice.info.sample_rate, False)
    assert (reply.audio, reply.num_samples) == encode_whole(output, native)
    assert reply.format == pb.AudioFormat(encoding=pb.AUDIO_ENCODING_MULAW, sample_rate_hz=8000, channels=1)


def test_eight_concurrent_streams_each_get_their_own_audio(server, engine, voice):
    texts = [f"Caller number {i} asked about order {100 + 17 * i}, which ships on day {i + 3}." for i in range(8)]

    def run(i: int) -> bytes:
        return b"".join(r.audio for r in server.stub.StreamSynthesize(stream_request(texts[i], seed=i)))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(8)))
    for i, audio in enumerate(results):
        assert audio == reference_pcm(engine, voice, texts[i], i), f"stream {i} got someone else's audio"


def test_a_long_sentence_streams_the_engines_bytes_and_its_follower_starts_where_it_ends(server, engine, voice):
    """The long sentence is encoded head first (its first chunk before its rest); the next
    sentence's audio must still start right where the long one's ends."""
    long = (
        "When the long winter finally ended, the villagers gathered in the square to celebrate with music, "
        "bread, and warm cider, telling stories of the storms they had survived together and of the spring to come."
    )
    text = f"{long} Then everyone went home."
    (first, _) = voice.phonemizer.sentences(text)
    assert not engine.encode(engine.sentence_requests(voice, [first], SynthesisOptions(seed=5)))[0].complete
    replies = list(server.stub.StreamSynthesize(stream_request(text, seed=5)))
    assert b"".join(r.audio for r in replies) == reference_pcm(engine, voice, text, 5)
    assert [r.offset_samples for r in replies] == list(np.cumsum([0] + [r.num_samples for r in replies])[:-1])


# -- errors: one test per row of the table ------------------------------------------------


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if not isinstance(result, pb.SynthesizeResponse):
            list(result)
    return info.value


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_invalid_argument(server, text):
    error = _error(lambda: server.stub.StreamSynthesize(stream_request(text)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty" in error.details()


def test_text_over_the_limit_says_the_limit(server):
    error = _error(lambda: server.stub.Synthesize(pb.SynthesizeRequest(text="a" * (MAX_TEXT + 1))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"limit is {MAX_TEXT}" in error.details()


def test_unknown_voice_is_not_found_and_lists_voices(server, voice):
    error = _error(lambda: server.stub.StreamSynthesize(stream_request("Hello.", voice="en_GB-nobody-low")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "en_GB-nobody-low" in error.details() and voice.name in error.details()


def test_a_huge_voice_name_is_not_found_and_quoted_in_part(server):
    """A status message rides in a trailer that clients cap at 16 KiB: the error must quote the
    name's start, or the caller gets RESOURCE_EXHAUSTED for the trailer instead of NOT_FOUND."""
    error = _error(lambda: server.stub.StreamSynthesize(stream_request("Hello.", voice="v" * 100_000)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "v" * 80 + "... (100000 characters)" in error.details()


def test_a_sentence_of_thousands_of_unknown_symbols_is_invalid_argument(server):
    symbols = " ".join(chr(0x4E00 + i) for i in range(2000))  # raw phonemes the voice's map lacks
    error = _error(lambda: server.stub.Synthesize(pb.SynthesizeRequest(text=f"[[ {symbols} ]]")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not in the voice's phoneme map" in error.details() and "and 1980 more" in error.details()


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"speaking_rate": 9.0}, "0.25 to 4"),
        ({"audio_config": pb.AudioConfig(sample_rate_hz=4000)}, "use 8000 to 48000, or 0 for the voice's native 22050"),
        ({"audio_config": pb.AudioConfig(encoding=pb.AUDIO_ENCODING_WAV)}, "AUDIO_ENCODING_WAV is for Synthesize only"),
        (
            {"audio_config": pb.AudioConfig(encoding=pb.AUDIO_ENCODING_OGG_OPUS)},
            "cannot take 22050 Hz (the voice's native rate)",
        ),
        (
            {"audio_config": pb.AudioConfig(chunk_duration_ms=7)},
            "not a whole number of samples at 22050 Hz; use a multiple of 20 ms",
        ),
        (
            {
                "audio_config": pb.AudioConfig(
                    encoding=pb.AUDIO_ENCODING_OGG_OPUS, sample_rate_hz=48000, chunk_duration_ms=30
                )
            },
            "use a multiple of 20 ms",
        ),
        ({"audio_config": pb.AudioConfig(encoding=99)}, "unknown encoding 99"),
        ({"speaker_id": 2}, "single speaker"),
        ({"request_id": "x" * 200}, "limit is 128"),
    ],
)
def test_unsupported_options_are_invalid_argument(server, fields, words):
    error = _error(lambda: server.stub.StreamSynthesize(stream_request("Hello there.", **fields)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.details()


def test_over_capacity_is_resource_exhausted_at_once(server):
    long_text = " ".join(f"This is sentence number {i} of a very long answer." for i in range(80))
    held = [server.stub.StreamSynthesize(stream_request(long_text, seed=i)) for i in range(MAX_STREAMS)]
    try:
        for call in held:  # each holds a slot: it cannot finish while its client reads nothing more
            next(call)
        error = _error(lambda: server.stub.StreamSynthesize(stream_request("One more, please.")))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"limit of {MAX_STREAMS}" in error.details()
        # When to retry: google.rpc.RetryInfo in the rich status, and gRPC's own pushback trailer.
        (detail,) = rpc_status.from_call(error).details
        retry = error_details_pb2.RetryInfo()
        assert detail.Unpack(retry) and retry.retry_delay.ToMilliseconds() == 1000
        assert ("grpc-retry-pushback-ms", "1000") in error.trailing_metadata()
        # Shedding load is not being unwell.
        health = health_pb2_grpc.HealthStub(server.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for call in held:
            call.cancel()


def test_unexpected_error_is_internal_without_details(server, monkeypatch):
    def broken():
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(server.running.service, "voices", broken)
    error = _error(lambda: server.stub.ListVoices(pb.ListVoicesRequest()))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "id " in error.details()
    assert (
        "secret" not in error.details() and "Traceback" not in error.details() and "RuntimeError" not in error.details()
    )


# -- reflection, cancellation ---------------------------------------------------------------


def test_reflection_lists_the_services(server):
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    (reply,) = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in reply.list_services_response.service}
    assert {"syrinx.v1.Synthesizer", "nvidia.riva.tts.RivaSpeechSynthesis", "grpc.health.v1.Health"} <= names


def test_cancelled_stream_stops_engine_work(server):
    service = server.running.service
    with counted_decodes(service) as calls:
        long_text = " ".join(f"Sentence {i} keeps this answer going for a long while." for i in range(60))
        call = server.stub.StreamSynthesize(stream_request(long_text))
        next(call), next(call)
        call.cancel()
        # Wait for the server to release the stream (its close runs after the last step).
        server.call(_until(lambda: service.active_streams == 0))
        after_cancel = calls["decode"]
        # One short request through the same worker proves nothing of the cancelled stream is queued.
        list(server.stub.StreamSynthesize(stream_request("Short.")))
        short_steps = calls["decode"] - after_cancel
        list(server.stub.StreamSynthesize(stream_request("Short.")))
        assert calls["decode"] - after_cancel == 2 * short_steps
        total_windows = 60 * 3  # each sentence takes several windows
        assert after_cancel < total_windows / 4, "the cancelled stream kept synthesizing"


async def _until(condition, timeout: float = 30.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


# -- health across start-up and drain ---------------------------------------------------------


def test_health_goes_not_serving_serving_not_serving_and_in_flight_stream_completes(engine, voice):
    fresh = ServerThread(ServerConfig(host="127.0.0.1", port=0, loudness_target_lufs=None))
    health = health_pb2_grpc.HealthStub(fresh.channel)

    def status(name: str) -> int:
        return health.Check(health_pb2.HealthCheckRequest(service=name)).status

    try:
        assert status("") == status("syrinx.v1.Synthesizer") == health_pb2.HealthCheckResponse.NOT_SERVING
        early = _error(lambda: fresh.stub.ListVoices(pb.ListVoicesRequest()))
        assert early.code() == grpc.StatusCode.UNAVAILABLE and "loading" in early.details()

        fresh.make_ready()
        assert status("") == status("syrinx.v1.Synthesizer") == health_pb2.HealthCheckResponse.SERVING

        watch = health.Watch(health_pb2.HealthCheckRequest(service="syrinx.v1.Synthesizer"))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

        text = "This answer is still playing when the server is asked to stop. It must finish anyway."
        call = fresh.stub.StreamSynthesize(stream_request(text, seed=2))
        first = next(call)
        draining = concurrent.futures.Future()
        fresh.loop.call_soon_threadsafe(
            lambda: fresh.loop.create_task(fresh.running.drain(30)).add_done_callback(lambda t: draining.set_result(t))
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING  # at once, while draining
        watch.cancel()  # an open watch is a call in flight too; the drain would wait for it
        rest = list(call)
        assert rest[-1].final
        assert first.audio + b"".join(r.audio for r in rest) == reference_pcm(engine, voice, text, 2)
        draining.result(60)
        assert fresh.running.service.ready is False
    finally:
        fresh.channel.close()
        fresh.loop.call_soon_threadsafe(fresh.loop.stop)


def test_deadline_stops_the_stream_and_frees_its_slot(server):
    long_text = " ".join(f"Sentence {i} of an answer nobody waits for." for i in range(60))
    call = server.stub.StreamSynthesize(stream_request(long_text), timeout=0.5)
    with pytest.raises(grpc.RpcError) as info:
        for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    server.call(_until(lambda: server.running.service.active_streams == 0))


@pytest.mark.parametrize("method", ["Synthesize", "StreamSynthesize"])
def test_text_with_nothing_to_speak_is_invalid_argument_before_any_audio(server, method):
    if method == "Synthesize":
        call = lambda: server.stub.Synthesize(pb.SynthesizeRequest(text="..."))  # noqa: E731
    else:
        call = lambda: server.stub.StreamSynthesize(stream_request("..."))  # noqa: E731
    error = _error(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nothing to speak" in error.details()
    server.call(_until(lambda: server.running.service.active_streams == 0))  # its slot was released


@pytest.mark.parametrize(
    "method, kind",
    [
        ("/syrinx.v1.Synthesizer/Synthesize", "unary_unary"),
        ("/syrinx.v1.Synthesizer/StreamSynthesize", "unary_stream"),
        ("/syrinx.v1.Synthesizer/LiveSynthesize", "stream_stream"),
        ("/nvidia.riva.tts.RivaSpeechSynthesis/Synthesize", "unary_unary"),
        ("/nvidia.riva.tts.RivaSpeechSynthesis/SynthesizeOnline", "stream_stream"),
    ],
)
def test_a_body_that_is_not_a_protobuf_is_invalid_argument_without_a_trace(server, caplog, method, kind):
    body = b"\xff\xff\xff\xff"  # field 31, wire type 7: no valid message starts like this
    call = getattr(server.channel, kind)(method)  # no serializers: the bytes go as they are
    with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as caught:
        if kind == "unary_unary":
            call(body, timeout=10)
        elif kind == "unary_stream":
            list(call(body, timeout=10))
        else:
            list(call(iter([body]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid" in caught.value.details() and "Traceback" not in caught.value.details()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
