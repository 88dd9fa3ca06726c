"""`make bench-live`: an LLM's answer spoken as it is generated, LiveSynthesize against what bots do today.

A simulated LLM emits a 3-sentence answer in tokens of 1-4 characters (with their leading
spaces) at a fixed rate after a first-token delay. Each session speaks one answer and plays
its audio in real time from the first chunk. Modes, one after another at each level:

  live        LiveSynthesize: every token sent as it comes; the server segments (eager first segment)
  live-whole  the same with the eager first segment off (segments are whole sentences)
  aggregate   what Pipecat and LiveKit do: the client releases a sentence once its end is certain
              (terminator, whitespace, next character: the same rule as the server's), then one
              StreamSynthesize per sentence, in order, each after the previous one's audio is all
              received, played back to back

Per session:
  token->audio  from the first token to the first audio
  end->audio    from the moment the first sentence's end is known (the token that makes it
                certain is sent) to the first audio; negative when the eager first segment
                speaks before the sentence has ended
  gaps          silence the player had to insert after the first audio (audio that came after
                the audio before it had finished playing), in ms; the voice's own pauses are
                inside the audio and not counted

Also, at each level and alone: StreamSynthesize of each answer's first sentence, its first
audio ("alone": the reference for end->audio). Medians over sessions and rounds; the server
runs as its own process, the sessions in this one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from bench.load_bench import Playback, running_server
from syrinx.client import LiveSession
from syrinx.server.text import Segmenter, SegmenterConfig
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

# Each opens with a long sentence with a clause in it, as LLM answers often do: where the eager
# first segment can speak before the sentence has ended.
ANSWERS = (
    "I have checked the booking system for you, and your table for two is confirmed for seven tonight. "
    "Would you like a reminder by text? I can also add a note for the kitchen.",
    "Let me look at the status of your order, which left our warehouse early this morning. "
    "It should arrive on Thursday. Is there anything else I can do for you?",
    "Thanks for waiting while I searched the flights, and I have found three of them for you. "
    "The earliest one leaves at nine fifteen. Shall I book that one?",
)
MODES = ("live", "live-whole", "aggregate")
SEED = 1
WHOLE_SENTENCES = SegmenterConfig(eager_first=False, clean_markup=False)


def tokens(text: str) -> list[str]:
    """An LLM-like split: pieces of 1-4 visible characters, each with the spaces before it."""
    pieces = re.findall(r"\s*\S{1,4}", text)
    assert "".join(pieces) == text
    return pieces


def first_end_token(pieces: list[str]) -> int:
    """Index of the token whose arrival makes the first sentence's end certain."""
    segmenter = Segmenter(WHOLE_SENTENCES)
    for index, piece in enumerate(pieces):
        if segmenter.push(piece, 0.0):
            return index
    raise ValueError("the answer has a single sentence")


@dataclass
class Session:
    mode: str
    token_to_audio_ms: float | None
    end_to_audio_ms: float | None
    gaps_ms: float


@dataclass
class Llm:
    """Sends an answer's tokens on schedule; records when the first and the end-making token went."""

    answer: str
    rate: float
    first_token_delay_s: float
    first_token_at: float | None = None
    end_known_at: float | None = None

    async def run(self, send: Callable[[str], Awaitable[None]]) -> None:
        pieces = tokens(self.answer)
        end_token = first_end_token(pieces)
        start = time.perf_counter() + self.first_token_delay_s
        for index, piece in enumerate(pieces):
            await asyncio.sleep(max(0.0, start + index / self.rate - time.perf_counter()))
            now = time.perf_counter()
            if index == 0:
                self.first_token_at = now
            if index == end_token:
                self.end_known_at = now
            await send(piece)


