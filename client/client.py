"""A thin helper over the generated stubs: one channel, audio chunks as bytes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc

from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

from .live import LiveSession
from .security import PLAINTEXT, Security

DEFAULT_ADDRESS = "localhost:50051"


@dataclass
class AudioStream:
    """A streamed synthesis: ``format`` is known once the first chunk has arrived."""

    responses: Iterator[pb.StreamSynthesizeResponse]
    format: pb.AudioFormat | None = None

    def __iter__(self) -> Iterator[bytes]:
        for response in self.responses:
            if response.HasField("format"):
                self.format = response.format
            yield response.audio

    def cancel(self) -> None:
        self.responses.cancel()  # type: ignore[attr-defined]


class SyrinxClient:
    def __init__(
        self, address: str = DEFAULT_ADDRESS, timeout: float | None = None, security: Security = PLAINTEXT
    ) -> None:
        self.address = address
        self.security = security
        self.channel = security.channel(address)
        self.stub = pb_grpc.SynthesizerStub(self.channel)
        self.timeout = timeout
        self._metadata = security.metadata

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> SyrinxClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stream(
        self,
        text: str,
        voice: str = "",
        speaking_rate: float = 0.0,
        seed: int | None = None,
        request_id: str = "",
        audio_config: pb.AudioConfig | None = None,
    ) -> AudioStream:
        request = pb.StreamSynthesizeRequest(
            text=text, voice=voice, speaking_rate=speaking_rate, request_id=request_id, audio_config=audio_config
        )
        if seed is not None:
            request.seed = seed
        return AudioStream(self.stub.StreamSynthesize(request, timeout=self.timeout, metadata=self._metadata))

    def synthesize(
        self,
        text: str,
        voice: str = "",
        speaking_rate: float = 0.0,
        seed: int | None = None,
        wav: bool = True,
        sample_rate_hz: int = 0,
    ) -> pb.SynthesizeResponse:
        encoding = pb.AUDIO_ENCODING_WAV if wav else pb.AUDIO_ENCODING_LINEAR16
        request = pb.SynthesizeRequest(
            text=text,
            voice=voice,
            speaking_rate=speaking_rate,
            audio_config=pb.AudioConfig(encoding=encoding, sample_rate_hz=sample_rate_hz),
        )
        if seed is not None:
            request.seed = seed
        return self.stub.Synthesize(request, timeout=self.timeout, metadata=self._metadata)

    async def live(self, **settings: Any) -> LiveSession:
        """A ``LiveSynthesize`` session (asyncio, on a channel of its own): see :class:`LiveSession`."""
        return await LiveSession.open(self.address, timeout=self.timeout, security=self.security, **settings)

    def voices(self) -> pb.ListVoicesResponse:
        return self.stub.ListVoices(pb.ListVoicesRequest(), timeout=self.timeout, metadata=self._metadata)

    def health(self, service: str = "") -> str:
        """``SERVING``, ``NOT_SERVING`` or another status name of the standard health protocol."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout or 5.0)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
