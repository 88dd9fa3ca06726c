"""Load benchmark: simulated callers against a server, piper-tts baseline and Syrinx side by side.

Each request streams one sentence with StreamSynthesize and is played back in
simulated real time: playback starts when the first chunk arrives (plus
``--prebuffer-ms``), each chunk adds its duration to the playback timeline, and
a chunk that arrives after the audio before it has finished playing is an
UNDERRUN (the listener hears a gap until it arrives). Modes:

  calls       closed loop: N callers; each sends a sentence, listens to it to the
              end, waits ``--think-ms`` and sends the next (N = ``--concurrency``)
  rate        open loop: requests arrive as a Poisson process at ``--rate`` per
              second, each played out as above, none waiting for another
  throughput  N workers re-request as soon as a response ends; reports how much
              audio the server produces per wall second

Every level runs ``--warmup`` seconds whose requests are not counted, then
``--duration`` seconds; requests sent in that window are counted (those still
running at its end are waited for). With ``--target both`` (the default) each
level runs on the baseline (``bench.piper_server``) and then on Syrinx, never
both at once. The servers are started here as subprocesses and stopped at
the end; ``--address`` measures an already-running server instead. The load
generator is one asyncio process that only counts samples. Not a test: it
only reports.

Per level: time to first audio (send to first chunk) over the requests that
succeeded; requests with underruns, underruns and stalled seconds; failed
requests by status code (RESOURCE_EXHAUSTED is counted, not retried; the caller
tries its next sentence after ``--error-pause-ms``); x-real-time, the audio
seconds that arrived in the window per wall second; the mean gap between
chunks; the CPU the server used, and a warning when other processes on the
machine used enough CPU to spoil the comparison.

    python -m bench.load_bench --concurrency 1,4,8,16 --duration 30 --json out.json --plot out.png
    python -m bench.load_bench --mode rate --rate 0.5,1,2 --target syrinx
    python -m bench.load_bench --mode throughput --concurrency 4 --address 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import platform
import random
import re
import shlex
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import grpc

from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

REPO_ROOT = Path(__file__).resolve().parents[1]

# One sentence per request, 1.5 to 3 s of audio each with en_US-joe-medium: the
# length of a voice assistant's turn. Varied in length and shape (numbers,
# questions, lists) so that callers do not move in lockstep.
CORPUS = (
    "Your table for two is booked for seven tonight.",
    "One moment while I look that up.",
    "The package left our warehouse this morning.",
    "Would you like me to read that back to you?",
    "Your balance is forty two dollars and ten cents.",
    "Yes, you're all set.",
    "The next train to Boston leaves at nine fifteen.",
    "Great news: your refund has been approved!",
    "Sure, I can do that for you.",
    "Is there anything else I can help you with today?",
    "It will be sunny, with a high of twenty four.",
    "Hello, thanks for calling.",
    "Press one for sales, or two for support.",
    "Your code is four, seven, nine.",
    "Can you spell your last name for me, please?",
    "Sorry, that slot is taken.",
    "Thanks for waiting, I've found your order.",
    "That flight is fully booked, but there is one at noon.",
    "I've sent the receipt to your email.",
    "Goodbye, and have a wonderful evening!",
)

TARGETS = ("piper", "syrinx")  # baseline first: its row comes first in the table
TARGET_LABELS = {"piper": "piper-tts", "syrinx": "syrinx", "address": "server"}
SERVER_STARTUP_TIMEOUT_S = 300.0
SERVER_STOP_TIMEOUT_S = 30.0
READY_LINE = re.compile(r"serving on port (\d+)")


# ---------------------------------------------------------------- records


@dataclass
class Playback:
    """A listener's player, in real time: when the audio received so far runs out."""

    prebuffer_s: float
    ends_at: float | None = None
    underruns: int = 0
    stalled_s: float = 0.0

    def receive(self, arrival: float, duration_s: float) -> float:
        """Queue a chunk; returns how much audio was still queued ahead of it (< 0: it came late)."""
        if self.ends_at is None:
            self.ends_at = arrival + self.prebuffer_s
        lead = self.ends_at - arrival
        if lead < 0:
            self.underruns += 1
            self.stalled_s -= lead
            self.ends_at = arrival  # the player waited for this chunk and resumes with it
        self.ends_at += duration_s
        return lead


