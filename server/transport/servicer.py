"""``syrinx.v1.Synthesizer``: proto requests to domain requests, engine audio to proto responses."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

from ..audio import AudioEncoderStream, AudioRequest, EncodedChunk, Encoding, encode_whole
from ..engine.errors import InvalidOptionError, quoted
from ..live import LiveSession, SessionError, SessionIdleError, UtteranceAudio
from ..service import SpeechRequest, SynthesisService, WordTiming
from ..telemetry import RpcCall, Telemetry
from ..text import SegmenterConfig
from .errors import translate_errors
from .observe import observed
from .utterance_audio import UtteranceEncoder

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Synthesizer"].full_name  # "syrinx.v1.Synthesizer"
MAX_REQUEST_ID_CHARS = 128

ENCODING_FROM_PROTO = {
    pb.AUDIO_ENCODING_UNSPECIFIED: Encoding.LINEAR16,
    pb.AUDIO_ENCODING_LINEAR16: Encoding.LINEAR16,
    pb.AUDIO_ENCODING_WAV: Encoding.WAV,
    pb.AUDIO_ENCODING_MULAW: Encoding.MULAW,
    pb.AUDIO_ENCODING_ALAW: Encoding.ALAW,
    pb.AUDIO_ENCODING_OGG_OPUS: Encoding.OGG_OPUS,
}
ENCODING_TO_PROTO = {
    domain: proto for proto, domain in ENCODING_FROM_PROTO.items() if proto != pb.AUDIO_ENCODING_UNSPECIFIED
}


def _audio_request(config) -> AudioRequest:
    if config.encoding not in ENCODING_FROM_PROTO:
        raise InvalidOptionError(
            f"unknown encoding {config.encoding}; use one of {', '.join(pb.AudioEncoding.keys()[1:])}"
        )
    return AudioRequest(
        ENCODING_FROM_PROTO[config.encoding], config.sample_rate_hz, config.chunk_duration_ms, config.volume_gain_db
    )


def _speech_request(message) -> SpeechRequest:
    if len(message.request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidOptionError(
            f"request_id is {len(message.request_id)} characters; the limit is {MAX_REQUEST_ID_CHARS}"
        )
    return SpeechRequest(
        text=message.text,
        ssml=message.ssml,
        pronunciations=tuple(sorted(message.pronunciations.items())),
        voice=message.voice,
        speaking_rate=message.speaking_rate,
        speaker_id=message.speaker_id,
        seed=message.seed if message.HasField("seed") else None,
        audio=_audio_request(message.audio_config),
        word_timestamps=getattr(message, "enable_word_timestamps", False),  # a stream option only
    )


MAX_DELAY_MS = 10_000


def _segmentation(message, ssml: bool = False) -> SegmenterConfig:
    if message.max_delay_ms > MAX_DELAY_MS:
        raise InvalidOptionError(
            f"max_delay_ms {message.max_delay_ms} is over the limit of {MAX_DELAY_MS}; 0 means 1500"
        )
    return SegmenterConfig(
        eager_first=not message.no_eager_first_segment,
        max_delay_seconds=(message.max_delay_ms or 1500) / 1000,
        client_segments=message.client_segments,
        clean_markup=not message.keep_markup and not ssml,
        ssml=ssml,
    )


def _word_timings(words: list[WordTiming]) -> list[pb.WordTiming]:
    return [
        pb.WordTiming(
            word=w.text,
            char_start=w.char_start,
            char_end=w.char_end,
            start_sample=w.start_sample,
            end_sample=w.end_sample,
        )
        for w in words
    ]


class _UtteranceOutput:
    """One live utterance's audio as the client gets it: its own encoder, sequence and words."""

    def __init__(self, utterance_id: str, output, request_id: str) -> None:
        self.id = utterance_id
        self._encoder = UtteranceEncoder(output)
        self._format = _audio_format(output)
        self._request_id = request_id
        self._sequence = 0

    def audio(self, event: UtteranceAudio) -> list[pb.LiveSynthesizeResponse]:
        return [self._response(piece, words) for piece, words in self._encoder.push(event.samples, event.words)]

    def finish(self) -> list[pb.LiveSynthesizeResponse]:
        return [self._response(piece, words) for piece, words in self._encoder.finish()]

    def _response(self, piece: EncodedChunk, words: list[WordTiming]) -> pb.LiveSynthesizeResponse:
        response = pb.LiveSynthesizeResponse(
            utterance_id=self.id,
            audio=piece.data,
            sequence_number=self._sequence,
            offset_samples=piece.start_sample,
            num_samples=piece.num_samples,
            format=self._format if self._sequence == 0 else None,
            words=_word_timings(words),
            request_id=self._request_id,
        )
        self._sequence += 1
        return response

    def event(self, flushed: bool = False, utterance_done: bool = False, cancelled: bool = False):
        return pb.LiveSynthesizeResponse(
            utterance_id=self.id,
            request_id=self._request_id,
            flushed=flushed,
            utterance_done=utterance_done,
            cancelled=cancelled,
        )


