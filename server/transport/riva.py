"""``nvidia.riva.tts.RivaSpeechSynthesis``: NVIDIA Riva's TTS protocol, translated to the same service.

A second transport adapter beside ``syrinx.v1`` on the same server and port: Riva requests
become the service's domain requests, its audio becomes Riva responses, and nothing else
happens here. ``SynthesizeOnline`` is a live session of one utterance whose text arrives
request by request (segmented across requests, as ``LiveSynthesize`` does).

Voices get Riva-style names, ``<model>.<LANG>.<Voice>``: ``Piper`` for the model, the voice's
language in Riva's form (``en_US`` -> ``EN-US``) and the rest of its Piper name
(``en_US-joe-medium`` -> ``Piper.EN-US.joe-medium``). Requests may use either name.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import grpc

from syrinx.riva import riva_audio_pb2 as riva_audio
from syrinx.riva import riva_tts_pb2 as rtts
from syrinx.riva import riva_tts_pb2_grpc as rtts_grpc

from ..audio import AudioRequest, EncodedChunk, Encoding, encode_whole
from ..engine import Voice
from ..engine.errors import InvalidOptionError, VoiceNotFoundError, listed, quoted
from ..live import LiveSession, SessionError, UtteranceAudio
from ..service import SpeechRequest, SynthesisService, WordTiming
from ..telemetry import RpcCall, Telemetry
from ..text import SegmenterConfig
from ..text.lexicon import LexiconError, parse_riva_dictionary
from .errors import translate_errors
from .observe import observed
from .utterance_audio import UtteranceEncoder

RIVA_SERVICE_NAME = rtts.DESCRIPTOR.services_by_name["RivaSpeechSynthesis"].full_name
MODEL = "Piper"
UTTERANCE = "riva"  # a SynthesizeOnline call is one utterance

ENCODING_FROM_RIVA = {
    riva_audio.ENCODING_UNSPECIFIED: Encoding.LINEAR16,
    riva_audio.LINEAR_PCM: Encoding.LINEAR16,
    riva_audio.MULAW: Encoding.MULAW,
    riva_audio.ALAW: Encoding.ALAW,
    riva_audio.OGGOPUS: Encoding.OGG_OPUS,
}


def is_riva_ssml(text: str) -> bool:
    """Riva reads a request's text as SSML when it starts with ``<speak>``."""
    return text.lstrip().startswith("<speak")


def riva_language(language: str) -> str:
    """``en_US`` -> ``en-US`` (Riva's language codes)."""
    return language.replace("_", "-")


def _riva_model(voice: Voice) -> str:
    """The model and language part of a Riva voice name: ``Piper.EN-US``."""
    return f"{MODEL}.{riva_language(voice.info.language).upper()}"


def _riva_voice(voice: Voice) -> str:
    """The voice part: ``en_US-joe-medium`` -> ``joe-medium``."""
    prefix = voice.info.language + "-"
    return voice.name[len(prefix) :] if voice.name.startswith(prefix) else voice.name


def riva_voice_name(voice: Voice) -> str:
    """``en_US-joe-medium`` -> ``Piper.EN-US.joe-medium``."""
    return f"{_riva_model(voice)}.{_riva_voice(voice)}"


def _subvoices(voice: Voice) -> str:
    """Riva's ``subvoices``: clients append each name to ``voice_name`` (with a dot) to get full voice
    names, so a single-speaker voice lists itself and a multi-speaker one ``voice.speaker``."""
    speakers = sorted(voice.info.speakers.items(), key=lambda item: item[1])
    if not speakers:
        return f"{_riva_voice(voice)}:0"
    return ",".join(f"{_riva_voice(voice)}.{name}:{index}" for name, index in speakers)


def _names(voice: Voice) -> dict[str, int]:
    """Every name a request may give the voice (lower-cased), each with its speaker id."""
    names = {voice.name.lower(): 0, riva_voice_name(voice).lower(): 0}
    for speaker, index in voice.info.speakers.items():
        names[f"{riva_voice_name(voice)}.{speaker}".lower()] = index
    return names