@dataclass
class RequestRecord:
    """One StreamSynthesize request. Times in seconds; arrivals from the moment it was sent."""

    target: str
    level: float
    caller: int
    sentence: int
    sent_at_s: float  # from the level's start
    code: str = "OK"
    first_audio_s: float | None = None
    total_s: float = 0.0
    audio_s: float = 0.0
    underruns: int = 0
    stalled_s: float = 0.0
    chunk_arrivals_s: list[float] = field(default_factory=list)
    chunk_audio_s: list[float] = field(default_factory=list)
    chunk_lead_s: list[float] = field(default_factory=list)  # audio queued ahead of each chunk on arrival
    playback_ends_at: float | None = field(default=None, repr=False)  # loop clock; not reported

    @property
    def ok(self) -> bool:
        return self.code == "OK"

    def report(self) -> dict:
        fields = dataclasses.asdict(self)
        del fields["playback_ends_at"]
        return fields


@dataclass
class Window:
    """The counted part of a level, on the event loop's clock."""

    started: float  # the level's start, warm-up included
    opens: float
    closes: float

    def counts(self, sent: float) -> bool:
        return self.opens <= sent < self.closes


@dataclass
class AudioMeter:
    """Audio seconds that arrive inside the window, whichever request they belong to."""

    window: Window
    audio_s: float = 0.0

    def add(self, at: float, audio_s: float) -> None:
        if self.window.opens <= at < self.window.closes:
            self.audio_s += audio_s

    @property
    def x_real_time(self) -> float:
        return self.audio_s / (self.window.closes - self.window.opens)


@dataclass
class LevelSummary:
    target: str
    mode: str
    level: float
    requests: int
    ok: int
    first_audio_p50_ms: float | None
    first_audio_p95_ms: float | None
    first_audio_p99_ms: float | None
    requests_with_underruns: int
    underruns: int
    stalled_s: float
    errors: dict[str, int]
    x_real_time: float
    mean_chunk_gap_ms: float | None
    chunks_per_request: float | None
    server_cpu_cores: float | None = None  # CPU the measured server used, in cores, over the level
    foreign_cpu_cores: float | None = None  # CPU used by processes not of this run (a shared machine)
    server_rss_mb: float | None = None  # the measured server's resident memory at the level's end


# ---------------------------------------------------------------- one request


@dataclass
class Settings:
    mode: str
    prebuffer_s: float
    think_s: float
    error_pause_s: float
    request_timeout_s: float
    warmup_s: float
    duration_s: float


async def stream_sentence(
    stub: pb_grpc.SynthesizerStub, record: RequestRecord, settings: Settings, meter: AudioMeter, sent: float
) -> None:
    """Send the record's sentence, play the chunks as they come, fill the record in."""
    loop = asyncio.get_running_loop()
    playback = Playback(settings.prebuffer_s)
    request = pb.StreamSynthesizeRequest(
        text=CORPUS[record.sentence],
        seed=record.sentence,
        request_id=f"{record.target}-{record.level:g}-{record.caller}",
    )
    sample_rate = 0
    call = stub.StreamSynthesize(request, timeout=settings.request_timeout_s)
    try:
        async for chunk in call:
            arrival = loop.time()
            if chunk.HasField("format"):
                sample_rate = chunk.format.sample_rate_hz
            if sample_rate <= 0:
                record.code = "NO_AUDIO_FORMAT"  # a broken stream: the first chunk must state the format
                call.cancel()
                break
            audio_s = chunk.num_samples / sample_rate
            if record.first_audio_s is None:
                record.first_audio_s = arrival - sent
            record.chunk_arrivals_s.append(arrival - sent)
            record.chunk_audio_s.append(audio_s)
            record.chunk_lead_s.append(playback.receive(arrival, audio_s))
            record.audio_s += audio_s
            meter.add(arrival, audio_s)
    except grpc.aio.AioRpcError as error:
        record.code = error.code().name  # counted, never retried
    record.total_s = loop.time() - sent
    record.underruns = playback.underruns
    record.stalled_s = playback.stalled_s
    record.playback_ends_at = playback.ends_at