def _describe(call: RpcCall, message) -> None:
    """What the span says about a request before it is checked (so failed calls say it too).

    The strings are not checked yet, so they are quoted in part: a megabyte voice name
    must not become a megabyte log line."""
    encoding = message.audio_config.encoding
    source = message.ssml or message.text  # the text, or the SSML that stands for it
    call.describe(
        {
            "syrinx.voice": quoted(message.voice) or "(default)",
            "syrinx.text.length": len(source),
            "syrinx.ssml": bool(message.ssml),
            "syrinx.audio.encoding": pb.AudioEncoding.Name(encoding)
            if encoding in pb.AudioEncoding.values()
            else str(encoding),
            "syrinx.audio.sample_rate_hz": message.audio_config.sample_rate_hz,
            "syrinx.request_id": quoted(message.request_id),
        },
        text=source,
    )


def _described_output(call: RpcCall, voice, output) -> None:
    call.describe({"syrinx.voice": voice.name, "syrinx.audio.sample_rate_hz": output.sample_rate_hz})


def _audio_format(output) -> pb.AudioFormat:
    return pb.AudioFormat(encoding=ENCODING_TO_PROTO[output.encoding], sample_rate_hz=output.sample_rate_hz, channels=1)


class SynthesizerServicer(pb_grpc.SynthesizerServicer):
    def __init__(self, service: SynthesisService, telemetry: Telemetry) -> None:
        self._service = service
        self._telemetry = telemetry  # used by @observed

    @observed
    @translate_errors
    async def Synthesize(self, request, context: grpc.aio.ServicerContext, call: RpcCall):
        _describe(call, request)
        voice, output, samples, _ = await self._service.synthesize(_speech_request(request))
        _described_output(call, voice, output)
        audio, num_samples = encode_whole(output, samples)
        call.audio_sent(num_samples / output.sample_rate_hz)
        return pb.SynthesizeResponse(
            audio=audio, format=_audio_format(output), num_samples=num_samples, request_id=request.request_id
        )

    @observed
    @translate_errors
    async def StreamSynthesize(self, request, context: grpc.aio.ServicerContext, call: RpcCall):
        _describe(call, request)
        stream = await self._service.open_stream(_speech_request(request))
        _described_output(call, stream.voice, stream.output)
        rate = stream.output.sample_rate_hz
        try:
            encoder = AudioEncoderStream(stream.output)
            audio_format = _audio_format(stream.output)
            sequence = 0

            def response(piece: EncodedChunk, final: bool) -> pb.StreamSynthesizeResponse:
                words = []
                if request.enable_word_timestamps:
                    words = _word_timings(
                        stream.words_before(None if final else piece.start_sample + piece.num_samples)
                    )
                return pb.StreamSynthesizeResponse(
                    words=words,
                    audio=piece.data,
                    sequence_number=sequence,
                    offset_samples=piece.start_sample,
                    num_samples=piece.num_samples,
                    final=final,
                    format=audio_format if sequence == 0 else None,
                    request_id=request.request_id,
                )

            async for chunk in stream:
                if sequence == 0 and stream.queue_wait_seconds is not None:
                    call.engine_started(stream.queue_wait_seconds)
                for sentence in stream.new_sentences():
                    call.sentence_encoded(
                        sentence.index, len(sentence.phoneme_ids), sentence.num_samples / stream.voice.info.sample_rate
                    )
                if not chunk.last_in_stream:
                    for piece in encoder.push(chunk.samples):  # encoded one by one, each sent at once
                        call.audio_sent(piece.num_samples / rate)
                        yield response(piece, final=False)
                        sequence += 1
                    continue
                # The resampler's and Opus's tails; a final message even if nothing is left.
                pieces = [*encoder.push(chunk.samples), *encoder.finish()] or [EncodedChunk(b"", encoder.position, 0)]
                for index, piece in enumerate(pieces):
                    call.audio_sent(piece.num_samples / rate)
                    yield response(piece, final=index == len(pieces) - 1)
                    sequence += 1
        finally:
            await stream.aclose()

    @observed
    @translate_errors
    async def LiveSynthesize(self, requests, context: grpc.aio.ServicerContext, call: RpcCall):
        messages = requests.__aiter__()
        first = await anext(messages, None)
        if first is None or not first.HasField("settings"):
            raise SessionError("the first message of a LiveSynthesize call must carry `settings`")
        settings = first.settings
        if first.utterance_id or first.text or first.flush or first.end_of_utterance or first.cancel:
            raise SessionError("the settings message carries nothing else; send text in the messages after it")
        # The settings as the stream request each segment becomes (its text is the segment's).
        as_stream = pb.StreamSynthesizeRequest(
            voice=settings.voice,
            audio_config=settings.audio_config,
            speaking_rate=settings.speaking_rate,
            request_id=settings.request_id,
            speaker_id=settings.speaker_id,
            seed=settings.seed if settings.HasField("seed") else None,
            enable_word_timestamps=settings.enable_word_timestamps,
            pronunciations=settings.pronunciations,
        )
        _describe(call, as_stream)
        request = _speech_request(as_stream)
        session = await LiveSession.open(
            self._service, request, _segmentation(settings.segmentation, settings.ssml), ssml=settings.ssml
        )
        _described_output(call, session.voice, session.output)
        reader = asyncio.get_running_loop().create_task(self._read_live(messages, session))
        outputs: dict[str, _UtteranceOutput] = {}
        rate = session.output.sample_rate_hz
        try:
            async for event in session.events():
                output = outputs.get(event.utterance_id)
                if output is None:
                    output = outputs[event.utterance_id] = _UtteranceOutput(
                        event.utterance_id, session.output, settings.request_id
                    )
                if isinstance(event, UtteranceAudio):
                    for response in output.audio(event):
                        call.audio_sent(response.num_samples / rate)
                        yield response
                elif event.kind == "done":
                    for response in output.finish():
                        call.audio_sent(response.num_samples / rate)
                        yield response
                    yield output.event(utterance_done=True)
                elif event.kind == "flushed":
                    yield output.event(flushed=True)
                else:  # cancelled: its encoder's tail is dropped with it
                    outputs.pop(event.utterance_id)
                    yield output.event(cancelled=True)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await session.close()

    async def _read_live(self, messages, session: LiveSession) -> None:
        """The client's messages into the session, in order; a broken rule ends the call."""
        idle = self._service.config.live_idle_seconds
        reading: asyncio.Future | None = None  # one read at a time, never cancelled by the idle timer
        try:
            while True:
                if reading is None:
                    reading = asyncio.ensure_future(anext(messages, None))
                done, _ = await asyncio.wait({reading}, timeout=idle)
                if not done:
                    if session.busy:
                        continue
                    raise SessionIdleError(f"the session had nothing to speak for {idle:g} s; open a new call")
                message, reading = reading.result(), None
                if message is None:
                    session.finish()
                    return
                if message.HasField("settings"):
                    raise SessionError("settings come once, in the first message; they cannot change within a session")
                if message.cancel:
                    if message.text or message.flush or message.end_of_utterance:
                        raise SessionError("`cancel` comes alone: no text, flush or end_of_utterance beside it")
                    session.cancel(message.utterance_id)
                else:
                    session.add(message.utterance_id, message.text, message.flush, message.end_of_utterance)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            session.fail(error)
        finally:
            if reading is not None:
                reading.cancel()

    @observed
    @translate_errors
    async def ListVoices(self, request, context: grpc.aio.ServicerContext, call: RpcCall):
        voices, default = self._service.voices()
        return pb.ListVoicesResponse(
            voices=[
                pb.Voice(
                    name=v.name,
                    language=v.info.language,
                    sample_rate_hz=v.info.sample_rate,
                    quality=v.info.quality,
                    speakers=[
                        pb.Speaker(name=n, id=i) for n, i in sorted(v.info.speakers.items(), key=lambda kv: kv[1])
                    ],
                )
                for v in voices
            ],
            default_voice=default,
        )
