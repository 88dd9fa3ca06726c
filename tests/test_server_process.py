"""The server as a process: `syrinx` CLI against it, and SIGTERM while a stream is in flight."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import wave
from pathlib import Path

import grpc
import pytest

from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

BIN = Path(sys.executable).parent
START_TIMEOUT = 180


class ServerProcess:
    def __init__(self, drain_seconds: float = 60, port: int = 0) -> None:
        self.process = subprocess.Popen(
            [
                str(BIN / "syrinx-server"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--metrics-port",
                "0",
                "--drain-seconds",
                str(drain_seconds),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.wait_for(r"serving on port (\d+)").group(1))
        self.address = f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Stop it if it still runs (a test's clean-up after a failure)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for(self, pattern: str) -> re.Match:
        while True:
            try:
                line = self.lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"server never logged {pattern!r}") from None
            match = re.search(pattern, line)
            if match:
                return match


@pytest.fixture(scope="module")
def server_process():
    server = ServerProcess()
    yield server
    server.kill()


def syrinx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "syrinx"), *args], capture_output=True, text=True, timeout=120)


def test_cli_health_voices_say_stream(server_process, tmp_path):
    address = ("--address", server_process.address)
    health = syrinx(*address, "health", "--service", "syrinx.v1.Synthesizer")
    assert (health.returncode, health.stdout.strip()) == (0, "SERVING")

    voices = syrinx(*address, "voices")
    assert voices.returncode == 0 and "en_US-joe-medium (default)" in voices.stdout

    wav_path = tmp_path / "hello.wav"
    say = syrinx(*address, "say", "Hello from the command line.", "-o", str(wav_path), "--seed", "1")
    assert say.returncode == 0, say.stderr
    with wave.open(str(wav_path)) as wav:
        assert wav.getframerate() == 22050 and wav.getnframes() > 10_000

    raw_path = tmp_path / "hello.raw"
    stream = syrinx(*address, "stream", "Hello from the command line.", "-o", str(raw_path), "--seed", "1")
    assert stream.returncode == 0, stream.stderr
    assert "first audio after" in stream.stderr
    with wave.open(str(wav_path)) as wav:
        assert raw_path.read_bytes() == wav.readframes(wav.getnframes())  # same seed, same audio

    bad = syrinx(*address, "say", "Hi.", "--voice", "nope", "-o", str(tmp_path / "x.wav"))
    assert bad.returncode == 2 and "NOT_FOUND" in bad.stderr and "en_US-joe-medium" in bad.stderr


def test_sigterm_lets_the_stream_in_flight_finish_then_exits_0(server_process):
    channel = grpc.insecure_channel(server_process.address)
    stub = pb_grpc.SynthesizerStub(channel)
    text = " ".join(
        f"Sentence {i} of an answer that is still being spoken when the pod is told to stop." for i in range(6)
    )
    call = stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=text, seed=4))
    first = next(call)
    assert first.sequence_number == 0
    server_process.process.send_signal(signal.SIGTERM)
    server_process.wait_for(r"draining")
    rest = list(call)
    assert rest and rest[-1].final
    assert [r.sequence_number for r in rest] == list(range(1, len(rest) + 1))
    assert server_process.process.wait(timeout=60) == 0
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListVoices(pb.ListVoicesRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()


def test_sigterm_lets_a_fast_reader_finish_36_s_of_audio_within_a_20_s_grace():
    """A draining server no longer holds streams to real time: paced, this stream would need
    about 34 s more after SIGTERM and be cut off by the 20 s grace."""
    from corpus import CORPUS

    long_sentence = max(CORPUS, key=len)  # about 12 s of audio
    server = ServerProcess(drain_seconds=20)
    channel = grpc.insecure_channel(server.address)
    try:
        call = pb_grpc.SynthesizerStub(channel).StreamSynthesize(
            pb.StreamSynthesizeRequest(text=" ".join([long_sentence] * 3), seed=1)
        )
        chunks = [next(call)]
        server.process.send_signal(signal.SIGTERM)
        chunks += list(call)  # read as fast as the client can
        assert chunks[-1].final
        assert sum(c.num_samples for c in chunks) / 22050 > 30
        assert server.process.wait(timeout=60) == 0
    finally:
        channel.close()
        server.kill()


@pytest.mark.parametrize("flag", ["--port", "--metrics-port"])
def test_a_port_in_use_is_one_line_naming_it_and_its_flag_and_a_non_zero_exit(flag):
    import socket

    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as taken:
        taken.bind(("::", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--metrics-port" if flag == "--port" else "--port"
        result = subprocess.run(
            [str(BIN / "syrinx-server"), flag, str(port), other, "0", "--log-format", "text"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if "start-up failed" in line]
    assert f"port {port}" in line and flag in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--tls-cert-file", "{missing}", "--tls-key-file", "{missing}"], "--tls-cert-file"),
        (["--tls-cert-file", "{garbage}", "--tls-key-file", "{garbage}"], "--tls-cert-file/--tls-key-file"),
        (["--auth-tokens-file", "{missing}"], "--auth-tokens-file"),
        (["--auth-tokens-file", "{short_token}"], "--auth-tokens-file"),
        (["--voices-dir", "{missing}"], "--voices-dir"),
    ],
    ids=["cert-missing", "cert-not-pem", "tokens-missing", "tokens-bad-line", "voices-dir-missing"],
)
def test_an_unusable_file_is_one_line_naming_its_flag_and_a_non_zero_exit(tmp_path, flags, named):
    files = {"missing": tmp_path / "nope", "garbage": tmp_path / "garbage.pem", "short_token": tmp_path / "tokens"}
    files["garbage"].write_text("not a certificate\n")
    files["short_token"].write_text("# ops\nsecret-1\n")
    args = [flag.format(**files) for flag in flags]
    result = subprocess.run(
        [str(BIN / "syrinx-server"), "--port", "0", "--metrics-port", "-1", "--log-format", "text", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "start-up failed" in line]
    assert named in line
    assert "Traceback" not in result.stderr
    assert "secret-1" not in result.stderr  # a bad line is named by its number, never quoted
    if named == "--auth-tokens-file":
        assert "line 2" in line or "cannot read" in line