class Listener:
    """A real-time player: when the first audio came, and the silence it had to insert."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.playback = Playback(prebuffer_s=0.0)
        self.first_audio_at: float | None = None

    def hear(self, num_samples: int) -> None:
        now = time.perf_counter()
        self.first_audio_at = self.first_audio_at or now
        self.playback.receive(now, num_samples / self.sample_rate)

    def result(self, mode: str, llm: Llm) -> Session:
        def since(at: float | None) -> float | None:
            return None if at is None or self.first_audio_at is None else (self.first_audio_at - at) * 1e3

        return Session(mode, since(llm.first_token_at), since(llm.end_known_at), self.playback.stalled_s * 1e3)


async def live_session(address: str, llm: Llm, mode: str, listener: Listener) -> Session:
    segmentation = pb.Segmentation(no_eager_first_segment=mode == "live-whole")
    async with await LiveSession.open(address, seed=SEED, segmentation=segmentation) as live:

        async def send() -> None:
            await llm.run(lambda piece: live.say("answer", piece))
            await live.end("answer")
            await live.done_sending()

        sending = asyncio.create_task(send())
        async for event in live:
            if event.audio:
                listener.hear(event.num_samples)
        await sending
    return listener.result(mode, llm)


async def aggregate_session(stub: pb_grpc.SynthesizerStub, llm: Llm, listener: Listener) -> Session:
    sentences: asyncio.Queue[str | None] = asyncio.Queue()
    aggregator = Segmenter(WHOLE_SENTENCES)

    async def send(piece: str) -> None:
        for segment in aggregator.push(piece, 0.0):
            sentences.put_nowait(segment.text)

    async def generate() -> None:
        await llm.run(send)
        for segment in aggregator.flush(0.0):
            sentences.put_nowait(segment.text)
        sentences.put_nowait(None)

    generating = asyncio.create_task(generate())
    while (sentence := await sentences.get()) is not None:
        async for response in stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=sentence, seed=SEED)):
            listener.hear(response.num_samples)
    await generating
    return listener.result("aggregate", llm)


async def alone_first_audio_ms(stub: pb_grpc.SynthesizerStub, answer: str) -> float:
    """StreamSynthesize of the answer's first sentence, alone: its first audio."""
    sentence = Segmenter(WHOLE_SENTENCES).push(answer, 0.0)[0].text
    started = time.perf_counter()
    call = stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=sentence, seed=SEED))
    await call.read()
    first_audio = (time.perf_counter() - started) * 1e3
    # Read it to the end: a cancelled call's engine step in flight would still delay the next one.
    while await call.read() is not grpc.aio.EOF:
        pass
    return first_audio


async def run(args: argparse.Namespace) -> list[dict]:
    rows = []
    delay = args.first_token_ms / 1e3
    async with running_server("syrinx", args) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.SynthesizerStub(channel)
        voice_rate = (await stub.ListVoices(pb.ListVoicesRequest())).voices[0].sample_rate_hz
        for answer in ANSWERS:  # warm-up
            await live_session(server.address, Llm(answer, 500.0, 0.0), "live", Listener(voice_rate))
        print(HEADER, flush=True)
        for rate in args.rates:
            for count in args.concurrency:
                alone = [await alone_first_audio_ms(stub, a) for a in ANSWERS for _ in range(args.rounds)]
                sessions: dict[str, list[Session]] = {mode: [] for mode in MODES}
                for round_index in range(args.rounds):
                    for mode in MODES:
                        calls = []
                        for i in range(count):
                            llm = Llm(ANSWERS[(round_index + i) % len(ANSWERS)], rate, delay)
                            listener = Listener(voice_rate)
                            if mode == "aggregate":
                                calls.append(aggregate_session(stub, llm, listener))
                            else:
                                calls.append(live_session(server.address, llm, mode, listener))
                        sessions[mode] += await asyncio.gather(*calls)
                    server.check_running()
                for mode in MODES:
                    rows.append(summary(rate, count, mode, sessions[mode], statistics.median(alone)))
                    print_row(rows[-1])
    return rows


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summary(rate: float, count: int, mode: str, sessions: list[Session], alone_ms: float) -> dict:
    return {
        "tokens_per_s": rate,
        "sessions": count,
        "mode": mode,
        "n": len(sessions),
        "token_to_audio_ms": _median([s.token_to_audio_ms for s in sessions]),
        "end_to_audio_ms": _median([s.end_to_audio_ms for s in sessions]),
        "stream_alone_first_audio_ms": alone_ms,
        "gaps_ms_median": _median([s.gaps_ms for s in sessions]),
        "gaps_ms_max": max(s.gaps_ms for s in sessions),
    }


HEADER = (
    f"{'tok/s':>5} {'sess':>4} {'mode':<11} {'n':>3} {'token->audio':>12} {'end->audio':>10} "
    f"{'alone':>6} {'gaps p50/max ms':>16}"
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_row(row: dict) -> None:
    gaps = f"{_ms(row['gaps_ms_median'])}/{_ms(row['gaps_ms_max'])}"
    print(
        f"{row['tokens_per_s']:>5g} {row['sessions']:>4} {row['mode']:<11} {row['n']:>3} "
        f"{_ms(row['token_to_audio_ms']):>12} {_ms(row['end_to_audio_ms']):>10} "
        f"{_ms(row['stream_alone_first_audio_ms']):>6} {gaps:>16}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[20.0, 50.0, 100.0])
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 16])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--first-token-ms", type=float, default=300.0, help="the LLM's delay before its first token")
    parser.add_argument("--syrinx-args", default="--max-streams 64", help="extra server flags")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