def _all_names(voices: list[Voice]) -> list[str]:
    return [name for voice in voices for name in (riva_voice_name(voice), voice.name)]


class RivaServicer(rtts_grpc.RivaSpeechSynthesisServicer):
    def __init__(self, service: SynthesisService, telemetry: Telemetry) -> None:
        self._service = service
        self._telemetry = telemetry  # used by @observed

    # -- translation ----------------------------------------------------------------------

    def _voice(self, request: rtts.SynthesizeSpeechRequest) -> tuple[str, int]:
        """The syrinx name and speaker of the voice a request names (any of its names), or its
        language's first voice."""
        voices, default = self._service.voices()
        name = request.voice_name.strip()
        if name:
            for voice in voices:
                speaker = _names(voice).get(name.lower())
                if speaker is not None:
                    return voice.name, speaker
            raise VoiceNotFoundError(name, _all_names(voices))
        language = request.language_code.strip().lower().replace("_", "-")
        if not language:
            return default, 0
        matching = [v for v in voices if riva_language(v.info.language).lower() == language]
        if not matching:
            languages = sorted({riva_language(v.info.language) for v in voices})
            raise InvalidOptionError(
                f"no voice for language_code {quoted(request.language_code)!r}; languages: {listed(languages)}"
            )
        return next((v.name for v in matching if v.name == default), matching[0].name), 0

    def _speech_request(self, request: rtts.SynthesizeSpeechRequest) -> SpeechRequest:
        if request.HasField("zero_shot_data"):
            raise InvalidOptionError("zero_shot_data (voice cloning) is not supported: Piper voices cannot clone")
        try:
            pronunciations = parse_riva_dictionary(request.custom_dictionary)
        except LexiconError as error:
            raise InvalidOptionError(str(error)) from None
        if request.custom_configuration:
            raise InvalidOptionError(
                f"custom_configuration is not supported (got {listed(sorted(request.custom_configuration))}); send none"
            )
        if request.encoding not in ENCODING_FROM_RIVA:
            supported = ", ".join(riva_audio.AudioEncoding.Name(e) for e in ENCODING_FROM_RIVA if e)
            name = (
                riva_audio.AudioEncoding.Name(request.encoding)
                if request.encoding in riva_audio.AudioEncoding.values()
                else str(request.encoding)
            )
            raise InvalidOptionError(f"encoding {name} is not supported; use one of {supported}")
        voice, speaker = self._voice(request)
        ssml = is_riva_ssml(request.text)
        return SpeechRequest(
            text="" if ssml else request.text,
            ssml=request.text if ssml else "",
            pronunciations=tuple(sorted(pronunciations.entries.items())),
            voice=voice,
            speaker_id=speaker,
            audio=AudioRequest(ENCODING_FROM_RIVA[request.encoding], request.sample_rate_hz, 0),
            word_timestamps=request.enable_word_time_offsets,
        )

    @staticmethod
    def _words(words: list[WordTiming], sample_rate: int) -> list[rtts.WordTiming]:
        return [
            rtts.WordTiming(
                word=w.text,
                start_time=round(w.start_sample * 1000 / sample_rate),
                end_time=round(w.end_sample * 1000 / sample_rate),
            )
            for w in words
        ]

    # -- the RPCs -------------------------------------------------------------------------

    @observed
    @translate_errors
    async def Synthesize(self, request, context: grpc.aio.ServicerContext, call: RpcCall):
        _describe(call, request)
        voice, output, samples, words = await self._service.synthesize(self._speech_request(request))
        call.describe({"syrinx.voice": voice.name, "syrinx.audio.sample_rate_hz": output.sample_rate_hz})
        audio, num_samples = encode_whole(output, samples)
        call.audio_sent(num_samples / output.sample_rate_hz)
        meta = rtts.SynthesizeSpeechResponseMetadata(
            text=request.text, processed_text=request.text, words=self._words(words, output.sample_rate_hz)
        )
        return rtts.SynthesizeSpeechResponse(audio=audio, meta=meta, id=request.id)

    @observed
    @translate_errors
    async def SynthesizeOnline(self, requests, context: grpc.aio.ServicerContext, call: RpcCall):
        messages = requests.__aiter__()
        first = await anext(messages, None)
        if first is None:
            return  # no request, no audio: OK, as Riva answers
        _describe(call, first)
        request = self._speech_request(first)
        ssml = bool(request.ssml)  # the whole call is SSML when its first text is (as Riva reads it)
        request = replace(request, text="", ssml="")
        session = await LiveSession.open(
            self._service, request, SegmenterConfig(ssml=ssml, clean_markup=not ssml), ssml=ssml
        )
        call.describe(
            {"syrinx.voice": session.voice.name, "syrinx.audio.sample_rate_hz": session.output.sample_rate_hz}
        )
        session.add(UTTERANCE, first.text, flush=False, end=False)
        reader = asyncio.get_running_loop().create_task(self._read_online(messages, first, session))
        encoder = UtteranceEncoder(session.output)
        rate = session.output.sample_rate_hz
        try:
            async for event in session.events():
                if isinstance(event, UtteranceAudio):
                    pieces = encoder.push(event.samples, event.words)
                elif event.kind == "done":
                    pieces = encoder.finish()
                else:
                    continue  # no flushes or cancels on this protocol
                for piece, words in pieces:
                    call.audio_sent(piece.num_samples / rate)
                    yield self._chunk(piece, words, rate, first)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await session.close()

    def _chunk(
        self, piece: EncodedChunk, words: list[WordTiming], rate: int, first: rtts.SynthesizeSpeechRequest
    ) -> rtts.SynthesizeSpeechResponse:
        meta = rtts.SynthesizeSpeechResponseMetadata(words=self._words(words, rate)) if words else None
        return rtts.SynthesizeSpeechResponse(audio=piece.data, meta=meta, id=first.id)

    async def _read_online(self, messages, first: rtts.SynthesizeSpeechRequest, session: LiveSession) -> None:
        """Each later request's text, appended as it arrives; the settings stay the first request's."""
        settings = _settings_of(first)
        try:
            async for message in messages:
                if _settings_of(message) != settings:
                    raise SessionError(
                        "a SynthesizeOnline call keeps its first request's settings (voice, language, encoding, "
                        "rate, options); later requests may change only text and id"
                    )
                session.add(UTTERANCE, message.text, flush=False, end=False)
            session.finish()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            session.fail(error)

    @observed
    @translate_errors
    async def GetRivaSynthesisConfig(self, request, context: grpc.aio.ServicerContext, call: RpcCall):
        voices, default = self._service.voices()
        wanted = request.model_name.strip().lower()
        configs = [
            rtts.RivaSynthesisConfigResponse.Config(
                model_name=riva_voice_name(voice),
                parameters={
                    "language_code": riva_language(voice.info.language),
                    "voice_name": _riva_model(voice),
                    "subvoices": _subvoices(voice),
                    "sample_rate_hz": str(voice.info.sample_rate),
                    "syrinx_voice": voice.name,
                },
            )
            for voice in voices
            if not wanted or wanted in (voice.name.lower(), riva_voice_name(voice).lower())
        ]
        if wanted and not configs:
            raise VoiceNotFoundError(request.model_name, _all_names(voices))
        return rtts.RivaSynthesisConfigResponse(model_config=configs)


def _settings_of(request: rtts.SynthesizeSpeechRequest) -> bytes:
    """The request without its text and id: what must not change within a SynthesizeOnline call."""
    settings = rtts.SynthesizeSpeechRequest()
    settings.CopyFrom(request)
    settings.ClearField("text")
    settings.ClearField("id")
    return settings.SerializeToString(deterministic=True)


def _describe(call: RpcCall, request: rtts.SynthesizeSpeechRequest) -> None:
    """What the span says about a request before it is checked (strings quoted in part)."""
    call.describe(
        {
            "syrinx.voice": quoted(request.voice_name) or "(default)",
            "syrinx.text.length": len(request.text),
            "syrinx.audio.sample_rate_hz": request.sample_rate_hz,
            "syrinx.request_id": quoted(request.id.value),
        },
        text=request.text,
    )
