"""``syrinx.v1.Synthesizer``: proto requests to domain requests, engine audio to proto responses."""

from __future__ import annotations

import grpc
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

from ..audio import pcm16, wav_file
from ..engine.errors import InvalidOptionError
from ..service import SpeechRequest, SynthesisService
from .errors import translate_errors

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Synthesizer"].full_name  # "syrinx.v1.Synthesizer"
MAX_REQUEST_ID_CHARS = 128


def _speech_request(message) -> SpeechRequest:
    if len(message.request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidOptionError(f"request_id is {len(message.request_id)} characters; the limit is {MAX_REQUEST_ID_CHARS}")
    return SpeechRequest(
        text=message.text,
        voice=message.voice,
        speaking_rate=message.speaking_rate,
        speaker_id=message.speaker_id,
        seed=message.seed if message.HasField("seed") else None,
        sample_rate_hz=message.audio_config.sample_rate_hz,
    )


def _encoding(message, streaming: bool) -> int:
    encoding = message.audio_config.encoding or pb.AUDIO_ENCODING_LINEAR16
    allowed = (pb.AUDIO_ENCODING_LINEAR16,) if streaming else (pb.AUDIO_ENCODING_LINEAR16, pb.AUDIO_ENCODING_WAV)
    if encoding not in allowed:
        names = " or ".join(pb.AudioEncoding.Name(e) for e in allowed)
        raise InvalidOptionError(
            f"encoding {pb.AudioEncoding.Name(encoding) if encoding in pb.AudioEncoding.values() else encoding} "
            f"is not available here; use {names}"
        )
    return encoding


async def _numbered(chunks):
    sequence = 0
    async for chunk in chunks:
        yield sequence, chunk
        sequence += 1


class SynthesizerServicer(pb_grpc.SynthesizerServicer):
    def __init__(self, service: SynthesisService) -> None:
        self._service = service

    @translate_errors
    async def Synthesize(self, request, context: grpc.aio.ServicerContext):
        encoding = _encoding(request, streaming=False)
        voice, samples = await self._service.synthesize(_speech_request(request))
        rate = voice.info.sample_rate
        audio = wav_file(samples, rate) if encoding == pb.AUDIO_ENCODING_WAV else pcm16(samples)
        return pb.SynthesizeResponse(
            audio=audio,
            format=pb.AudioFormat(encoding=encoding, sample_rate_hz=rate, channels=1),
            num_samples=len(samples),
            request_id=request.request_id,
        )

    @translate_errors
    async def StreamSynthesize(self, request, context: grpc.aio.ServicerContext):
        encoding = _encoding(request, streaming=True)
        stream = await self._service.open_stream(_speech_request(request))
        try:
            audio_format = pb.AudioFormat(encoding=encoding, sample_rate_hz=stream.sample_rate_hz, channels=1)
            async for sequence, chunk in _numbered(stream):
                yield pb.StreamSynthesizeResponse(
                    audio=pcm16(chunk.samples),
                    sequence_number=sequence,
                    offset_samples=chunk.start_sample,
                    num_samples=len(chunk.samples),
                    final=chunk.last_in_stream,
                    format=audio_format if sequence == 0 else None,
                    request_id=request.request_id,
                )
        finally:
            await stream.aclose()

    @translate_errors
    async def ListVoices(self, request, context: grpc.aio.ServicerContext):
        voices, default = self._service.voices()
        return pb.ListVoicesResponse(
            voices=[
                pb.Voice(
                    name=v.name,
                    language=v.info.language,
                    sample_rate_hz=v.info.sample_rate,
                    quality=v.info.quality,
                    speakers=[pb.Speaker(name=n, id=i) for n, i in sorted(v.info.speakers.items(), key=lambda kv: kv[1])],
                )
                for v in voices
            ],
            default_voice=default,
        )