class LevelRun:
    """One target at one level: sends the requests and keeps the counted records."""

    def __init__(self, stub, target: str, level: float, settings: Settings) -> None:
        self.stub = stub
        self.target = target
        self.level = level
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        started = self.loop.time()
        opens = started + settings.warmup_s
        self.window = Window(started, opens, opens + settings.duration_s)
        self.meter = AudioMeter(self.window)
        self.records: list[RequestRecord] = []

    async def request(self, caller: int, sentence: int) -> RequestRecord:
        sent = self.loop.time()
        record = RequestRecord(self.target, self.level, caller, sentence, sent_at_s=sent - self.window.started)
        await stream_sentence(self.stub, record, self.settings, self.meter, sent)
        if self.window.counts(sent):
            self.records.append(record)
        return record

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - self.loop.time()))

    # ---- closed loop: callers and throughput workers

    async def caller(self, index: int, start_delay_s: float, listens: bool) -> None:
        """Sends one sentence after another until the window closes; ``listens``: waits for playback."""
        await asyncio.sleep(start_delay_s)
        turn = 0
        while self.loop.time() < self.window.closes:
            sentence = (index + turn) % len(CORPUS)  # per-caller offset: callers say different things
            turn += 1
            record = await self.request(index, sentence)
            if not record.ok:
                # A caller that was turned away hangs up and calls again a bit later,
                # so a rejecting server sees callers, not a busy loop.
                await asyncio.sleep(self.settings.error_pause_s)
                continue
            if listens and record.playback_ends_at is not None:
                await self.sleep_until(record.playback_ends_at)
            await asyncio.sleep(self.settings.think_s)

    async def run_callers(self, count: int, listens: bool) -> None:
        # Callers join evenly over the warm-up, so the counted window starts with them
        # spread over their sentences instead of all sending at the same instant.
        spread_s = self.settings.warmup_s / count if listens else 0.0
        await asyncio.gather(*(self.caller(i, i * spread_s, listens) for i in range(count)))

    # ---- open loop

    async def run_arrivals(self, rate: float, rng: random.Random) -> None:
        """Poisson arrivals until the window closes; each request plays out on its own."""
        arrival = self.window.started
        index = 0
        async with asyncio.TaskGroup() as in_flight:  # waits for the last requests; cancels them all on Ctrl-C
            while True:
                arrival += rng.expovariate(rate)
                if arrival >= self.window.closes:
                    break
                await self.sleep_until(arrival)
                in_flight.create_task(self.request(index, index % len(CORPUS)))
                index += 1


async def run_level(
    stub, target: str, level: float, settings: Settings, seed: int
) -> tuple[LevelSummary, list[RequestRecord]]:
    run = LevelRun(stub, target, level, settings)
    if settings.mode == "calls":
        await run.run_callers(int(level), listens=True)
    elif settings.mode == "throughput":
        await run.run_callers(int(level), listens=False)
    else:
        await run.run_arrivals(level, random.Random(seed))
    return summarize(target, settings.mode, level, run.records, run.meter), run.records


