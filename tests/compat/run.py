"""`make compat`: Pipecat's and LiveKit's NVIDIA TTS services against a real Syrinx, each in its own venv.

Starts the server (`python -m syrinx.server.app`), runs each framework's minimal script
(tests/compat/*_tts.py) with its venv's Python, and checks that the audio it produced is
speech at the rate it asked for and lasts what Syrinx's own StreamSynthesize gives for the
same text (within 25%: without a seed each synthesis differs a little). Exits 1 on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import grpc
import numpy as np

from bench.load_bench import running_server
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TEXT = "Hello there. Your table for two is booked for seven tonight. See you then!"
CLIENTS = (
    # name, venv, script arguments after the address, the rate it asks for
    ("pipecat per_sentence", ".venv-pipecat", ["pipecat_tts.py", "per_sentence"], 24000),
    ("pipecat stitched", ".venv-pipecat", ["pipecat_tts.py", "stitched"], 24000),
    ("livekit", ".venv-livekit", ["livekit_tts.py"], 16000),
)


async def reference_seconds(address: str) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.SynthesizerStub(channel)
        samples, rate = 0, 0
        async for response in stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=TEXT)):
            samples += response.num_samples
            if response.HasField("format"):
                rate = response.format.sample_rate_hz
        return samples / rate


async def run_client(venv: str, arguments: list[str], address: str, out: Path) -> tuple[dict, float]:
    script, *rest = arguments
    process = await asyncio.create_subprocess_exec(
        str(ROOT / venv / "bin" / "python"),
        str(HERE / script),
        address,
        *rest,
        TEXT,
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    started = asyncio.get_running_loop().time()
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    elapsed = asyncio.get_running_loop().time() - started
    if process.returncode != 0:
        raise RuntimeError(f"{script} failed: {stderr.decode()[-2000:]}")
    return json.loads(stdout.decode().strip().splitlines()[-1]), elapsed


async def main() -> int:
    args = argparse.Namespace(syrinx_args="--metrics-port -1")
    failures = 0
    async with running_server("syrinx", args) as server:
        expected = await reference_seconds(server.address)
        print(f"StreamSynthesize of the text: {expected:.2f} s")
        print(f"{'client':<22} {'rate':>6} {'seconds':>8} {'vs Syrinx':>9} {'wall s':>7}  result")
        with tempfile.TemporaryDirectory() as tmp:
            for name, venv, arguments, rate in CLIENTS:
                out = Path(tmp) / (name.replace(" ", "-") + ".pcm")
                result, elapsed = await run_client(venv, arguments, server.address, out)
                samples = np.frombuffer(out.read_bytes(), dtype="<i2").astype(np.float32)
                seconds = samples.size / (result["sample_rate"] or rate)
                loud = samples.size > 0 and float(np.sqrt(np.mean(samples**2))) > 300
                ok = result["sample_rate"] == rate and loud and 0.75 < seconds / expected < 1.25
                failures += not ok
                print(
                    f"{name:<22} {result['sample_rate']!s:>6} {seconds:8.2f} {seconds / expected:9.2f} "
                    f"{elapsed:7.1f}  {'ok' if ok else 'FAILED'}"
                )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
