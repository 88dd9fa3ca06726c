"""Reliability figures of a real server process: faults (``make faults``) and a long soak (``make soak``).

``faults`` starts a server for each scenario and prints one line of figures per scenario:

  burst        10 x --max-streams StreamSynthesize calls at once on an idle server: how many were
               shed, and how long a shed call took, from the server's own request log (its
               ``duration_ms``: from the call's arrival in the servicer to its status) and as the
               client saw it; --bursts of them on one server, each burst's figures and all pooled
  non-reading  streams whose clients never read: the server's resident memory before, while they
               hang (sampled for --hang-s) and after they are cancelled
  deadlines    a storm of calls with deadlines of 1 to 300 ms: status counts, ERROR lines, memory
  sigterm      streams in flight when SIGTERM comes, read as fast as the client can: how many
               finished whole, and how long the drain took
  restart      ``kill -9``, then a new server on the same port: seconds until it is SERVING

``soak`` runs one server for --minutes at --concurrency callers. Each caller loops over a mix:
valid streams in the three encodings (read as they come), invalid requests (empty text, an
unknown voice, a sample rate out of range), streams cancelled after one to three chunks, calls
with short deadlines, and LiveSynthesize turns. Unexpected results are a status a kind of call
should never get, and any WARNING/ERROR line or traceback the server logs. Every --window-s it
prints a row (requests, unexpected, first-audio p50/p95, resident memory); at the end, the memory
growth after --warmup-s and the first-audio p95 of the first and the last window, each with a
bootstrap 90% interval (a p95 of a few hundred calls moves by tens of ms from noise alone).
Callers start at random moments within the first --stagger-s, as independent callers arrive,
instead of all in the same instant.

    python -m bench.reliability faults
    python -m bench.reliability soak --minutes 30 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

from .load_bench import CORPUS, Server, free_port, machine, machine_line, percentile, process_rss_mb, running_server

LONG_TEXT = " ".join(CORPUS) * 2  # about a minute of audio
OK = grpc.StatusCode.OK


@contextlib.asynccontextmanager
async def server(*flags: str) -> AsyncIterator[Server]:
    async with running_server("syrinx", SimpleNamespace(syrinx_args=" ".join(["--metrics-port", "-1", *flags]))) as s:
        yield s


def _ms(values: list[float], q: float) -> str:
    value = percentile(values, q)
    return "-" if value is None else f"{value:.1f}"


def _request_lines(srv: Server) -> list[dict]:
    lines = []
    for text in srv.log.kept or []:
        if '"logger": "syrinx.requests"' in text:
            with contextlib.suppress(json.JSONDecodeError):
                lines.append(json.loads(text))
    return lines


async def _first_chunk(call) -> grpc.StatusCode:
    try:
        async for _ in call:
            return OK
        return OK
    except grpc.aio.AioRpcError as error:
        return error.code()


# -- faults ----------------------------------------------------------------------------------


async def burst(max_streams: int, bursts: int) -> None:
    """``bursts`` bursts on one server, one after another (each once the last one's calls are
    cancelled): a p99 of one burst's 144 shed calls is its second-slowest call, so it moves
    with a single stall; the pooled p99 is a steadier figure, and both are printed."""
    per_burst: list[tuple[collections.Counter, list[float], list[float]]] = []
    async with server("--max-streams", str(max_streams)) as srv:
        srv.log.keep_all()
        async with grpc.aio.insecure_channel(srv.address) as channel:
            stub = pb_grpc.SynthesizerStub(channel)
            await stub.ListVoices(pb.ListVoicesRequest())  # connected before the burst
            n = 10 * max_streams
            for number in range(bursts):
                logged = len(_request_lines(srv))
                calls = [
                    stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=LONG_TEXT, seed=number * n + i))
                    for i in range(n)
                ]
                started = time.perf_counter()
                client_ms: list[float] = []

                async def timed(call, started=started, client_ms=client_ms) -> grpc.StatusCode:
                    code = await _first_chunk(call)
                    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        client_ms.append((time.perf_counter() - started) * 1e3)
                    return code

                codes = await asyncio.gather(*(timed(call) for call in calls))
                for call in calls:
                    call.cancel()
                await asyncio.sleep(1.0)  # the cancelled calls end, and their log lines come
                lines = _request_lines(srv)[logged:]
                shed = [line["duration_ms"] for line in lines if line["status"] == "RESOURCE_EXHAUSTED"]
                per_burst.append((collections.Counter(code.name for code in codes), shed, client_ms))
    for counts, shed, client_ms in per_burst:
        print(
            f"burst        {n} calls at once, --max-streams {max_streams}: {dict(counts)}; shed calls in the server "
            f"p50 {_ms(shed, 50)} / p99 {_ms(shed, 99)} / max {max(shed, default=0):.1f} ms ({len(shed)} logged); "
            f"as the client saw them (from the burst's start) p50 {_ms(client_ms, 50)} / p99 {_ms(client_ms, 99)} ms"
        )
    if bursts > 1:
        pooled = [ms for _, shed, _ in per_burst for ms in shed]
        print(
            f"burst        all {bursts} bursts: shed calls in the server p50 {_ms(pooled, 50)} / p99 "
            f"{_ms(pooled, 99)} / max {max(pooled, default=0):.1f} ms ({len(pooled)} logged); each burst's p99 "
            + ", ".join(_ms(shed, 99) for _, shed, _ in per_burst)
        )


async def non_reading(streams: int, hang_s: float) -> None:
    async with server("--max-streams", str(streams), "--max-waiting-streams", str(streams)) as srv:
        # No BDP probing: the client's flow-control window stays at gRPC's 64 KiB per stream, so a
        # client that reads nothing soon stops taking audio (with probing, gRPC grows the window
        # to megabytes and the client's own buffers take most of a minute of audio unread).
        async with grpc.aio.insecure_channel(srv.address, options=[("grpc.http2.bdp_probe", 0)]) as channel:
            stub = pb_grpc.SynthesizerStub(channel)
            for text in CORPUS[:4]:  # warm: the memory a served request leaves behind
                async for _ in stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=text)):
                    pass
            before = process_rss_mb(srv.pid)
            calls = [stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=LONG_TEXT, seed=i)) for i in range(streams)]
            await asyncio.gather(*(call.initial_metadata() for call in calls))
            samples = []
            for _ in range(int(hang_s)):
                await asyncio.sleep(1.0)
                samples.append(process_rss_mb(srv.pid) or 0.0)
            for call in calls:
                call.cancel()
            await asyncio.sleep(2.0)
            after = process_rss_mb(srv.pid)
    print(
        f"non-reading  {streams} streams of ~60 s audio never read for {hang_s:.0f} s: server RSS {before:.0f} MiB before, "
        f"{samples[len(samples) // 2]:.0f} after {len(samples) // 2} s, {samples[-1]:.0f} at {len(samples)} s "
        f"(peak {max(samples):.0f}), {after:.0f} after cancelling"
    )


async def deadlines(calls: int, concurrency: int) -> None:
    rng = random.Random(11)
    async with server() as srv:
        async with grpc.aio.insecure_channel(srv.address) as channel:
            stub = pb_grpc.SynthesizerStub(channel)
            await stub.ListVoices(pb.ListVoicesRequest())
            before = process_rss_mb(srv.pid)
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int) -> str:
                async with gate:
                    timeout = rng.uniform(0.001, 0.3)
                    try:
                        if i % 2:
                            await stub.Synthesize(pb.SynthesizeRequest(text=CORPUS[i % len(CORPUS)]), timeout=timeout)
                        else:
                            request = pb.StreamSynthesizeRequest(text=LONG_TEXT[:300])
                            async for _ in stub.StreamSynthesize(request, timeout=timeout):
                                pass
                    except grpc.aio.AioRpcError as error:
                        return error.code().name
                    return "OK"

            codes = collections.Counter(await asyncio.gather(*(one(i) for i in range(calls))))
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            after = process_rss_mb(srv.pid)
        errors = [line for line in srv.log.complaints if "ERROR" in line or "Traceback" in line]
    print(
        f"deadlines    {calls} calls, deadlines 1-300 ms, {concurrency} at a time: {dict(codes)}; "
        f"{len(errors)} ERROR lines; health {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}; "
        f"RSS {before:.0f} -> {after:.0f} MiB"
    )


async def sigterm(streams: int) -> None:
    async with server("--max-streams", str(streams), "--drain-seconds", "20") as srv:
        async with grpc.aio.insecure_channel(srv.address) as channel:
            stub = pb_grpc.SynthesizerStub(channel)
            text = " ".join(CORPUS[:6])  # about 14 s of audio each
            calls = [stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=text, seed=i)) for i in range(streams)]
            for call in calls:
                await call.read()
            started = time.perf_counter()
            srv.process.send_signal(signal.SIGTERM)

            async def rest(call) -> tuple[str, bool]:
                last = None
                try:
                    while (response := await call.read()) is not grpc.aio.EOF:
                        last = response
                except grpc.aio.AioRpcError as error:
                    return error.code().name, False
                return "OK", bool(last and last.final)

            results = await asyncio.gather(*(rest(call) for call in calls))
            read_s = time.perf_counter() - started
            await srv.process.wait()
            exit_s = time.perf_counter() - started
    whole = sum(1 for code, final in results if code == "OK" and final)
    print(
        f"sigterm      {streams} streams of ~14 s audio in flight, 20 s grace: {whole}/{streams} finished whole "
        f"in {read_s:.1f} s; exit code {srv.process.returncode} after {exit_s:.1f} s"
    )


async def restart(tries: int) -> None:
    port = free_port()
    seconds = []
    for _ in range(tries):
        async with server("--port", str(port)) as first:
            first.process.kill()
            killed = time.perf_counter()
            await first.process.wait()
        # The new process: start, bind the same port, load and warm the voice, report SERVING.
        async with server("--port", str(port)):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            seconds.append(time.perf_counter() - killed)
    print(
        f"restart      kill -9, then a new server on the same port, SERVING after: "
        f"median {percentile(seconds, 50):.1f} s, max {max(seconds):.1f} s ({tries} tries)"
    )


# -- soak ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    at: float
    kind: str
    code: str
    expected: bool
    first_audio_ms: float | None = None


@dataclass
class SoakLog:
    outcomes: list[Outcome] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)


EXPECTED = {
    "valid": {"OK"},
    "live": {"OK"},
    "invalid": {"INVALID_ARGUMENT", "NOT_FOUND"},
    "cancelled": {"CANCELLED"},
    "deadline": {"OK", "DEADLINE_EXCEEDED"},
}
KINDS = ["valid"] * 14 + ["live"] * 2 + ["invalid"] * 2 + ["cancelled"] * 1 + ["deadline"] * 1
INVALID = [
    pb.StreamSynthesizeRequest(text=""),
    pb.StreamSynthesizeRequest(text="Hello.", voice="no-such-voice"),
    pb.StreamSynthesizeRequest(text="Hello.", audio_config=pb.AudioConfig(sample_rate_hz=1)),
    pb.StreamSynthesizeRequest(text="Hello.", speaking_rate=99.0),
]
# What voice bots ask for: the voice's own PCM, telephony's 8 kHz mu-law, WebRTC's 48 kHz Opus.
ENCODINGS = [
    (pb.AUDIO_ENCODING_LINEAR16, 0),
    (pb.AUDIO_ENCODING_LINEAR16, 16000),
    (pb.AUDIO_ENCODING_MULAW, 8000),
    (pb.AUDIO_ENCODING_OGG_OPUS, 48000),
]


async def _one(stub, kind: str, rng: random.Random, started: float) -> Outcome:
    """One call of ``kind``. A caller plays what it gets: after a stream ends it waits until the
    audio would have finished playing (from its first chunk), as a voice bot waits for its turn."""
    sent = time.perf_counter()
    first: float | None = None
    audio_s = 0.0
    rate = 0
    text = rng.choice(CORPUS)
    try:
        if kind == "live":
            requests = [
                pb.LiveSynthesizeRequest(settings=pb.LiveSettings()),
                pb.LiveSynthesizeRequest(utterance_id="t", text=text[: len(text) // 2]),
                pb.LiveSynthesizeRequest(utterance_id="t", text=text[len(text) // 2 :], end_of_utterance=True),
            ]
            async for response in stub.LiveSynthesize(iter(requests), timeout=60):
                if response.HasField("format"):
                    rate = response.format.sample_rate_hz
                if response.audio and first is None:
                    first = time.perf_counter()
                audio_s += response.num_samples / rate if rate else 0.0
        else:
            if kind == "invalid":
                request = rng.choice(INVALID)
            else:
                encoding, rate = rng.choice(ENCODINGS)
                config = pb.AudioConfig(encoding=encoding, sample_rate_hz=rate)
                request = pb.StreamSynthesizeRequest(text=text, audio_config=config, seed=rng.randrange(1000))
            timeout = rng.uniform(0.05, 1.0) if kind == "deadline" else 60
            call = stub.StreamSynthesize(request, timeout=timeout)
            chunks = 0
            cancel_after = rng.randint(1, 3)
            async for response in call:
                chunks += 1
                if response.HasField("format"):
                    rate = response.format.sample_rate_hz
                audio_s += response.num_samples / rate if rate else 0.0
                if first is None:
                    first = time.perf_counter()
                if kind == "cancelled" and chunks >= cancel_after:
                    call.cancel()
                    break
            if kind == "cancelled":
                code = "CANCELLED" if call.cancelled() else "OK"
                return Outcome(sent - started, kind, code, code in EXPECTED[kind])
    except grpc.aio.AioRpcError as error:
        code = error.code().name
        return Outcome(sent - started, kind, code, code in EXPECTED[kind])
    first_ms = None if first is None or kind not in ("valid", "live") else (first - sent) * 1e3
    if first is not None:
        await asyncio.sleep(max(0.0, first + audio_s - time.perf_counter()))  # the rest of the playback
    return Outcome(sent - started, kind, "OK", "OK" in EXPECTED[kind], first_ms)


async def soak(
    minutes: float, concurrency: int, window_s: float, warmup_s: float, think_s: float, stagger_s: float
) -> None:
    log = SoakLog()
    duration = minutes * 60
    async with server() as srv:
        print(f"soak: {minutes:g} min, {concurrency} callers, server pid {srv.pid}; {machine_line(machine())}")
        async with grpc.aio.insecure_channel(srv.address) as channel:
            stub = pb_grpc.SynthesizerStub(channel)
            started = time.perf_counter()

            async def caller(i: int) -> None:
                rng = random.Random(i)
                await asyncio.sleep(rng.uniform(0, stagger_s))
                while time.perf_counter() - started < duration:
                    log.outcomes.append(await _one(stub, rng.choice(KINDS), rng, started))
                    await asyncio.sleep(rng.uniform(0, 2 * think_s))

            async def sample_memory() -> None:
                while time.perf_counter() - started < duration:
                    log.rss.append((time.perf_counter() - started, process_rss_mb(srv.pid) or 0.0))
                    await asyncio.sleep(10.0)

            async def report() -> None:
                window = 0
                print("window | requests | unexpected | first audio p50 / p95 ms | server MiB", flush=True)
                while (window + 1) * window_s <= duration + 1:
                    await asyncio.sleep(max(0.0, started + (window + 1) * window_s - time.perf_counter()))
                    rows = [o for o in log.outcomes if window * window_s <= o.at < (window + 1) * window_s]
                    firsts = [o.first_audio_ms for o in rows if o.first_audio_ms is not None]
                    unexpected = sum(1 for o in rows if not o.expected)
                    rss = log.rss[-1][1] if log.rss else 0.0
                    print(
                        f"{window * window_s / 60:5g}-{(window + 1) * window_s / 60:<4g} min | {len(rows):8} | "
                        f"{unexpected:10} | {_ms(firsts, 50)} / {_ms(firsts, 95)} | {rss:.0f}",
                        flush=True,
                    )
                    window += 1

            await asyncio.gather(sample_memory(), report(), *(caller(i) for i in range(concurrency)))
        complaints = list(srv.log.complaints)
    _soak_summary(log, complaints, duration, window_s, warmup_s)


def _bootstrap_interval(values: list[float], q: float, resamples: int = 2000) -> tuple[float, float]:
    """A 90% bootstrap interval of the ``q``th percentile of ``values`` (seeded: reruns agree)."""
    rng = random.Random(0)
    estimates = sorted(
        percentile(rng.choices(values, k=len(values)), q) or 0.0 for _ in range(resamples if values else 0)
    )
    if not estimates:
        return float("nan"), float("nan")
    return estimates[int(0.05 * len(estimates))], estimates[int(0.95 * len(estimates)) - 1]


def _soak_summary(log: SoakLog, complaints: list[str], duration: float, window_s: float, warmup_s: float) -> None:
    kinds = collections.Counter((o.kind, o.code) for o in log.outcomes)
    unexpected = [o for o in log.outcomes if not o.expected]
    after_warmup = [mb for at, mb in log.rss if at >= warmup_s]
    growth = (after_warmup[-1] / after_warmup[0] - 1) * 100 if len(after_warmup) > 1 else float("nan")

    def p95(lo: float, hi: float) -> str:
        firsts = [o.first_audio_ms for o in log.outcomes if lo <= o.at < hi and o.first_audio_ms is not None]
        low, high = _bootstrap_interval(firsts, 95)
        return f"{_ms(firsts, 95)} (90% interval {low:.0f}-{high:.0f})" if firsts else "-"

    print(f"requests: {len(log.outcomes)}; by kind and status: {dict(sorted(kinds.items()))}")
    print(f"unexpected statuses: {len(unexpected)} {collections.Counter((o.kind, o.code) for o in unexpected)}")
    print(f"server WARNING/ERROR lines: {len(complaints)}" + "".join(f"\n  {line[:300]}" for line in complaints[:5]))
    if after_warmup:
        print(
            f"resident memory after {warmup_s / 60:g} min of warm-up: {after_warmup[0]:.0f} MiB -> "
            f"{after_warmup[-1]:.0f} MiB at the end ({growth:+.1f}%), peak {max(after_warmup):.0f} MiB"
        )
    print(f"first audio p95: first window {p95(0, window_s)} ms, last window {p95(duration - window_s, duration)} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    faults = commands.add_parser("faults")
    faults.add_argument("--max-streams", type=int, default=16)
    faults.add_argument("--bursts", type=int, default=10, help="bursts on one server, pooled")
    faults.add_argument("--non-reading-streams", type=int, default=64)
    faults.add_argument("--hang-s", type=float, default=30.0)
    faults.add_argument("--restarts", type=int, default=3)
    faults.add_argument("--only", choices=["burst", "non-reading", "deadlines", "sigterm", "restart"], action="append")
    soak_parser = commands.add_parser("soak")
    soak_parser.add_argument("--minutes", type=float, default=30.0)
    # 8 callers: 80% of the 10 concurrent real-time streams this 2-core machine sustains (docs/reliability.md).
    soak_parser.add_argument("--concurrency", type=int, default=8)
    soak_parser.add_argument("--window-s", type=float, default=300.0)
    soak_parser.add_argument("--warmup-s", type=float, default=300.0)
    soak_parser.add_argument("--think-s", type=float, default=0.3)
    soak_parser.add_argument("--stagger-s", type=float, default=3.0, help="callers start within this many seconds")
    args = parser.parse_args(argv)
    if args.command == "faults":
        print(f"faults on {machine_line(machine())}", flush=True)

        scenarios = {
            "burst": lambda: burst(args.max_streams, args.bursts),
            "non-reading": lambda: non_reading(args.non_reading_streams, args.hang_s),
            "deadlines": lambda: deadlines(500, 50),
            "sigterm": lambda: sigterm(args.max_streams),
            "restart": lambda: restart(args.restarts),
        }

        async def all_faults() -> None:
            for name, scenario in scenarios.items():
                if not args.only or name in args.only:
                    await scenario()

        asyncio.run(all_faults())
    else:
        asyncio.run(soak(args.minutes, args.concurrency, args.window_s, args.warmup_s, args.think_s, args.stagger_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