# ---------------------------------------------------------------- figures


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def summarize(target: str, mode: str, level: float, records: list[RequestRecord], meter: AudioMeter) -> LevelSummary:
    # Latency and underruns describe the requests that succeeded; failures are counted by code.
    ok = [r for r in records if r.ok]
    first_ms = [r.first_audio_s * 1e3 for r in ok if r.first_audio_s is not None]
    gaps = [later - earlier for r in ok for earlier, later in zip(r.chunk_arrivals_s, r.chunk_arrivals_s[1:])]
    errors = collections.Counter(r.code for r in records if not r.ok)
    return LevelSummary(
        target=target,
        mode=mode,
        level=level,
        requests=len(records),
        ok=len(ok),
        first_audio_p50_ms=percentile(first_ms, 50),
        first_audio_p95_ms=percentile(first_ms, 95),
        first_audio_p99_ms=percentile(first_ms, 99),
        requests_with_underruns=sum(1 for r in ok if r.underruns),
        underruns=sum(r.underruns for r in ok),
        stalled_s=sum(r.stalled_s for r in ok),
        errors=dict(sorted(errors.items())),
        x_real_time=meter.x_real_time,
        mean_chunk_gap_ms=sum(gaps) / len(gaps) * 1e3 if gaps else None,
        chunks_per_request=sum(len(r.chunk_arrivals_s) for r in ok) / len(ok) if ok else None,
    )


# ---------------------------------------------------------------- servers


def server_command(target: str, args: argparse.Namespace) -> list[str]:
    if target == "syrinx":
        # The same entry point as the `syrinx-server` script, from this interpreter's environment.
        return [
            sys.executable,
            "-m",
            "syrinx.server.app",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *shlex.split(args.syrinx_args),
        ]
    return [
        sys.executable,
        "-m",
        "bench.piper_server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        str(args.piper_workers),
    ]


class ServerError(RuntimeError):
    """A server this run started did not start or died: nothing more to measure."""


@dataclass
class ServerLog:
    """What a server wrote to stderr: the last lines (for start-up failures) and its complaints."""

    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))
    complaints: list[str] = field(default_factory=list)
    kept: list[str] | None = None  # every line from keep_all() on (bench/reliability.py reads request lines)

    def keep_all(self) -> None:
        self.kept = []

    def add(self, line: str) -> None:
        self.tail.append(line)
        if self.kept is not None:
            self.kept.append(line)
        if any(word in line for word in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")):
            self.complaints.append(line)

    def last_lines(self) -> str:
        return "its last lines:\n  " + "\n  ".join(self.tail)


@dataclass
class Server:
    target: str
    address: str
    process: asyncio.subprocess.Process | None = None  # None: a server this run did not start
    log: ServerLog = field(default_factory=ServerLog)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def check_running(self) -> None:
        """Stop the run if our server died: its figures would only measure connection errors."""
        if self.process is not None and self.process.returncode is not None:
            raise ServerError(
                f"the {self.target} server exited (code {self.process.returncode}); {self.log.last_lines()}"
            )


async def _read_until_ready(stream: asyncio.StreamReader, log: ServerLog) -> int:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        log.add(text)
        if match := READY_LINE.search(text):
            return int(match.group(1))
    raise ServerError(f"the server exited before it was ready; {log.last_lines()}")


async def _keep_reading(stream: asyncio.StreamReader, log: ServerLog) -> None:
    # A server that logs into a full pipe blocks: read everything it writes until it exits.
    while line := await stream.readline():
        log.add(line.decode(errors="replace").rstrip())


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), SERVER_STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def running_server(target: str, args: argparse.Namespace) -> AsyncIterator[Server]:
    """Start a server, yield it once it logs that it is serving, always stop it."""
    command = server_command(target, args)
    print(f"starting {target}: {shlex.join(command)}", file=sys.stderr, flush=True)
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    log = ServerLog()
    reader: asyncio.Task | None = None
    try:
        try:
            port = await asyncio.wait_for(_read_until_ready(process.stderr, log), SERVER_STARTUP_TIMEOUT_S)
        except TimeoutError:
            raise ServerError(
                f"{target} did not log 'serving on port' within {SERVER_STARTUP_TIMEOUT_S:.0f} s; {log.last_lines()}"
            ) from None
        reader = asyncio.create_task(_keep_reading(process.stderr, log))
        yield Server(target, f"127.0.0.1:{port}", process, log)
    finally:
        await _stop(process)
        if reader is not None:
            # The pipe ends when the server has exited, unless something it started still holds it.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader, 5.0)


# ---------------------------------------------------------------- CPU accounting

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FOREIGN_CPU_WARNING_CORES = 0.2


