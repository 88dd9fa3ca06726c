"""An asyncio client for ``LiveSynthesize``: feed text as it is generated, read audio and events.

::

    async with await LiveSession.open("localhost:50051", seed=1) as live:
        await live.say("turn-1", "Sure, I can ")
        await live.say("turn-1", "help with that.", end=True)
        await live.done_sending()
        async for event in live:
            if event.audio:
                play(event.audio)   # in event.format (known from each utterance's first chunk)

Sending and reading are independent: a bot feeds an LLM's tokens from one task and plays the
audio from another. ``cancel`` is the barge-in: the server answers with a ``cancelled`` event
and sends no audio of that utterance after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import grpc

from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

from .security import PLAINTEXT, Security


@dataclass(frozen=True)
class LiveEvent:
    """One response: audio of an utterance (``audio`` non-empty), or one of its events."""

    utterance_id: str
    audio: bytes = b""
    offset_samples: int = 0
    num_samples: int = 0
    format: pb.AudioFormat | None = None  # on each utterance's first audio
    words: tuple[pb.WordTiming, ...] = ()
    flushed: bool = False
    done: bool = False  # the utterance's last audio has been sent
    cancelled: bool = False

    @classmethod
    def of(cls, response: pb.LiveSynthesizeResponse) -> LiveEvent:
        return cls(
            utterance_id=response.utterance_id,
            audio=response.audio,
            offset_samples=response.offset_samples,
            num_samples=response.num_samples,
            format=response.format if response.HasField("format") else None,
            words=tuple(response.words),
            flushed=response.flushed,
            done=response.utterance_done,
            cancelled=response.cancelled,
        )


@dataclass
class LiveSession:
    """One ``LiveSynthesize`` call on its own channel (open it with :meth:`open`)."""

    channel: grpc.aio.Channel
    call: grpc.aio.StreamStreamCall[pb.LiveSynthesizeRequest, pb.LiveSynthesizeResponse]
    formats: dict[str, pb.AudioFormat] = field(default_factory=dict)  # by utterance, once known

    @classmethod
    async def open(
        cls,
        address: str,
        *,
        voice: str = "",
        audio_config: pb.AudioConfig | None = None,
        speaking_rate: float = 0.0,
        speaker_id: int = 0,
        seed: int | None = None,
        word_timestamps: bool = False,
        segmentation: pb.Segmentation | None = None,
        request_id: str = "",
        timeout: float | None = None,
        security: Security = PLAINTEXT,
    ) -> LiveSession:
        channel = security.aio_channel(address)
        call = pb_grpc.SynthesizerStub(channel).LiveSynthesize(timeout=timeout, metadata=security.metadata)
        settings = pb.LiveSettings(
            voice=voice,
            audio_config=audio_config,
            speaking_rate=speaking_rate,
            speaker_id=speaker_id,
            enable_word_timestamps=word_timestamps,
            segmentation=segmentation,
            request_id=request_id,
        )
        if seed is not None:
            settings.seed = seed
        session = cls(channel, call)
        await call.write(pb.LiveSynthesizeRequest(settings=settings))
        return session

    async def say(self, utterance_id: str, text: str, *, flush: bool = False, end: bool = False) -> None:
        """Append ``text`` verbatim to the utterance (a new id starts a new utterance)."""
        await self.call.write(
            pb.LiveSynthesizeRequest(utterance_id=utterance_id, text=text, flush=flush, end_of_utterance=end)
        )

    async def flush(self, utterance_id: str) -> None:
        await self.say(utterance_id, "", flush=True)

    async def end(self, utterance_id: str) -> None:
        await self.say(utterance_id, "", end=True)

    async def cancel(self, utterance_id: str) -> None:
        await self.call.write(pb.LiveSynthesizeRequest(utterance_id=utterance_id, cancel=True))

    async def done_sending(self) -> None:
        """Half-close: every utterance is finished, then the events end."""
        await self.call.done_writing()

    async def __aiter__(self) -> AsyncIterator[LiveEvent]:
        while (response := await self.call.read()) is not grpc.aio.EOF:
            event = LiveEvent.of(cast(pb.LiveSynthesizeResponse, response))  # not EOF
            if event.format is not None:
                self.formats[event.utterance_id] = event.format
            yield event

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()

    async def __aenter__(self) -> LiveSession:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
