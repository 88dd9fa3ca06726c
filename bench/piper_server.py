"""Baseline server: piper-tts (onnxruntime) behind the same ``syrinx.v1.Synthesizer`` API.

This is Piper served the way a new user would serve it: gRPC's synchronous
server on a thread pool, one shared ``PiperVoice`` (onnxruntime sessions are
safe to call from several threads), ``PiperVoice.synthesize`` with its default
settings, and each sentence's whole audio sent as one message as soon as it is
ready. Nothing is batched or split below the sentence, so a stream's first
audio comes when its whole first sentence is done. Calls beyond ``--workers``
wait in the pool's queue.

It logs ``serving on port N`` to stderr once the voice is loaded and warm, as
``syrinx-server`` does, so ``bench.load_bench`` starts both the same way.
SIGTERM or SIGINT stops it.

    python -m bench.piper_server --port 0 --workers 4
"""

from __future__ import annotations

import argparse
import io
import logging
import signal
import threading
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import grpc
from piper import PiperVoice
from piper.config import SynthesisConfig

from syrinx.server.engine import default_voice_files
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

log = logging.getLogger("bench.piper_server")

# The same range Syrinx accepts, so both servers reject the same requests.
MIN_SPEAKING_RATE, MAX_SPEAKING_RATE = 0.25, 4.0
WARM_UP_TEXT = "Hello there, this warms the voice up."


class BadRequest(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class PiperSynthesizer(pb_grpc.SynthesizerServicer):
    """The Synthesizer service on one Piper voice."""

    def __init__(self, voice: PiperVoice, name: str, language: str, quality: str) -> None:
        self._voice = voice
        self._name = name
        self._language = language
        self._quality = quality
        self._rate = voice.config.sample_rate

    def Synthesize(self, request, context: grpc.ServicerContext):
        encoding = self._encoding(request, context, streaming=False)
        config = self._synthesis_config(request, context)
        audio = b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(request.text, syn_config=config))
        if not audio:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text has nothing to pronounce")
        num_samples = len(audio) // 2
        if encoding == pb.AUDIO_ENCODING_WAV:
            audio = self._wav(audio)
        return pb.SynthesizeResponse(
            audio=audio,
            format=pb.AudioFormat(encoding=encoding, sample_rate_hz=self._rate, channels=1),
            num_samples=num_samples,
            request_id=request.request_id,
        )

    def StreamSynthesize(self, request, context: grpc.ServicerContext) -> Iterator[pb.StreamSynthesizeResponse]:
        encoding = self._encoding(request, context, streaming=True)
        config = self._synthesis_config(request, context)
        # Counted up front so the last sentence can carry `final` without holding any
        # sentence back until the next is done (phonemizing costs about a millisecond).
        sentences = sum(1 for phonemes in self._voice.phonemize(request.text) if phonemes)
        if sentences == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text has nothing to pronounce")
        audio_format = pb.AudioFormat(encoding=encoding, sample_rate_hz=self._rate, channels=1)
        offset = 0
        for sequence, chunk in enumerate(self._voice.synthesize(request.text, syn_config=config)):
            samples = chunk.audio_int16_bytes
            num_samples = len(samples) // 2
            yield pb.StreamSynthesizeResponse(
                audio=samples,
                sequence_number=sequence,
                offset_samples=offset,
                num_samples=num_samples,
                final=sequence == sentences - 1,
                format=audio_format if sequence == 0 else None,
                request_id=request.request_id,
            )
            offset += num_samples
            if not context.is_active():  # the caller hung up: do not synthesize the rest for nobody
                return

    def ListVoices(self, request, context: grpc.ServicerContext):
        voice = pb.Voice(name=self._name, language=self._language, sample_rate_hz=self._rate, quality=self._quality)
        return pb.ListVoicesResponse(voices=[voice], default_voice=self._name)

    def _encoding(self, request, context: grpc.ServicerContext, streaming: bool) -> int:
        encoding = request.audio_config.encoding or pb.AUDIO_ENCODING_LINEAR16
        allowed = (pb.AUDIO_ENCODING_LINEAR16,) if streaming else (pb.AUDIO_ENCODING_LINEAR16, pb.AUDIO_ENCODING_WAV)
        if encoding not in allowed:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"encoding {encoding} is not available here")
        return encoding

    def _synthesis_config(self, request, context: grpc.ServicerContext) -> SynthesisConfig:
        """Piper's default settings, checked and adjusted for what the request asks."""
        if request.voice not in ("", self._name):
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown voice '{request.voice}'; this server has '{self._name}'")
        if request.audio_config.sample_rate_hz not in (0, self._rate):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"sample rate must be 0 or the voice's {self._rate} Hz")
        if request.speaker_id != 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "this voice has a single speaker; speaker_id must be 0")
        if not request.text.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty")
        rate = request.speaking_rate or 1.0
        if not MIN_SPEAKING_RATE <= rate <= MAX_SPEAKING_RATE:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"speaking_rate must be {MIN_SPEAKING_RATE} to {MAX_SPEAKING_RATE}"
            )
        # `seed` is ignored: Piper's exported model draws its noise inside onnxruntime, unseeded.
        return replace(SynthesisConfig(), length_scale=self._voice.config.length_scale / rate)

    def _wav(self, pcm: bytes) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self._rate)
            wav.writeframes(pcm)
        return buffer.getvalue()


def load_servicer() -> PiperSynthesizer:
    files = default_voice_files()
    voice = PiperVoice.load(files.model_path, config_path=files.config_path)
    # One sentence first, so the first caller does not pay for onnxruntime's first run
    # (Syrinx warms its voices up before it serves, too).
    for _ in voice.synthesize(WARM_UP_TEXT):
        pass
    quality = files.model_path.stem.rsplit("-", 1)[-1]
    language = files.name.split("-", 1)[0]
    return PiperSynthesizer(voice, files.name, language, quality)


def serve(host: str, port: int, workers: int, grace_s: float) -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    servicer = load_servicer()
    server = grpc.server(ThreadPoolExecutor(max_workers=workers))
    pb_grpc.add_SynthesizerServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    log.info("serving on port %d (piper-tts, %d workers)", bound, workers)
    stop.wait()
    log.info("stopping")
    server.stop(grace_s).wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50052, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=4, help="gRPC thread pool size (calls beyond it queue)")
    parser.add_argument("--grace", type=float, default=2.0, help="seconds in-flight calls may run on after SIGTERM")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.host, args.port, args.workers, args.grace)


if __name__ == "__main__":
    main()