def _machine_busy_ticks() -> int | None:
    """CPU time used by every process on this kernel, other containers' included (/proc/stat is not namespaced)."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
    except (OSError, ValueError):
        return None
    return user + nice + system + irq + softirq


def _process_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            after_name = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces; it ends at the last ')'
    except (OSError, IndexError):
        return None
    return int(after_name[11]) + int(after_name[12])  # utime + stime, all threads


def free_port() -> int:
    """A loopback port nothing listens on now (for a server that must be started on a known port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_rss_mb(pid: int | None) -> float | None:
    """Resident memory of process ``pid`` (all threads), in MiB; ``None`` if it cannot be read."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return kib / 1024


@dataclass
class CpuSnapshot:
    at: float
    machine: int | None
    processes: dict[int, int | None]

    @classmethod
    def take(cls, pids: list[int]) -> CpuSnapshot:
        return cls(time.monotonic(), _machine_busy_ticks(), {pid: _process_ticks(pid) for pid in pids})


def cpu_use(before: CpuSnapshot, after: CpuSnapshot, server_pid: int | None) -> tuple[float | None, float | None]:
    """(cores the server used, cores used by processes of neither this run nor its servers)."""
    seconds = after.at - before.at

    def cores(ticks_before: int | None, ticks_after: int | None) -> float | None:
        if ticks_before is None or ticks_after is None or seconds <= 0:
            return None
        return (ticks_after - ticks_before) / CLOCK_TICKS / seconds

    if server_pid is None:  # a server we did not start: its CPU cannot be told from anyone else's
        return None, None
    ours = [cores(before.processes[pid], after.processes.get(pid)) for pid in before.processes]
    server = cores(before.processes.get(server_pid), after.processes.get(server_pid))
    machine_busy = cores(before.machine, after.machine)
    foreign = None if machine_busy is None or None in ours else max(0.0, machine_busy - sum(ours))
    return server, foreign


# ---------------------------------------------------------------- output


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _errors(errors: dict[str, int]) -> str:
    return " ".join(f"{code}:{count}" for code, count in errors.items()) or "-"


TABLE_COLUMNS = (
    ("target", 10),
    ("level", 6),
    ("requests", 9),
    ("p50 ms", 8),
    ("p95 ms", 8),
    ("p99 ms", 8),
    ("underrun req", 13),
    ("underruns", 10),
    ("stall s", 8),
    ("x-real-time", 12),
    ("chunk gap ms", 13),
    ("srv cores", 10),
    ("srv MiB", 8),
    ("errors", 0),
)


def table_header(mode: str) -> str:
    level_name = {"calls": "calls", "rate": "req/s", "throughput": "workers"}[mode]
    names = [level_name if name == "level" else name for name, _ in TABLE_COLUMNS]
    widths = [width for _, width in TABLE_COLUMNS]
    line = names[0].ljust(widths[0]) + "".join(n.rjust(w) for n, w in zip(names[1:-1], widths[1:-1])) + "  " + names[-1]
    return line + "\n" + "-" * (len(line) + 10)


def table_row(s: LevelSummary) -> str:
    cells = [
        f"{s.level:g}",
        str(s.requests),
        _ms(s.first_audio_p50_ms),
        _ms(s.first_audio_p95_ms),
        _ms(s.first_audio_p99_ms),
        str(s.requests_with_underruns),
        str(s.underruns),
        f"{s.stalled_s:.1f}",
        f"{s.x_real_time:.2f}",
        _ms(s.mean_chunk_gap_ms) if s.mode == "calls" else "",
        "-" if s.server_cpu_cores is None else f"{s.server_cpu_cores:.2f}",
        "-" if s.server_rss_mb is None else f"{s.server_rss_mb:.0f}",
    ]
    widths = [width for _, width in TABLE_COLUMNS]
    label = TARGET_LABELS[s.target]
    return label.ljust(widths[0]) + "".join(c.rjust(w) for c, w in zip(cells, widths[1:-1])) + "  " + _errors(s.errors)


def ratio_row(baseline: LevelSummary, syrinx: LevelSummary) -> str:
    if baseline.first_audio_p95_ms is None or not syrinx.first_audio_p95_ms:
        return "  p95 first audio piper-tts/syrinx: -"
    return f"  p95 first audio piper-tts/syrinx: {baseline.first_audio_p95_ms / syrinx.first_audio_p95_ms:.2f}x"


def foreign_load_warning(s: LevelSummary) -> str | None:
    if s.foreign_cpu_cores is None or s.foreign_cpu_cores < FOREIGN_CPU_WARNING_CORES:
        return None
    return f"  warning: other processes kept {s.foreign_cpu_cores:.2f} cores busy during this level; its figures are suspect"


def machine_line(description: dict) -> str:
    versions = ", ".join(
        f"{name} {description[name]}" for name in ("python", "torch", "onnxruntime", "piper-tts", "grpcio")
    )
    return f"{description['cpu']}, {description['usable_cores']} of {description['cores']} cores usable, {versions}"


def machine() -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    # Versions from package metadata: importing torch would make the load generator heavy.
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{package: version(package) for package in ("torch", "onnxruntime", "piper-tts", "grpcio")},
    }


def write_json(
    path: str,
    command: str,
    args: argparse.Namespace,
    summaries: list[LevelSummary],
    records: list[RequestRecord],
    servers: list[Server],
) -> None:
    report = {
        "command": command,
        "machine": machine(),
        "settings": vars(args),
        "levels": [dataclasses.asdict(s) for s in summaries],
        "server_complaints": {server.target: server.log.complaints for server in servers},
        "requests": [r.report() for r in records],
    }
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


def write_plot(path: str, mode: str, summaries: list[LevelSummary]) -> None:
    import matplotlib  # only here: the benchmark runs without it unless a plot is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    level_name = {"calls": "concurrent calls", "rate": "requests per second", "throughput": "workers"}[mode]
    fig, (latency, stalls) = plt.subplots(1, 2, figsize=(12, 4.5))
    for color, target in zip(("tab:orange", "tab:blue", "tab:green"), dict.fromkeys(s.target for s in summaries)):
        rows = [s for s in summaries if s.target == target]
        levels = [s.level for s in rows]
        label = TARGET_LABELS[target]
        for style, name in (("-", "p50"), ("--", "p95"), (":", "p99")):
            values = [getattr(s, f"first_audio_{name}_ms") for s in rows]
            values = [float("nan") if v is None else v for v in values]
            latency.plot(levels, values, style, color=color, marker="o", label=f"{label} {name}")
        stalls.plot(
            levels,
            [s.requests_with_underruns for s in rows],
            "-",
            color=color,
            marker="o",
            label=f"{label} requests with underruns",
        )
        stalls.plot(levels, [s.underruns for s in rows], "--", color=color, marker="o", label=f"{label} underruns")
    latency.set_yscale("log")
    latency.set(xlabel=level_name, ylabel="time to first audio (ms)", title="First audio")
    stalls.set(xlabel=level_name, ylabel="count in the measured window", title="Playback underruns")
    most = max((s.underruns for s in summaries), default=0)
    stalls.set_ylim(0, max(1, most * 1.1))  # counts: no negative axis, even when all are zero
    stalls.yaxis.get_major_locator().set_params(integer=True)
    for axes in (latency, stalls):
        axes.set_xticks(sorted({s.level for s in summaries}))
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- main


def parse_levels(parser: argparse.ArgumentParser, text: str, whole: bool) -> list[float]:
    try:
        levels = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        parser.error(f"levels must be a comma list of numbers, got '{text}'")
    if not levels or any(level <= 0 or (whole and not level.is_integer()) for level in levels):
        parser.error(f"levels must be positive{' whole numbers' if whole else ''}, got '{text}'")
    return levels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("calls", "rate", "throughput"), default="calls")
    parser.add_argument("--target", choices=("piper", "syrinx", "both"), default="both")
    parser.add_argument("--address", help="host:port of a running server (then no server is started)")
    parser.add_argument("--concurrency", default="1,4,8,16,24,32", help="calls/throughput: comma list of levels")
    parser.add_argument("--rate", default="0.5,1,2,4", help="rate: comma list of requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="counted seconds per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="uncounted seconds before each level")
    parser.add_argument(
        "--prebuffer-ms", type=float, default=0.0, help="playback starts this long after the first chunk"
    )
    parser.add_argument(
        "--think-ms", type=float, default=0.0, help="calls: pause between hearing a reply and the next request"
    )
    parser.add_argument(
        "--error-pause-ms", type=float, default=1000.0, help="calls/throughput: pause after a failed request"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline of each request, seconds")
    parser.add_argument("--seed", type=int, default=1, help="rate: seed of the arrival times")
    parser.add_argument("--piper-workers", type=int, default=4, help="thread pool of the baseline server")
    parser.add_argument("--syrinx-args", default="", help="extra flags for syrinx-server, e.g. '--max-streams 64'")
    parser.add_argument("--json", help="write every figure, the machine and the command line here")
    parser.add_argument("--plot", help="draw first audio and underruns against the level into this PNG")
    args = parser.parse_args(argv)
    rate_mode = args.mode == "rate"
    args.levels = parse_levels(parser, args.rate if rate_mode else args.concurrency, whole=not rate_mode)
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be positive and --warmup not negative")
    return args


async def benchmark(args: argparse.Namespace, command: str) -> None:
    settings = Settings(
        mode=args.mode,
        prebuffer_s=args.prebuffer_ms / 1e3,
        think_s=args.think_ms / 1e3,
        error_pause_s=args.error_pause_ms / 1e3,
        request_timeout_s=args.timeout,
        warmup_s=args.warmup,
        duration_s=args.duration,
    )
    targets = [t for t in TARGETS if args.target in (t, "both")]
    summaries: list[LevelSummary] = []
    records: list[RequestRecord] = []

    async with contextlib.AsyncExitStack() as stack:
        if args.address:
            servers = [Server("address", args.address)]
        else:
            servers = [await stack.enter_async_context(running_server(target, args)) for target in targets]
        stubs = {}
        for server in servers:
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(server.address))
            stubs[server.target] = pb_grpc.SynthesizerStub(channel)
        our_pids = [os.getpid(), *(server.pid for server in servers if server.pid)]

        print(
            f"mode {args.mode}, {args.warmup:g} s warm-up + {args.duration:g} s per level; first audio in ms over successful requests"
        )
        print(table_header(args.mode), flush=True)
        for level in args.levels:
            by_target = {}
            for server in servers:
                before = CpuSnapshot.take(our_pids)
                summary, level_records = await run_level(
                    stubs[server.target], server.target, level, settings, args.seed
                )
                summary.server_cpu_cores, summary.foreign_cpu_cores = cpu_use(
                    before, CpuSnapshot.take(our_pids), server.pid
                )
                summary.server_rss_mb = process_rss_mb(server.pid)
                server.check_running()
                by_target[server.target] = summary
                summaries.append(summary)
                records.extend(level_records)
                print(table_row(summary), flush=True)
                if warning := foreign_load_warning(summary):
                    print(warning, flush=True)
            if set(TARGETS) <= by_target.keys():
                print(ratio_row(by_target["piper"], by_target["syrinx"]), flush=True)

    for server in servers:
        if server.log.complaints:
            print(
                f"\n{TARGET_LABELS[server.target]} logged {len(server.log.complaints)} warning/error line(s), first ones:"
            )
            print("\n".join(f"  {line}" for line in server.log.complaints[:5]))
    print(f"\nmachine: {machine_line(machine())}")
    if args.json:
        write_json(args.json, command, args, summaries, records, servers)
    if args.plot:
        write_plot(args.plot, args.mode, summaries)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, "-m", "bench.load_bench", *(sys.argv[1:] if argv is None else argv)])

    async def guarded() -> None:
        # SIGTERM ends the run like Ctrl-C does: the task is cancelled and every server is stopped on the way out.
        task = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await benchmark(args, command)

    try:
        asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    except ServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
